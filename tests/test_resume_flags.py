"""`--resume` with other flags: options that lengthen a run extend it; any other is refused, not ignored."""

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from rewire.cli import app
from rewire.hades.run import run_from_record
from rewire.loop import CHECKPOINT, read_checkpoint

runner = CliRunner()


def one_line(res) -> str:
    return " ".join(res.stderr.split())


def test_hades_generations_extend_to_the_run_asked_for_from_the_start(tmp_path):
    base = ["hades", "distill", "--generations", "3", "--popsize", "8", "--quiet", "--checkpoint-every", "0"]
    assert runner.invoke(app, [*base, "--out", str(tmp_path / "short")]).exit_code == 0
    (short,) = (tmp_path / "short").iterdir()
    res = runner.invoke(app, ["hades", "distill", "--resume", str(short), "--generations", "5", "--quiet"])
    assert res.exit_code == 0, res.output
    assert json.loads((short / "config.json").read_text())["config"]["generations"] == 5
    long = [a if a != "3" else "5" for a in base]
    assert runner.invoke(app, [*long, "--out", str(tmp_path / "long")]).exit_code == 0
    (direct,) = (tmp_path / "long").iterdir()
    a, b = (read_checkpoint(d / CHECKPOINT, "rewire.hades/evolution")[0].arrays for d in (short, direct))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert (short / "metrics.jsonl").read_bytes() == (direct / "metrics.jsonl").read_bytes()
    res = runner.invoke(app, ["hades", "distill", "--resume", str(short), "--generations", "4"])
    assert res.exit_code == 2 and "can only be extended" in one_line(res)
    res = runner.invoke(app, ["hades", "distill", "--resume", str(short), "--popsize", "16", "--seed", "3"])
    assert res.exit_code == 2 and "--popsize, --seed cannot change when resuming" in one_line(res)
    assert run_from_record(short).config.generations == 5


def test_calql_online_steps_extend_and_other_flags_are_refused(tiny_runs, tmp_path):
    run = tmp_path / "calql"
    shutil.copytree(tiny_runs["calql"].directory, run)
    res = runner.invoke(app, ["calql", "train", "--resume", str(run), "--online-steps", "200", "--quiet"])
    assert res.exit_code == 0, res.output
    results = json.loads((run / "results.json").read_text())
    assert results["curves"]["online"]["steps"][-1] == 200
    res = runner.invoke(app, ["calql", "train", "--resume", str(run), "--offline-steps", "600"])
    assert res.exit_code == 2 and "has begun its online phase" in one_line(res)
    res = runner.invoke(app, ["calql", "train", "--resume", str(run), "--seeds", "5", "--tau", "0.1"])
    assert res.exit_code == 2 and "--seeds, --tau cannot change when resuming" in one_line(res)


@pytest.mark.parametrize(
    "system, args",
    [
        ("amf", ["amf", "run", "--budget", "16"]),
        ("unlearn", ["unlearn", "simulate", "--episodes", "200", "--seed", "1"]),
        ("edit", ["edit", "train", "--steps", "20000"]),
    ],
)
def test_fixed_shape_runs_refuse_any_change(system, args, tiny_runs, tmp_path):
    run = tmp_path / system
    shutil.copytree(tiny_runs[system].directory, run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    res = runner.invoke(app, [*args, "--resume", str(run)])
    assert res.exit_code == 2 and "cannot change when resuming" in one_line(res), res.output
    assert "(options that extend a run: none)" in one_line(res)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["calql", "train", "--tau", "5"],
            "tau (the target critics' Polyak rate) must lie in (0, 1], got 5.0",
        ),
        (["calql", "train", "--actor-lr", "-0.001"], "actor_lr must be positive"),
        (["calql", "train", "--batch-size", "100000"], "larger than the dataset's"),
        (["hades", "distill", "--es", "openes", "--popsize", "7"], "even for antithetic OpenES"),
        (["hades", "digits", "--popsize", "7"], "even for antithetic OpenES"),
    ],
)
def test_nonsense_settings_are_refused_before_anything_is_written(args, message, tmp_path):
    res = runner.invoke(app, [*args, "--out", str(tmp_path)] if args[1] != "digits" else args)
    assert res.exit_code == 2 and message in one_line(res), res.output
    assert not list(tmp_path.iterdir())
