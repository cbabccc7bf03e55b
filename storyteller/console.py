"""Terminal output shared by every stage: progress bars on stderr and summary tables."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterable, Iterator, Sequence, TypeVar

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table

T = TypeVar("T")

console = Console(stderr=True, highlight=False)


def quiet() -> bool:
    return bool(os.environ.get("STORYTELLER_QUIET"))


class Steps:
    """One progress display for the steps of a command, one bar per step."""

    def __init__(self, progress: Progress | None):
        self.progress = progress

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        if self.progress is None:
            yield from items
            return
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        task = self.progress.add_task(description, total=total)
        for item in items:
            yield item
            self.progress.advance(task)
        self.progress.update(task, total=self.progress.tasks[task].completed)


@contextmanager
def steps() -> Iterator[Steps]:
    if quiet():
        yield Steps(None)
        return
    progress = Progress(SpinnerColumn(), TextColumn("{task.description:<22}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
                        TimeRemainingColumn(), console=console, transient=False,
                        disable=not sys.stderr.isatty() and not os.environ.get("STORYTELLER_PROGRESS"))
    with progress:
        yield Steps(progress)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> Table:
    result = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        result.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        result.add_row(*(str(cell) for cell in row))
    return result
