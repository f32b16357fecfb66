"""`rewire amf run`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer

from rewire.cli.common import (
    CHECKPOINT_EVERY,
    DEVICES,
    OUT,
    QUIET,
    RESUME,
    TENSORBOARD,
    command_group,
    console,
    friendly_errors,
    parse_ints,
    resume_overrides,
)
from rewire.runs import fresh_run_path

app = command_group()
TASKS_HELP = (
    "reach2d, arm2d: the number of tasks (even: angles x 2 radii; default 24). metaworld: the task set, "
    "paper (the default: push-v3 to two goals, faucet open and close), mt10, or Meta-World env names."
)


def task_config(env: str, tasks: str | None):
    """An `AMFConfig` of `env` with its tasks: a count for the built-in families, a Meta-World task set."""
    from rewire.amf.core import METAWORLD, AMFConfig
    from rewire.envs.metaworld import MetaWorldSettings, parse_tasks

    if env == METAWORLD:
        spec = tasks or "paper"
        return AMFConfig(env=env, tasks=len(parse_tasks(spec)), metaworld=MetaWorldSettings(tasks=spec))
    if tasks is not None and not tasks.isdigit():
        raise ValueError(f"--tasks {tasks!r}: {env} takes a number of tasks")
    return AMFConfig(env=env, tasks=int(tasks or 24))


@app.command("run", help="Fine-tune a pretrained multi-task policy on a demonstration budget; resumable.")
@friendly_errors
def run(
    ctx: typer.Context,
    env: str = typer.Option(
        "reach2d", help="reach2d (2-D point mass), arm2d (two-link arm) or metaworld (MuJoCo, AMF-NN)."
    ),
    tasks: str = typer.Option(None, help=TASKS_HELP),
    budget: int = typer.Option(32, help="Demonstrations to request in total."),
    batch: int = typer.Option(2, help="Demonstrations per round (the policy is refitted after each round)."),
    selector: str = typer.Option("amf", help="amf, uniform (round-robin) or random."),
    model: str = typer.Option("gp", help="gp (exact GP policy) or nn (MLP with a Bayesian last layer)."),
    setting: str = typer.Option("mismatch", help="Pretraining: mismatch, control or full."),
    proxies: str = typer.Option("rollout", help="Expert-state proxies: rollout or is (importance weights)."),
    eval_every: int = typer.Option(1, help="Evaluate every this many rounds (and after the last)."),
    targets: str = typer.Option(None, help="Target task ids, e.g. '0,1,2' (default: every task)."),
    seed: int = typer.Option(0, help="Drives the expert's noise, pretraining, the order and the NN."),
    out: Path = OUT,
    resume: Path = RESUME,
    checkpoint_every: float = CHECKPOINT_EVERY,
    quiet: bool = QUIET,
    tensorboard: bool = TENSORBOARD,
    devices: str = DEVICES,
) -> None:
    from rewire.amf.run import fit
    from rewire.amf.run import resume as resume_run
    from rewire.report import reached

    if resume is not None:
        resume_overrides(ctx)
        result = resume_run(resume, quiet, checkpoint_every, tensorboard, devices)
    else:
        config = replace(
            task_config(env, tasks),
            model=model,
            budget=budget,
            batch=batch,
            proxies=proxies,
            eval_every=eval_every,
            targets=parse_ints(targets) if targets else None,
        )
        path = fresh_run_path(out, "amf")
        result = fit(
            None, config, seed, selector, setting, None, path, quiet, checkpoint_every, tensorboard, devices
        )
    summary = result.summary
    first, last = summary["success_median"][0], summary["success_median"][-1]
    console.print(
        f"{result.directory}: success {first:.2f} -> {last:.2f} "
        f"after {summary['demos'][-1]} demos; demos to reach 0.9: {reached(summary['demos_to_0.9'])}; "
        f"tasks asked: {summary['tasks_per_seed'][0]}"
    )
