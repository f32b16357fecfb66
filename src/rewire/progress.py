"""Progress of long runs: a rich bar in a terminal, plain periodic lines otherwise (nohup, a cluster
scheduler, a file), nothing when quiet."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

PLAIN_INTERVAL_S = 10.0  # seconds between plain progress lines


class Bar:
    """Handle to one progress display; every method is a no-op when it is quiet."""

    def __init__(self, total: int, unit: str = "steps", done: int = 0):
        self.total, self.unit, self.done, self.text = total, unit, done, ""

    def advance(self, steps: int, note: str | None = None) -> None:
        self.done += steps
        if note is not None:
            self.text = note

    def note(self, text: str) -> None:
        self.text = text


class _RichBar(Bar):
    def __init__(self, progress: Progress, task: int, total: int, unit: str, done: int):
        super().__init__(total, unit, done)
        self._progress, self._task = progress, task

    def advance(self, steps: int, note: str | None = None) -> None:
        super().advance(steps, note)
        self._progress.update(self._task, advance=steps, note=self.text)
        speed = self._progress.tasks[self._task].speed
        if speed:
            self._progress.update(self._task, rate=f"{speed:,.1f} {self.unit}/s")

    def note(self, text: str) -> None:
        super().note(text)
        self._progress.update(self._task, note=text)


class _PlainBar(Bar):
    """One line every `PLAIN_INTERVAL_S` seconds and one at the end: done/total, rate, time left, note."""

    def __init__(self, description: str, total: int, unit: str, done: int):
        super().__init__(total, unit, done)
        self.description = description
        self.start = self.last = time.monotonic()
        self.start_done = done  # units done before this process (a resumed run) do not count in its rate

    def advance(self, steps: int, note: str | None = None) -> None:
        super().advance(steps, note)
        if time.monotonic() - self.last >= PLAIN_INTERVAL_S:
            self.line()

    def line(self) -> None:
        self.last = now = time.monotonic()
        elapsed, ran = now - self.start, self.done - self.start_done
        rate = ran / elapsed if elapsed > 0 and ran > 0 else 0.0
        left = (
            f", {(self.total - self.done) / rate:.0f} s left" if rate > 0 and self.done < self.total else ""
        )
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        text = f"; {self.text}" if self.text else ""
        print(
            f"{self.description}: {self.done}/{self.total} {self.unit}{share}, {rate:,.2f} {self.unit}/s"
            f"{left}{text}",
            file=sys.stderr,
            flush=True,
        )


@contextmanager
def progress_bar(
    description: str, total: int, quiet: bool = False, unit: str = "steps", done: int = 0
) -> Iterator[Bar]:
    """Progress of `total` units (`done` of them before this call): a bar on a terminal (stderr), plain
    lines elsewhere, nothing with `quiet`."""
    if quiet:
        yield Bar(total, unit, done)
        return
    if not sys.stderr.isatty():
        bar = _PlainBar(description, total, unit, done)
        yield bar
        bar.line()
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}", markup=False),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task(description, total=total, completed=done, note="", rate="")
        yield _RichBar(progress, task, total, unit, done)
