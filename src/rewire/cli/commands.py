"""The `rewire` command: its groups and commands (imported by `rewire.cli.main` once a job of several
processes has been joined)."""

from __future__ import annotations

from rewire.cli import amf, bench, calql, data, demo, edit, hades, sweep, unlearn
from rewire.cli.common import command_group

app = command_group(
    help="rewire: change what a trained agent or network knows after training.",
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data.app, name="data", help="Generate and inspect offline RL datasets (NPZ, HDF5).")
app.add_typer(calql.app, name="calql", help="Cal-QL / CQL: offline pre-training, then online fine-tuning.")
app.add_typer(
    hades.app, name="hades", help="HaDES: distil behaviour (or digits) into a few synthetic samples."
)
app.add_typer(
    amf.app, name="amf", help="AMF: spend a demonstration budget where a multi-task policy is most unsure."
)
app.add_typer(
    unlearn.app, name="unlearn", help="Exact unlearning in online tabular RL: simulate, delete users, verify."
)
app.add_typer(edit.app, name="edit", help="MaskWorld/ShiftWorld: train an RL policy that edits a classifier.")
app.add_typer(bench.app, name="bench", help="Benchmarks that write JSON results (medians over seeds).")
app.command(
    "sweep",
    help="Run a command over a grid of flag values (submitit jobs); restart skips finished points.",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)(sweep.sweep)
app.command(
    "demo", help="Short run of every system against its baseline; writes runs/demo-<time>/report.html."
)(demo.demo)
