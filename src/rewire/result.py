"""What every system's high-level entry (`fit`) returns: a run directory and typed access to what it holds.

A run directory has `config.json` (config, seed, package versions), `metrics.jsonl` (one JSON row per
step of the run loop) and the system's artefact (a policy, a synthetic dataset, an editor, a learner
state). `Result` reads them; each system's subclass adds its artefact.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from rewire.loop import METRICS
from rewire.runs import create_dir, read_jsonl, read_run_record


class Result:
    """A run directory written by a system's `fit`. `progress` names the metrics column that counts the
    run's progress (steps, generations, rounds, episodes, updates)."""

    progress: ClassVar[str] = "step"

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Self:
        """The result of the run in `directory` (a one-line error if it is not a run directory)."""
        read_run_record(directory)
        return cls(directory)

    @property
    def record(self) -> dict[str, Any]:
        """config.json: {"config", "seed", "versions", ...}."""
        return read_run_record(self.directory)

    @property
    def seed(self) -> int | None:
        return self.record["seed"]

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """The metrics stream, one dict per row (losses, Q-values, temperatures, returns, ...)."""
        path = self.directory / METRICS
        return read_jsonl(path) if path.exists() else []

    def save(self, directory: str | os.PathLike) -> Path:
        """Copy the whole run to `directory` (made atomically; an existing non-empty one is refused)."""
        return create_dir(directory, lambda into: shutil.copytree(self.directory, into, dirs_exist_ok=True))

    def plot(self, key: str, path: str | os.PathLike | None = None) -> Path:
        """A line plot of the metrics column `key` against the progress column; `path` defaults to
        `<directory>/<key>.png`."""
        from rewire.report import plot_curves

        rows = [row for row in self.metrics if key in row and self.progress in row]
        if not rows:
            raise ValueError(f"{self.directory / METRICS}: no rows with both {self.progress!r} and {key!r}")
        x = np.asarray([row[self.progress] for row in rows], np.float64)
        y = np.asarray([row[key] for row in rows], np.float64)
        path = self.directory / f"{key.replace('/', '_')}.png" if path is None else Path(path)
        return plot_curves(path, x, {key: y}, self.progress, key, self.directory.name)
