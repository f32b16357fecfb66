"""Every system's batched axis split over 4 forced CPU devices gives the results of one device: exactly
where the computation per shard is the same (AMF's results, Cal-QL's evaluations, HaDES's fitness), and
within float rounding where XLA compiles a shard's smaller batch differently (network weights to 1e-4
relative; unlearning's float64 projections differ by 1e-15, which can break ties between trials: its
decisions and smallest p-values agree exactly, and fewer than 2% of its p-values move)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rewire.mesh import device_count

SCRIPT = Path(__file__).with_name("four_devices.py")  # run in a subprocess with 4 forced devices


@pytest.fixture(scope="module")
def four_devices():
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    env = os.environ | {"XLA_FLAGS": flags}
    proc = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT "))


@pytest.mark.parametrize("system", ["calql", "hades", "amf", "edit", "unlearn"])
def test_four_devices_give_one_devices_results(four_devices, system):
    checks = four_devices[system]
    assert all(checks.values()), checks
    if system == "calql":
        assert checks["split_over_4"]  # the agents really sat on four devices


def test_device_counts_divide_the_axis_or_are_refused():
    assert device_count(None, 6, "agents") == 1  # this process has one device
    assert device_count("all", 1, "agents") == 1
    with pytest.raises(ValueError, match="this process has 1 device"):
        device_count(2, 4, "agents")
    with pytest.raises(ValueError, match="give a number of devices or 'all'"):
        device_count("many", 4, "agents")


def test_the_cli_refuses_more_devices_than_the_process_has(tmp_path):
    from typer.testing import CliRunner

    from rewire.cli import app

    args = ["hades", "distill", "--generations", "1", "--popsize", "8", "--devices", "2"]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path)])
    assert res.exit_code == 2 and "devices 2: this process has 1 device(s)" in res.stderr
    assert not list(tmp_path.iterdir())  # nothing half-made
