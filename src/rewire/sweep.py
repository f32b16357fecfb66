"""Sweeps: one rewire command over a grid of flag values, each point a job of submitit's (local processes or
SLURM), a restarted sweep skipping the points that finished, and the points' JSON results gathered into
one table and one plot.

A point runs the command with `--FLAG VALUE` for each grid key and its own output: `--json
<point>/result.json` for commands that write one JSON (benchmarks, `unlearn verify`), `--out <point>`
for training commands (their run directory's results.json or result.json is the point's result). A point
is finished when its `done.json` exists (written after the command succeeded). submitit hands each job to
its worker as a pickle in the sweep's `submitit/` folder; rewire itself never reads a pickle.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewire.runs import read_json, write_json
from rewire.store import write_bytes

EXECUTORS = ("local", "slurm")
TABLE, TABLE_CSV, PLOT, RECORD = "table.json", "table.csv", "sweep.png", "sweep.json"
RESULT_NAMES = ("results.json", "result.json")  # what a training command's run directory holds
INPUTS = ("config.", "versions.", "setup.")  # result columns that echo a point's settings


@dataclass(frozen=True)
class Sweep:
    """`command`: the rewire command and its fixed flags (e.g. `("bench", "hades", "--generations", "5")`);
    `grid`: flag name -> values, as on the command line; `output`: "json" or "out" (how a point is told
    where to write)."""

    command: tuple[str, ...]
    grid: dict[str, tuple[str, ...]]
    output: str

    def points(self) -> list[dict[str, str]]:
        """Every combination of the grid's values, in the grid's key order."""
        keys = list(self.grid)
        return [dict(zip(keys, values, strict=True)) for values in itertools.product(*self.grid.values())]

    def argv(self, point: dict[str, str], folder: Path) -> list[str]:
        flags = [part for key, value in point.items() for part in (f"--{key.replace('_', '-')}", value)]
        where = ["--json", str(folder / "result.json")] if self.output == "json" else ["--out", str(folder)]
        return [*self.command, *flags, *where]


def parse_grid(items: list[str]) -> dict[str, tuple[str, ...]]:
    """`["seed=0,1,2", "popsize=8,16"]` -> {"seed": ("0", "1", "2"), "popsize": ("8", "16")}."""
    grid: dict[str, tuple[str, ...]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not re.fullmatch(r"[a-z][a-z0-9_-]*", key) or not values:
            raise ValueError(f"--grid {item!r}: write key=value1,value2,...")
        if key in grid:
            raise ValueError(f"--grid: {key!r} is given twice")
        grid[key] = tuple(v.strip() for v in values.split(","))
    return grid


def read_grid(path: str | os.PathLike) -> dict[str, tuple[str, ...]]:
    """A grid file: a JSON or YAML mapping of flag name to a list of values (strings, numbers, booleans)."""
    path = Path(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise ValueError(f"{path}: not a YAML file ({str(err).splitlines()[0]})") from None
    else:
        data = read_json(path)
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: a grid is a mapping of flag name to a list of values")
    items = []
    for key, values in data.items():
        values = values if isinstance(values, list) else [values]
        if not values or not all(isinstance(v, str | int | float | bool) for v in values):
            raise ValueError(f"{path}: {key!r} needs a list of strings, numbers or booleans")
        items.append(f"{key}=" + ",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in values))
    return parse_grid(items)


def point_name(point: dict[str, str]) -> str:
    """A folder name for a point: `popsize=8,seed=0` with anything unsafe replaced."""
    return ",".join(f"{k}={re.sub(r'[^A-Za-z0-9._-]', '_', v)}" for k, v in point.items())


def run_point(argv: list[str], folder: str) -> dict[str, Any]:
    """A job: run `rewire ARGV`, then mark the point finished (`done.json`). Raises on failure, with the
    command's last error line."""
    start = time.time()
    command = [sys.executable, "-c", "from rewire.cli import main; main()", *argv]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ["(no output)"]
        raise RuntimeError(f"rewire {' '.join(argv)} exited {proc.returncode}: {lines[-1]}")
    record = {"argv": argv, "seconds": time.time() - start}
    write_json(Path(folder) / "done.json", record)
    return record


def point_result(folder: Path, output: str) -> Any:
    """A finished point's result: its JSON, or its run directory's results."""
    if output == "json":
        return read_json(folder / "result.json")
    for path in sorted(folder.glob("*/*.json")):
        if path.name in RESULT_NAMES:
            return read_json(path)
    raise ValueError(f"{folder}: the point's run directory has no {' or '.join(RESULT_NAMES)}")


def scalars(data: Any, prefix: str = "") -> dict[str, float | str | bool]:
    """The scalar leaves of a JSON value by dotted path (lists index as `.0`, `.1`, ...)."""
    if isinstance(data, dict):
        return {k: v for key, value in data.items() for k, v in scalars(value, f"{prefix}{key}.").items()}
    if isinstance(data, list):
        return {k: v for i, value in enumerate(data) for k, v in scalars(value, f"{prefix}{i}.").items()}
    return {prefix[:-1]: data} if isinstance(data, int | float | str | bool) else {}


def gather(sweep: Sweep, out: Path, metric: str | None) -> list[dict[str, Any]]:
    """table.json and table.csv (a row per finished point: its grid values, then every scalar of its
    result) and sweep.png (`metric`, default: the first result number that varies (not an echoed setting),
    against the first grid key)."""
    rows = []
    for point in sweep.points():
        folder = out / point_name(point)
        if (folder / "done.json").exists():
            result = scalars(point_result(folder, sweep.output))
            rows.append(dict(point) | {k: v for k, v in result.items() if k not in point})
    write_json(out / TABLE, rows)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns)
    writer.writeheader()
    writer.writerows(rows)
    write_bytes(out / TABLE_CSV, buffer.getvalue().encode())
    numeric = [c for c in columns if c not in sweep.grid and all(_number(r.get(c)) for r in rows)]
    outputs = [c for c in numeric if not c.startswith(INPUTS)]  # results, not the settings echoed back
    varying = [c for c in outputs if len({r[c] for r in rows}) > 1]
    metric = metric or (varying or outputs or [None])[0]
    if metric is not None and rows:
        if metric not in numeric:
            raise ValueError(f"--metric {metric!r}: not a number in every row; numbers: {numeric[:20]}")
        _plot(sweep, rows, metric, out / PLOT)
    return rows


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _plot(sweep: Sweep, rows: list[dict[str, Any]], metric: str, path: Path) -> Path:
    from rewire.report import plot_curves

    first, rest = next(iter(sweep.grid)), list(sweep.grid)[1:]
    xs = list(sweep.grid[first])
    groups: dict[str, list[float]] = {}
    for row in rows:
        label = ", ".join(f"{k}={row[k]}" for k in rest) or metric
        groups.setdefault(label, [float("nan")] * len(xs))[xs.index(row[first])] = float(row[metric])
    positions = [float(x) if re.fullmatch(r"-?[0-9.eE+-]+", x) else i for i, x in enumerate(xs)]
    return plot_curves(path, positions, groups, first, metric, f"rewire {' '.join(sweep.command)}")


def run_sweep(
    sweep: Sweep, out: str | os.PathLike, executor: str = "local", metric: str | None = None
) -> list[dict[str, Any]]:
    """Run every unfinished point of `sweep` under `out` as a submitit job, wait for them, and gather the
    table. `out` records the sweep (`sweep.json`); a restart with the same sweep skips finished points, and
    another sweep there is refused. A failed point is reported after the others have run."""
    import submitit

    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose from {list(EXECUTORS)}")
    out = Path(out)
    record = {"command": list(sweep.command), "grid": {k: list(v) for k, v in sweep.grid.items()}}
    if (out / RECORD).exists():
        if read_json(out / RECORD) != record:
            raise ValueError(f"{out}: holds another sweep ({RECORD} differs); choose another --out")
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / RECORD, record)
    jobs = submitit.AutoExecutor(folder=out / "submitit", cluster=None if executor == "slurm" else "local")
    jobs.update_parameters(timeout_min=24 * 60)
    pending = []
    for point in sweep.points():
        folder = out / point_name(point)
        if not (folder / "done.json").exists():
            folder.mkdir(exist_ok=True)
            pending.append((point, jobs.submit(run_point, sweep.argv(point, folder), str(folder))))
    failures = []
    for point, job in pending:
        try:
            job.result()
        except Exception as err:  # submitit re-raises the job's error wrapped; keep its last line
            failures.append(f"{point_name(point)}: {str(err).strip().splitlines()[-1]}")
    rows = gather(sweep, out, metric)
    if failures:
        raise ValueError(f"{len(failures)} of {len(sweep.points())} points failed: " + "; ".join(failures))
    return rows
