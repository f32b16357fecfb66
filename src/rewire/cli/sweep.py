"""`rewire sweep [OPTIONS] COMMAND...`: one command over a grid of flag values (`rewire.sweep`)."""

from __future__ import annotations

from pathlib import Path

import typer

from rewire.cli.common import console, friendly_errors


def output_mode(command: list[str]) -> str:
    """How a point of `command` is told where to write: "json" (it takes --json) or "out" (--out)."""
    from rewire.cli import app

    node = typer.main.get_command(app)
    for i, name in enumerate(command):
        if name not in getattr(node, "commands", {}):
            break
        node = node.commands[name]
        if not hasattr(node, "commands"):  # a command, not a group
            names = {p.name for p in node.params}
            if "json_out" in names:
                return "json"
            if "out" in names:
                return "out"
            raise ValueError(f"`rewire {' '.join(command[: i + 1])}` writes no result a sweep could gather")
    raise ValueError(f"`rewire {' '.join(command)}` is not a rewire command (e.g. `bench hades`)")


@friendly_errors
def sweep(
    ctx: typer.Context,
    grid: list[str] = typer.Option([], help="key=v1,v2,... (repeatable): a flag of COMMAND and its values."),
    grid_file: Path = typer.Option(None, help="A JSON or YAML mapping of flag name to values."),
    executor: str = typer.Option("local", help="local (processes on this machine) or slurm (submitit)."),
    metric: str = typer.Option(None, help="The table column to plot (default: the first that varies)."),
    out: Path = typer.Option(..., help="The sweep's folder: points, table.json, table.csv, sweep.png."),
) -> None:
    from rewire.sweep import Sweep, parse_grid, read_grid, run_sweep

    command = list(ctx.args)
    if not command:
        raise ValueError(
            "give the command to sweep, e.g. `rewire sweep --grid seed=0,1 --out DIR bench hades`"
        )
    values = parse_grid(grid) | (read_grid(grid_file) if grid_file is not None else {})
    if not values:
        raise ValueError("give a grid: --grid key=v1,v2 or --grid-file FILE")
    plan = Sweep(tuple(command), values, output_mode(command))
    rows = run_sweep(plan, out, executor, metric)
    console.print(f"{out}: {len(rows)} of {len(plan.points())} points in {out / 'table.csv'}")
