"""`rewire demo`."""

from __future__ import annotations

from pathlib import Path

import typer

from rewire.cli.common import console, friendly_errors


@friendly_errors
def demo(
    out: Path = typer.Option(Path("runs"), help="Parent folder of runs/demo-<time>/."),
    seed: int = typer.Option(0, help="Seed for every section."),
    only: list[str] = typer.Option(None, help="Run only these sections (repeatable)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    from rewire.demo import run_demo

    run_dir = run_demo(out, seed, quiet, only)
    console.print(f"report: {run_dir / 'report.html'}")
