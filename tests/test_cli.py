"""The command line: help lists every command; data generate/inspect; clean errors on bad input."""

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from rewire.cli import app

runner = CliRunner()


def registered(command=None, path=()):
    """Every leaf command of the CLI as its argv path, e.g. ("calql", "train")."""
    command = command or typer.main.get_command(app)
    children = getattr(command, "commands", None)
    if not children:
        yield path
        return
    for name, child in children.items():
        yield from registered(child, (*path, name))


def test_help_lists_every_registered_command_and_each_renders_its_options():
    paths = list(registered())
    assert len(paths) >= 20 and ("unlearn", "export") in paths
    groups = {p[0] for p in paths if len(p) > 1}
    top = runner.invoke(app, ["--help"]).output
    assert all(name in top for name in groups | {p[0] for p in paths})
    for path in paths:
        if len(path) > 1:
            assert path[1] in runner.invoke(app, [path[0], "--help"]).output, path
        res = runner.invoke(app, [*path, "--help"])
        assert res.exit_code == 0, (path, res.output, res.exception)
        command = typer.main.get_command(app)
        for name in path:
            command = command.commands[name]
        for param in command.params:
            for flag in param.opts:
                if flag.startswith("--"):
                    assert flag in res.output, (path, flag)
    # a help text with brackets in it survives them
    assert "train/val/test[/fair_val/fair_test]" in " ".join(
        runner.invoke(app, ["edit", "train", "--help"]).output.split()
    )


def test_a_missing_optional_dependency_is_named_with_its_install_hint(tmp_path):
    res = runner.invoke(app, ["data", "generate", "--env", "CarRacing-v3", "--out", str(tmp_path / "x.npz")])
    assert res.exit_code == 2
    message = " ".join(res.stderr.split())
    assert "needs a package that is not installed" in message and 'pip install "gymnasium[box2d]"' in message
    assert "unknown environment" not in message and len(res.stderr.strip().splitlines()) == 1


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


def test_the_brax_install_hint_keeps_its_brackets(tmp_path):
    import importlib.util

    if importlib.util.find_spec("brax") is not None:
        pytest.skip("brax is installed: there is nothing to hint")
    res = runner.invoke(app, ["hades", "distill", "--env", "brax-hopper", "--out", str(tmp_path), "--quiet"])
    assert res.exit_code == 2 and "pip install 'rewire[brax]'" in " ".join(res.stderr.split())


def test_starting_the_cli_does_not_import_gymnax_or_plotting():
    """Every CLI process pays for its imports, and gymnax pulls in matplotlib, seaborn and pandas (1.3 s on
    2 cores), so it is imported only where a built-in maze or a gymnax env is made."""
    import subprocess
    import sys

    code = "import sys, rewire.cli.commands; print(sorted({'gymnax', 'matplotlib'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
