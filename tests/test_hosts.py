"""Two local processes (2 forced CPU devices each, CPU collectives) joined through `--coordinator` run a
HaDES job and a Cal-QL job (its agents split across the processes), checkpoint, and resume them as jobs of
two processes; the results equal one process with 4 devices. Only process 0 writes."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

CODE = "from rewire.cli import main; main()"
DISTILL = ["hades", "distill", "--quiet", "--checkpoint-every", "0"]
NEW = ["--popsize", "8"]
TRAIN = ["calql", "train", "--quiet", "--checkpoint-every", "0", "--seeds", "2", "--offline-steps", "100"]
TINY = ["--offline-eval-every", "100", "--eval-every", "50", "--hidden", "16,16", "--batch-size", "32"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def job(args: list[str], processes: int, devices: int) -> list[subprocess.CompletedProcess]:
    flags = os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={devices}"
    env = os.environ | {"XLA_FLAGS": flags}
    if processes == 1:
        return [subprocess.run([sys.executable, "-c", CODE, *args], env=env, capture_output=True, text=True)]
    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CODE, *args, "--coordinator", f"127.0.0.1:{port}"]
            + ["--num-processes", str(processes), "--process-id", str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


def finished(results: list[subprocess.CompletedProcess]) -> None:
    for r in results:
        assert r.returncode == 0, r.stderr[-2000:]


def run_dir(root):
    (directory,) = root.iterdir()
    return directory


def test_two_processes_checkpoint_resume_and_match_one_process_with_four_devices(tmp_path):
    finished(job([*DISTILL, *NEW, "--generations", "1", "--out", str(tmp_path / "two")], 2, 2))
    two = run_dir(tmp_path / "two")
    assert len((two / "metrics.jsonl").read_text().splitlines()) == 1  # process 0 alone wrote
    finished(job([*DISTILL, "--resume", str(two), "--generations", "2"], 2, 2))
    finished(job([*DISTILL, *NEW, "--generations", "2", "--out", str(tmp_path / "one")], 1, 4))
    one = run_dir(tmp_path / "one")
    a, b = (json.loads((d / "result.json").read_text()) for d in (two, one))
    assert a["history"] == b["history"] and a["generation"] == b["generation"] == 2
    np.testing.assert_allclose(a["return_per_init"], b["return_per_init"], rtol=1e-5)
    with np.load(two / "dataset.npz") as x, np.load(one / "dataset.npz") as y:
        np.testing.assert_allclose(x["states"], y["states"], rtol=1e-5, atol=1e-6)
    assert (two / "metrics.jsonl").read_text() == (one / "metrics.jsonl").read_text()


@pytest.mark.slow  # 3.5 min of compiling in six processes; test_devices checks Cal-QL's agents split over 4
def test_cal_ql_split_over_two_processes_resumes_and_matches_one_process_with_four_devices(tmp_path):
    finished(job([*TRAIN, *TINY, "--online-steps", "50", "--out", str(tmp_path / "two")], 2, 2))
    two = run_dir(tmp_path / "two")
    resume = ["calql", "train", "--resume", str(two), "--online-steps", "100", "--quiet"]
    finished(job([*resume, "--checkpoint-every", "0"], 2, 2))
    finished(job([*TRAIN, *TINY, "--online-steps", "100", "--out", str(tmp_path / "one")], 1, 4))
    one = run_dir(tmp_path / "one")
    assert (two / "metrics.jsonl").read_text() == (one / "metrics.jsonl").read_text()
    a, b = (json.loads((d / "results.json").read_text()) for d in (two, one))
    assert a["agents"] == b["agents"] and a["curves"] == b["curves"]
    assert a["curves"]["online"]["steps"] == [0, 50, 100]
