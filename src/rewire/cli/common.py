"""Helpers shared by the CLI commands: clean error exits and console output."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)


def command_group(**options: Any) -> typer.Typer:
    """A command group whose help is shown as written: no rich markup, so `[brackets]` in help texts (file
    layouts, install extras) survive, and a stray one cannot crash `--help`."""
    return typer.Typer(no_args_is_help=True, rich_markup_mode=None, **options)


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's input errors (and the operating system's: a missing file, a full disk) into one
    red line and exit code 2, instead of a traceback. The message is printed as it is (no rich markup, so
    `[brackets]` survive) and never wrapped."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ValueError, OSError) as err:
            message = " ".join(str(err).split())
            console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
            raise typer.Exit(2) from err

    return wrapper


# what a resumed run may be given besides `extendable`
RESUME_FLAGS = (
    "resume",
    "quiet",
    "checkpoint_every",
    "tensorboard",
    "devices",
    "coordinator",
    "num_processes",
    "process_id",
)


# The options every training command shares (the run directory, resume, checkpoints, progress, events)
OUT = typer.Option(Path("runs"), help="Parent folder of the run directory.")
RESUME = typer.Option(None, help="Resume the run directory of an interrupted run.")
CHECKPOINT_EVERY = typer.Option(30.0, min=0, help="Seconds between checkpoints (0: every step).")
QUIET = typer.Option(False, "--quiet", help="No progress bar.")
DEVICES = typer.Option(
    "all",
    "--devices",
    help="Devices to split the run's batched axis over: a number, or all (as many as divide it).",
)
COORDINATOR = typer.Option(None, help="HOST:PORT of process 0, for a job of several processes (hosts).")
NUM_PROCESSES = typer.Option(None, help="Processes in the job (with --coordinator).")
PROCESS_ID = typer.Option(None, help="This process's index, 0..N-1 (with --coordinator).")
TENSORBOARD = typer.Option(
    False, "--tensorboard", help="Also write the metrics as TensorBoard events in the run's tensorboard/."
)


def resume_overrides(ctx: typer.Context, extendable: tuple[str, ...] = ()) -> dict[str, Any]:
    """With `--resume`, the run's own config.json decides everything: return the `extendable` options the
    user gave (which may lengthen the run), and refuse any other option given on the command line, rather
    than silently ignoring it."""
    given = {
        name
        for name in ctx.params
        if (source := ctx.get_parameter_source(name)) is not None and source.name != "DEFAULT"
    }
    refused = sorted(given - set(RESUME_FLAGS) - set(extendable))
    if refused:
        flags = ", ".join("--" + name.replace("_", "-") for name in refused)
        allowed = ", ".join("--" + name.replace("_", "-") for name in extendable) or "none"
        raise ValueError(
            f"{flags} cannot change when resuming {ctx.params['resume']}: the run's config.json fixes them "
            f"(options that extend a run: {allowed}); start a new run instead"
        )
    return {name: ctx.params[name] for name in extendable if name in given}


def parse_ints(text: str) -> tuple[int, ...]:
    """'0,3,5' -> (0, 3, 5), with a clear error for anything else."""
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError as err:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from err
