"""The one run loop every long-running system goes through (README, "Reliability").

A system gives the loop a `Resumable`: `init()` or `restore(stored)` to start, `step()` to advance one unit
of work and return its metric rows, `snapshot()` for its whole state as named arrays plus JSON. The loop owns
the rest: the progress display, the `metrics.jsonl` stream, periodic atomic checkpoints in rewire's file
format (`rewire.store`), exact resume, and timing with compilation left out.

Crash safety: a checkpoint records how many bytes of `metrics.jsonl` it covers; resuming truncates the
stream to that length and restores the state, so a run killed at any moment and resumed writes the same bits
as one that was never stopped (the systems' steps are deterministic functions of their state).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from jax import monitoring

from rewire import store
from rewire.hosts import decide, is_writer
from rewire.progress import progress_bar
from rewire.runs import to_jsonable

METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.ckpt"
TENSORBOARD = "tensorboard"  # the event files' folder in a run directory
LOOP_KIND = "rewire/run"

# JAX reports the time it spends tracing, lowering and compiling through these events (jax._src.dispatch).
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_compile = {"seconds": 0.0}
_compile_lock = threading.Lock()


def _on_duration(event: str, duration: float, **_: Any) -> None:
    if event in COMPILE_EVENTS:
        with _compile_lock:
            _compile["seconds"] += duration


monitoring.register_event_duration_secs_listener(_on_duration)


def compile_seconds() -> float:
    """Seconds this process has spent tracing and compiling JAX functions so far."""
    return _compile["seconds"]


@dataclass
class Stopwatch:
    """Wall time of timed blocks with JAX's compilation time taken out, and how many units they did."""

    seconds: float = 0.0
    compile_seconds: float = 0.0
    units: int = 0

    @contextmanager
    def time(self, units: int = 0) -> Iterator[None]:
        start, compiled = time.perf_counter(), compile_seconds()
        yield
        spent_compiling = compile_seconds() - compiled
        self.compile_seconds += spent_compiling
        self.seconds += max(0.0, time.perf_counter() - start - spent_compiling)
        self.units += units

    @property
    def rate(self) -> float:
        """Units per second, compilation excluded (nan before anything was timed)."""
        return self.units / self.seconds if self.seconds > 0 else float("nan")

    def summary(self, unit: str) -> dict[str, float]:
        return {
            f"{unit}_timed": self.units,
            "seconds": self.seconds,
            "compile_seconds": self.compile_seconds,
            f"{unit}_per_s": self.rate,
        }


class Resumable(Protocol):
    """What a system gives the run loop. `step` must be a deterministic function of the state."""

    kind: str  # the checkpoint's kind, e.g. "rewire.calql/finetuner"
    unit: str  # what `done` and `total` count: "steps", "generations", "rounds", "episodes", "updates"

    @property
    def total(self) -> int: ...

    @property
    def done(self) -> int: ...

    @property
    def finished(self) -> bool: ...

    def init(self) -> None: ...

    def step(self) -> list[dict]: ...

    def snapshot(self) -> tuple[dict[str, np.ndarray], dict]: ...

    def restore(self, stored: store.Stored) -> None: ...

    def note(self) -> str: ...

    # Optional: `rebuild_metrics() -> list[dict]`, for tasks whose rows are a function of their state; the
    # loop then rebuilds a stream that is shorter than the checkpoint says (see `Loop._resume_metrics`).


def tensorboard_writer(folder: Path) -> Any:
    """A tensorboardX `SummaryWriter` into `folder` (a clear error if the optional extra is missing)."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ValueError("--tensorboard needs tensorboardX: pip install 'rewire[tensorboard]'") from None
    return SummaryWriter(str(folder))


def tensorboard_scalars(row: dict) -> list[tuple[str, float]]:
    """The numbers of a metrics row as TensorBoard scalars: a list of numbers (one per agent or run)
    becomes `name/0`, `name/1`, ...; a row's `kind` or `phase` prefixes its names; text is left out."""
    prefix = "/".join(str(row[k]) for k in ("kind", "phase") if isinstance(row.get(k), str))
    out = []
    for name, value in row.items():
        tag = f"{prefix}/{name}" if prefix else name
        if isinstance(value, bool) or not isinstance(value, int | float | list):
            continue
        if isinstance(value, list):
            out += [(f"{tag}/{i}", float(v)) for i, v in enumerate(value) if isinstance(v, int | float)]
        else:
            out.append((tag, float(value)))
    return out


def jsonl(rows: list[dict]) -> bytes:
    """Metric rows as the stream stores them: one JSON object per line."""
    return "".join(json.dumps(to_jsonable(r), allow_nan=False) + "\n" for r in rows).encode()


def write_checkpoint(path: str | os.PathLike, task: Resumable, metrics_bytes: int = 0) -> Path:
    """The task's whole state in rewire's format, with what the loop needs to resume it."""
    arrays, meta = task.snapshot()
    loop = {"done": task.done, "finished": task.finished, "metrics_bytes": metrics_bytes}
    return store.write(path, task.kind, arrays, {"loop": loop, "task": meta})


def read_checkpoint(path: str | os.PathLike, kind: str) -> tuple[store.Stored, dict]:
    """(the stored checkpoint with `meta` = the task's own metadata, the loop's record)."""
    stored = store.read(path, kind)
    loop, meta = stored.meta.get("loop"), stored.meta.get("task")
    if (
        not isinstance(loop, dict)
        or not isinstance(meta, dict)
        or not isinstance(loop.get("metrics_bytes"), int)
    ):
        raise store.StoreError(f"{path}: not a rewire checkpoint (no loop record)")
    return store.Stored(stored.path, stored.kind, meta, stored.arrays), loop


@dataclass
class Loop:
    """Drives one `Resumable`. With a `directory`, the run resumes from `directory/checkpoint` if it is
    there, streams metrics to `directory/metrics.jsonl` and checkpoints every `every` seconds (0: after every
    step) and at the end; without one, it runs in memory (benchmarks)."""

    task: Resumable
    directory: Path | None = None
    checkpoint: str = CHECKPOINT
    every: float = 30.0
    quiet: bool = False
    description: str = ""
    tensorboard: bool = False  # also write the metrics stream as TensorBoard events (tensorboardX)
    watch: Stopwatch = field(default_factory=Stopwatch)
    started: bool = False
    writer: Any = None

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.directory is None else self.directory / self.checkpoint

    @property
    def metrics_path(self) -> Path | None:
        return None if self.directory is None else self.directory / METRICS

    def start(self) -> None:
        """Restore the task from its checkpoint, or initialise it; once."""
        if self.started:
            return
        self.started = True
        if self.directory is None:
            self.task.init()
            return
        writer = is_writer()  # in a job of several processes, process 0 alone touches the files
        if writer:
            self.directory.mkdir(parents=True, exist_ok=True)
            store.remove_temporaries(self.directory)
        if not self.checkpoint_path.exists():
            self.task.init()
            if writer:
                self.metrics_path.unlink(missing_ok=True)  # rows of a run killed before its first checkpoint
            return
        stored, loop = read_checkpoint(self.checkpoint_path, self.task.kind)
        self.task.restore(stored)
        if writer:
            self._resume_metrics(loop["metrics_bytes"])

    def _resume_metrics(self, size: int) -> None:
        """Cut the stream back to what the checkpoint covers. A task whose rows are a function of its state
        (`rebuild_metrics`) has a missing or short stream rebuilt; for any other task that is an error."""
        metrics = self.metrics_path
        have = metrics.stat().st_size if metrics.exists() else 0
        if have >= size:
            if metrics.exists():
                os.truncate(metrics, size)
            return
        rebuild = getattr(self.task, "rebuild_metrics", None)
        data = b"" if rebuild is None else jsonl(rebuild())
        if rebuild is None or len(data) != size:
            raise store.StoreError(
                f"{metrics}: holds {have} bytes, fewer than the {size} its checkpoint covers (edited?)"
            )
        store.write_bytes(metrics, data)

    def save(self) -> Path | None:
        """Checkpoint now: flush and fsync the metrics stream, then write the state atomically. Every process
        of a job takes the snapshot (a state split across them is gathered); process 0 alone writes it."""
        path = self.checkpoint_path
        if path is None:
            return path
        size = 0
        if is_writer() and self.metrics_path.exists():
            with open(self.metrics_path, "rb+") as f:
                os.fsync(f.fileno())
                size = f.seek(0, os.SEEK_END)
        return write_checkpoint(path, self.task, size)

    def _emit(self, rows: list[dict]) -> None:
        if self.metrics_path is not None and rows and is_writer():
            with open(self.metrics_path, "ab") as f:
                f.write(jsonl(rows))
        if self.writer is not None:
            for row in rows:
                for name, value in tensorboard_scalars(row):
                    self.writer.add_scalar(name, value, self.task.done)

    def _open_writer(self) -> None:
        if self.tensorboard and self.directory is not None and is_writer():
            self.writer = tensorboard_writer(self.directory / TENSORBOARD)

    def run(self, max_steps: int | None = None) -> Stopwatch:
        """Step until the task is finished (or `max_steps` more steps), then checkpoint. Returns the
        compile-excluded timing of the steps this process ran."""
        self.start()
        self._open_writer()
        task, last_save, steps = self.task, time.monotonic(), 0
        label = self.description or task.kind
        with progress_bar(label, task.total, self.quiet, task.unit, task.done) as bar:
            while not task.finished and (max_steps is None or steps < max_steps):
                before = task.done
                with self.watch.time():
                    rows = task.step()
                self.watch.units += task.done - before
                steps += 1
                self._emit(rows)
                bar.advance(task.done - before, task.note())
                due = time.monotonic() - last_save >= self.every
                if self.directory is not None and decide(due):  # process 0's clock decides for the job
                    self.save()
                    last_save = time.monotonic()
        self.save()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        return self.watch
