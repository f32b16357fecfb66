"""`rewire edit train | apply`."""

from __future__ import annotations

from pathlib import Path

import typer

from rewire.cli.common import console, friendly_errors
from rewire.runs import new_run_dir, record_run, write_json

app = typer.Typer(no_args_is_help=True)


def _show(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, float) and k != "wall_s")


@app.command(
    "train", help="Train an editing policy (PPO) in MaskWorld or ShiftWorld; writes a run directory."
)
@friendly_errors
def train_cmd(
    world: str = typer.Option("mask", help="mask (multiplicative) or shift (additive)."),
    task: str = typer.Option("unlearn", help="unlearn (digits) or bias (generated occupation texts)."),
    forget_class: int = typer.Option(7, help="The class to forget (0..9; unlearn only)."),
    model: Path = typer.Option(None, help="A model file from an earlier run (default: pretrain one)."),
    steps: int = typer.Option(50_000, min=500, help="Environment steps."),
    seed: int = typer.Option(0, help="Data split, pretraining and the agent."),
    out: Path = typer.Option(Path("runs"), help="Parent folder of the run directory."),
) -> None:
    from rewire.checkpoint import save_checkpoint
    from rewire.edit.classifier import CLASSES
    from rewire.edit.run import TASKS, load_model, pretrain, save_model, task_data, train_editor
    from rewire.edit.world import WorldConfig

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {list(TASKS)}")
    WorldConfig(world=world).validate()
    if not 0 <= forget_class < CLASSES:
        raise ValueError(f"forget class {forget_class}: choose 0..{CLASSES - 1}")
    params, data_seed = load_model(model, task) if model is not None else (None, seed)
    data = task_data(task, data_seed, forget_class)
    if params is None:
        params = pretrain(task, data, seed)
    run_dir = new_run_dir(out, f"edit-{world}")
    record_run(run_dir, {"world": world, "task": task, "forget_class": forget_class, "steps": steps}, seed)
    save_model(run_dir / "model.ckpt", task, params, data_seed)
    policy, edited, metrics = train_editor(task, params, data, data_seed, world, forget_class, steps, seed)
    save_checkpoint(run_dir / "policy.ckpt", policy)
    save_model(run_dir / "edited.ckpt", task, edited, data_seed)
    write_json(
        run_dir / "results.json",
        {"task": task, "world": world, "metrics": metrics}
        | ({"forget_class": forget_class} if task == "unlearn" else {}),
    )
    console.print(f"{run_dir}: {_show(metrics)}; policy in policy.ckpt, edited model in edited.ckpt")


@app.command("apply", help="Apply a learned editing policy to a model, e.g. for another forget class.")
@friendly_errors
def apply_cmd(
    policy: Path = typer.Argument(..., help="policy.ckpt from `rewire edit train`."),
    model: Path = typer.Argument(..., help="A model file (model.ckpt from a run)."),
    forget_class: int = typer.Option(None, help="Class to forget (unlearn; default: the policy's class)."),
    out: Path = typer.Option(None, help="Write the edited model here."),
) -> None:
    from rewire.edit.run import apply_editor, load_model, load_policy, save_model, task_data

    record = load_policy(policy)
    params, data_seed = load_model(model, record["task"])
    target = record["trained_on_class"] if forget_class is None else forget_class
    data = task_data(record["task"], data_seed, target)
    edited, metrics = apply_editor(record, params, data, data_seed)
    if out is not None:
        save_model(out, record["task"], edited, data_seed)
    where = (
        f"trained on class {record['trained_on_class']}, applied to class {target}"
        if target is not None
        else (f"({record['task']}) applied to {model}")
    )
    console.print(f"policy {where}: {_show(metrics)}")
