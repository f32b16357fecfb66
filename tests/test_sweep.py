"""`rewire sweep`: a local grid end to end through submitit, a restart that skips finished points, the
gathered table and plot, and refused grids."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from rewire.cli import app
from rewire.sweep import parse_grid, point_name, read_grid, scalars

VERIFY = ["unlearn", "verify", "--trials", "20", "--episodes", "8", "--quiet"]


def test_grids_parse_and_refuse(tmp_path):
    assert parse_grid(["seed=0,1", "rho=0.5"]) == {"seed": ("0", "1"), "rho": ("0.5",)}
    assert point_name({"env": "brax-ant/x", "seed": "1"}) == "env=brax-ant_x,seed=1"
    assert scalars({"a": {"b": [1, 2.5]}, "c": "x", "d": None}) == {"a.b.0": 1, "a.b.1": 2.5, "c": "x"}
    (tmp_path / "g.yaml").write_text("seed: [0, 1]\ngreedy: true\n")
    assert read_grid(tmp_path / "g.yaml") == {"seed": ("0", "1"), "greedy": ("true",)}
    for bad in (["seed"], ["seed="], ["seed=1", "seed=2"], ["Seed X=1"]):
        with pytest.raises(ValueError):
            parse_grid(bad)
    (tmp_path / "bad.json").write_text(json.dumps({"seed": [[0]]}))
    with pytest.raises(ValueError, match="needs a list of strings, numbers or booleans"):
        read_grid(tmp_path / "bad.json")


def rewire(*args: str) -> subprocess.CompletedProcess:
    """The command line in its own process (submitit's local executor starts the points' processes)."""
    code = "from rewire.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600)


def test_a_local_sweep_runs_gathers_and_skips_finished_points_on_restart(tmp_path):
    out = tmp_path / "sweep"
    args = ["sweep", "--grid", "seed=0,1", "--out", str(out), *VERIFY]
    res = rewire(*args)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = json.loads((out / "table.json").read_text())
    assert [r["seed"] for r in rows] == ["0", "1"] and all("exact.min_p" in r for r in rows)
    assert [r["config.seed"] for r in rows] == [0, 1]  # each point ran with its own flag
    assert (out / "table.csv").read_text().splitlines()[0].startswith("seed,")
    assert (out / "sweep.png").exists()
    done = {p: (out / p / "done.json").stat().st_mtime_ns for p in ("seed=0", "seed=1")}
    (out / "seed=1" / "done.json").unlink()  # as if the sweep had been killed before point 1 finished
    res = rewire(*args)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (out / "seed=0" / "done.json").stat().st_mtime_ns == done["seed=0"]  # skipped
    assert (out / "seed=1" / "done.json").exists() and json.loads((out / "table.json").read_text()) == rows
    other = rewire("sweep", "--grid", "seed=0,2", "--out", str(out), *VERIFY)
    assert other.returncode == 2 and "holds another sweep" in other.stderr


def test_a_command_without_a_result_is_refused(tmp_path):
    res = CliRunner().invoke(
        app, ["sweep", "--grid", "seed=0", "--out", str(tmp_path / "s"), "unlearn", "delete"]
    )
    assert res.exit_code == 2 and "writes no result a sweep could gather" in res.stderr
    res = CliRunner().invoke(
        app, ["sweep", "--grid", "seed=0", "--out", str(tmp_path / "s"), "bench", "nope"]
    )
    assert res.exit_code == 2 and "is not a rewire command" in res.stderr
