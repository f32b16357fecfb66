"""Kill -9 anywhere loses nothing: each long-running command, SIGKILLed at a random moment of a tiny run and
resumed, ends with the same files as an uninterrupted run (`benchmarks/kill_resume.py` runs many kills)."""

import random

import pytest

from rewire.bench.faults import SYSTEMS, differences, fingerprint, kill_and_resume


@pytest.mark.parametrize("system", list(SYSTEMS))
def test_sigkill_at_a_random_moment_then_resume_is_bit_identical(system, tiny_runs, tmp_path):
    ref = tiny_runs[system]
    assert {"config.json", "metrics.jsonl"} <= set(ref.files)
    trial = kill_and_resume(system, ref, tmp_path, random.Random())  # a new moment on every run
    assert trial.identical, f"killed {trial.delay:.3f} s after the run directory appeared: {trial.differing}"


def test_the_comparison_sees_a_changed_file(tiny_runs, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_runs["hades"].directory, copy)
    assert not differences(tiny_runs["hades"].files, fingerprint(copy))
    with open(copy / "metrics.jsonl", "a") as f:
        f.write("{}\n")
    assert differences(tiny_runs["hades"].files, fingerprint(copy)) == ["metrics.jsonl"]
