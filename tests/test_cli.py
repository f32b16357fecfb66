"""The command line: help lists every command; data generate/inspect; clean errors on bad input."""

import json

import numpy as np
from typer.testing import CliRunner

from rewire.cli import app

runner = CliRunner()


def test_help_lists_every_command():
    out = runner.invoke(app, ["--help"]).output
    for name in ("data", "calql", "bench", "demo"):
        assert name in out
    assert "generate" in runner.invoke(app, ["data", "--help"]).output
    assert "train" in runner.invoke(app, ["calql", "--help"]).output
    assert "calql" in runner.invoke(app, ["bench", "--help"]).output


def test_generate_then_inspect(tmp_path):
    path = tmp_path / "maze.h5"
    res = runner.invoke(
        app, ["data", "generate", "--env", "PointMaze-open-v0", "--episodes", "5", "--out", str(path)]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["data", "inspect", str(path), "--env", "PointMaze-open-v0", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["episodes"] == 5 and summary["env_id"] == "PointMaze-open-v0"


def test_generate_for_a_gymnasium_env(tmp_path):
    path = tmp_path / "pendulum.npz"
    res = runner.invoke(
        app, ["data", "generate", "--env", "Pendulum-v1", "--episodes", "2", "--out", str(path)]
    )
    assert res.exit_code == 0, res.output
    with np.load(path) as z:
        assert z["observations"].shape == (400, 3) and np.abs(z["actions"]).max() <= 2.0


def test_bad_inputs_exit_with_a_message(tmp_path):
    res = runner.invoke(app, ["data", "generate", "--env", "NoSuchEnv-v9", "--out", str(tmp_path / "x.npz")])
    assert res.exit_code == 2 and "unknown environment id 'NoSuchEnv-v9'" in res.output
    bad = tmp_path / "bad.npz"
    np.savez(bad, observations=np.zeros((3, 2)), actions=np.zeros((3, 2)), rewards=np.zeros(3))
    res = runner.invoke(app, ["data", "inspect", str(bad)])
    assert res.exit_code == 2 and "missing key 'terminals'" in res.output
    res = runner.invoke(app, ["calql", "train", "--methods", "dqn", "--out", str(tmp_path), "--quiet"])
    assert res.exit_code == 2 and "unknown method" in res.output
