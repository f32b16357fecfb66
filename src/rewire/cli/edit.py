"""`rewire edit train | apply`."""

from __future__ import annotations

from pathlib import Path

import typer

from rewire.cli.common import (
    CHECKPOINT_EVERY,
    COORDINATOR,
    DEVICES,
    NUM_PROCESSES,
    OUT,
    PROCESS_ID,
    QUIET,
    RESUME,
    TENSORBOARD,
    command_group,
    console,
    friendly_errors,
    parse_ints,
    resume_overrides,
)
from rewire.runs import create_run_dir, file_record, read_run_record, record_run, write_json

app = command_group()
DATA_HELP = (
    "Bias task: your text data set, .csv (with a header) or .jsonl, fields text, label (0/1), group (0/1) "
    "and optional split (train/val/test[/fair_val/fair_test]); default: the generated occupation texts."
)


def _show(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, float) and k != "wall_s")


@app.command(
    "train", help="Train an editing policy (PPO) in MaskWorld or ShiftWorld; writes a run directory."
)
@friendly_errors
def train_cmd(
    ctx: typer.Context,
    world: str = typer.Option("mask", help="mask (multiplicative) or shift (additive)."),
    task: str = typer.Option("unlearn", help="unlearn (digits) or bias (occupation texts, or --data)."),
    forget_class: int = typer.Option(7, help="The class to forget (0..9; unlearn only)."),
    model: Path = typer.Option(None, help="A model file from an earlier run (default: pretrain one)."),
    data: Path = typer.Option(None, help=DATA_HELP),
    classes: str = typer.Option(
        "",
        help="Unlearn: train one policy across these forget classes, e.g. 7,8,9,0,1 (one per environment).",
    ),
    observe: str = typer.Option(
        "weights",
        help="What the agent sees besides the reward terms: weights (the edited layer) or metrics (nothing).",
    ),
    steps: int = typer.Option(50_000, min=500, help="Environment steps."),
    seed: int = typer.Option(0, help="Data split, pretraining and the agent."),
    out: Path = OUT,
    resume: Path = RESUME,
    checkpoint_every: float = CHECKPOINT_EVERY,
    quiet: bool = QUIET,
    tensorboard: bool = TENSORBOARD,
    devices: str = DEVICES,
    coordinator: str = COORDINATOR,
    num_processes: int = NUM_PROCESSES,
    process_id: int = PROCESS_ID,
) -> None:
    from rewire.edit.classifier import CLASSES
    from rewire.edit.run import (
        TASKS,
        check_classes,
        load_model,
        pretrain,
        save_model,
        save_policy,
        task_data,
        train_editor,
    )
    from rewire.edit.world import WorldConfig

    if resume is not None:
        resume_overrides(ctx)
        run_dir, record = resume, read_run_record(resume)
        config = record["config"]
        try:
            world, task, forget_class = config["world"], config["task"], config["forget_class"]
            steps, observe, train_classes = config["steps"], config["observe"], tuple(config["classes"])
            seed = record["seed"]
        except (KeyError, TypeError):
            raise ValueError(f"{resume}/config.json: not the record of an editing run") from None
        params, data_seed, task_set, source = load_model(run_dir / "model.ckpt", task, forget_class)
    else:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose from {list(TASKS)}")
        WorldConfig(world=world).validate()
        if not 0 <= forget_class < CLASSES:
            raise ValueError(f"forget class {forget_class}: choose 0..{CLASSES - 1}")
        if observe not in ("weights", "metrics"):
            raise ValueError(f"observe {observe!r}: choose weights or metrics")
        train_classes = parse_ints(classes) if classes else ()
        check_classes(task, train_classes)
        if model is not None:
            params, data_seed, task_set, source = load_model(model, task, forget_class, data)
        else:
            data_seed, task_set = seed, task_data(task, seed, forget_class, data)
            params = pretrain(task, task_set, seed)
            source = None if data is None else file_record(data)
        config = {"world": world, "task": task, "forget_class": forget_class, "steps": steps}
        config |= {"classes": list(train_classes), "observe": observe}

        def fill(d: Path) -> None:
            record_run(d, config | {"data_file": source}, seed)
            save_model(d / "model.ckpt", task, params, data_seed, source)

        run_dir = create_run_dir(out, f"edit-{world}", fill)
    policy, edited, metrics = train_editor(
        task,
        params,
        task_set,
        data_seed,
        world,
        forget_class,
        steps,
        seed,
        train_classes,
        observe == "weights",
        run_dir,
        quiet,
        checkpoint_every,
        tensorboard,
        devices,
    )
    save_policy(run_dir / "policy.ckpt", policy)
    save_model(run_dir / "edited.ckpt", task, edited, data_seed, source)
    timing = {k: metrics.pop(k) for k in ("wall_s", "compile_s")}
    write_json(
        run_dir / "results.json",
        {"task": task, "world": world, "metrics": metrics, "timing": timing}
        | ({"forget_class": forget_class} if task == "unlearn" else {}),
    )
    console.print(f"{run_dir}: {_show(metrics)}; policy in policy.ckpt, edited model in edited.ckpt")


@app.command("apply", help="Apply a learned editing policy to a model, e.g. for another forget class.")
@friendly_errors
def apply_cmd(
    policy: Path = typer.Argument(..., help="policy.ckpt from `rewire edit train`."),
    model: Path = typer.Argument(..., help="A model file (model.ckpt from a run)."),
    forget_class: int = typer.Option(None, help="Class to forget (unlearn; default: the policy's class)."),
    data: Path = typer.Option(None, help="The model's text data file, if it has moved since training."),
    out: Path = typer.Option(None, help="Write the edited model here."),
) -> None:
    from rewire.edit.run import apply_editor, load_model, load_policy, save_model

    record = load_policy(policy)
    target = record["trained_on_class"] if forget_class is None else forget_class
    params, data_seed, task_set, source = load_model(model, record["task"], target, data)
    edited, metrics = apply_editor(record, params, task_set, data_seed)
    if out is not None:
        save_model(out, record["task"], edited, data_seed, source)
    where = (
        f"trained on class {record['trained_on_class']}, applied to class {target}"
        if target is not None
        else (f"({record['task']}) applied to {model}")
    )
    console.print(f"policy {where}: {_show(metrics)}")


@app.command("data", help="Write the generated occupation texts as a data file in the format --data reads.")
@friendly_errors
def data_cmd(
    out: Path = typer.Argument(..., help="Output file, .csv or .jsonl."),
    seed: int = typer.Option(0, help="Generator seed."),
) -> None:
    from rewire.edit.text import generate, write_text_file

    data = generate(seed)
    write_text_file(data, out)
    console.print(f"wrote {out}: " + ", ".join(f"{k} {len(v)}" for k, v in data.texts.items()))
