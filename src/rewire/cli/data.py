"""`rewire data generate | inspect`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from rewire.cli.common import command_group, console, friendly_errors
from rewire.data.episodes import load_dataset, save_dataset
from rewire.data.generate import policy_dataset, scripted_dataset
from rewire.data.mazes import point_maze_dataset
from rewire.envs import make_spec

app = command_group()


@app.command("generate", help="Write a dataset from a scripted noisy controller or a saved policy.")
@friendly_errors
def generate(
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Output: .npz (flat D4RL layout), .h5 (Minari episode groups), or a Minari dataset directory "
        "named by its id (e.g. ~/.minari/datasets/pointmaze-medium-v0).",
    ),
    env: str = typer.Option(
        "PointMaze-umaze-v0",
        help="Environment id (PointMaze-open-v0, PointMaze-umaze-v0, gymnasium-robotics' PointMaze_UMaze-v3, "
        "PointMaze_Medium-v3, PointMaze_Large-v3, or a Gymnasium id such as Pendulum-v1).",
    ),
    episodes: int = typer.Option(200, min=1, help="Number of episodes."),
    seed: int = typer.Option(0, help="Seed for the controller and the environment."),
    noise: float = typer.Option(None, help="Gaussian action noise (unit-box units); default per controller."),
    policy: Path = typer.Option(
        None,
        help="A `rewire calql train` run directory (or its checkpoint.ckpt) whose policy to roll instead.",
    ),
    agent: int = typer.Option(0, help="Which agent of the checkpoint's stack to roll."),
    detour_fraction: float = typer.Option(
        0.3, min=0.0, max=1.0, help="MuJoCo PointMaze: share of stretches that first head for a random cell."
    ),
    limit: int = typer.Option(
        None,
        min=1,
        help="MuJoCo PointMaze: steps before a stretch short of its goal is cut (default: horizon).",
    ),
) -> None:
    spec = make_spec(env)
    if policy is not None:
        from rewire.calql.trainer import load_run

        trainer = load_run(policy if policy.is_dir() else policy.parent)
        if trainer.spec.env_id != spec.env_id:
            raise ValueError(f"{policy}: the policy was trained on {trainer.spec.env_id}, not {spec.env_id}")
        if not 0 <= agent < len(trainer.agent_labels):
            raise ValueError(f"--agent must be in [0, {len(trainer.agent_labels) - 1}]")
        import jax

        actor = jax.tree.map(lambda x: x[agent], trainer.states.params["actor"])
        act = jax.jit(lambda o, k: trainer.act_fn(actor, o, k, True))
        ds = policy_dataset(
            spec,
            lambda o, k: np.asarray(act(o, k)),
            episodes,
            seed,
            0.1 if noise is None else noise,
            f"{policy}#{trainer.agent_labels[agent]}",
        )
    elif spec.env_id.startswith("PointMaze_"):
        ds = point_maze_dataset(spec, episodes, seed, 0.5 if noise is None else noise, detour_fraction, limit)
    else:
        ds = scripted_dataset(spec, episodes, seed, noise)
    save_dataset(ds, out, spec)
    summary = ds.summary()
    console.print(
        f"wrote {out}: {summary['episodes']} episodes, {summary['transitions']} transitions, "
        f"mean return {summary['return']['mean']:.3g}, terminated {summary['terminated_fraction']:.0%}"
    )


@app.command("inspect", help="Validate a dataset file and print its summary.")
@friendly_errors
def inspect(
    path: Path = typer.Argument(..., help="An .npz, .h5 or .hdf5 dataset, or a Minari dataset directory."),
    env: str = typer.Option(None, help="Check shapes and action bounds against this environment."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    spec = make_spec(env) if env else None
    summary = load_dataset(path, spec).summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    console.print(f"[bold]{path}[/bold] (valid{' for ' + env if env else ''})")
    for key, value in summary.items():
        console.print(f"  {key}: {value}")
