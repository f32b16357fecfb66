"""Progress bars for long runs (rich): steps done, steps/s, ETA and the last evaluation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class Bar:
    """Handle to one bar; every method is a no-op when the bar is quiet."""

    def __init__(self, progress: Progress | None = None, task: int | None = None):
        self._progress, self._task = progress, task

    def advance(self, steps: int, note: str | None = None) -> None:
        if self._progress is None:
            return
        fields = {"note": note} if note is not None else {}
        self._progress.update(self._task, advance=steps, **fields)
        speed = self._progress.tasks[self._task].speed
        if speed:
            self._progress.update(self._task, rate=f"{speed:,.0f} steps/s")

    def note(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, note=text)


@contextmanager
def progress_bar(description: str, total: int, quiet: bool = False) -> Iterator[Bar]:
    """A bar showing steps done, steps/s, ETA and a free-text note; `quiet` turns it off."""
    if quiet:
        yield Bar()
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}"),
    )
    with Progress(*columns) as progress:
        yield Bar(progress, progress.add_task(description, total=total, note="", rate=""))
