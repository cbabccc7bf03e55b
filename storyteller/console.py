"""Terminal output shared by every stage: progress bars on stderr and summary tables."""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

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
    def counting(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        """A step whose items finish inside long calls (stories written 64 at a time by worker
        threads): gives `advance(n)`, callable from any thread, for each n items done."""
        if self.progress is None:
            yield lambda n: None
            return
        task = self.progress.add_task(description, total=total)
        try:
            yield lambda n: self.progress.advance(task, n)
        finally:
            self.progress.update(task, total=self.progress.tasks[task].completed)

    @contextmanager
    def phase(self, description: str) -> Iterator[None]:
        """A step that is one long call (loading or writing a model): a bar that runs until it
        ends, without a count."""
        if self.progress is None:
            yield
            return
        task = self.progress.add_task(description, total=None)
        try:
            yield
        finally:
            self.progress.update(task, total=1, completed=1)


class LineSteps(Steps):
    """Progress for a log or CI, where a bar would be noise: a line for each step that runs
    longer than `every` seconds, then one every `every` seconds with the count, the rate and
    the time left, and one when it ends. Short steps print nothing."""

    def __init__(self, every: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 write: Callable[[str], None] | None = None):
        super().__init__(None)
        self.every, self.clock = every, clock
        self.write = write or (lambda line: console.print(line, markup=False, highlight=False))

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        start = last = self.clock()
        done = 0
        for item in items:
            yield item
            done += 1
            now = self.clock()
            if now - last >= self.every:
                last = now
                self.write(f"{description}: {progress_line(done, total, now - start)}")
        if last != start:
            self.write(f"{description}: {done:,} done in {clock_time(self.clock() - start)}")

    @contextmanager
    def counting(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        """A line every `every` seconds with the count so far, the rate and the time left
        (the items finish inside long calls, so no loop here gets a turn to write), and one
        when it ends; a short step prints nothing."""
        done, lock = [0], threading.Lock()

        def advance(n: int) -> None:
            with lock:
                done[0] += n

        with self._ticking(description,
                           lambda elapsed: progress_line(done[0], total, elapsed),
                           lambda: f"{done[0]:,} done"):
            yield advance

    @contextmanager
    def phase(self, description: str) -> Iterator[None]:
        """A line every `every` seconds while one long call runs (the call gives no counts),
        and one when it ends; a short call prints nothing."""
        with self._ticking(description, lambda elapsed: f"running for {clock_time(elapsed)}",
                           lambda: "done", always_close=self.every == 0):
            yield

    @contextmanager
    def _ticking(self, description: str, line: Callable[[float], str],
                 closing: Callable[[], str], always_close: bool = False) -> Iterator[None]:
        """`line(elapsed)` every `every` seconds from a thread of its own while the block runs,
        then `closing()` with the time taken, where a line was written (or `always_close`)."""
        start = self.clock()
        stop = threading.Event()
        said = []

        def heartbeat() -> None:
            # `every` 0 (tests, or a log that wants everything) still waits a moment per line.
            while not stop.wait(max(self.every, 0.05)):
                said.append(True)
                self.write(f"{description}: {line(self.clock() - start)}")

        ticker = threading.Thread(target=heartbeat, name=f"progress: {description}", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()
            if said or always_close:
                self.write(f"{description}: {closing()} in {clock_time(self.clock() - start)}")


def clock_time(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def rate_text(done: int, elapsed: float) -> str:
    """`41.2/s`, or for slow items (a batch of stories on a CPU) the time each takes, `47.3 s
    each`: a rate that rounds to 0.0/s says nothing."""
    if done and elapsed > 0 and done / elapsed < 0.1:
        return f"{elapsed / done:,.1f} s each"
    return f"{done / elapsed if elapsed > 0 else 0.0:,.1f}/s"


def progress_line(done: int, total: int | None, elapsed: float) -> str:
    """`1,234/5,000 (25%), 41.2/s, 1:31 left` — or without the total where none is known."""
    rate = done / elapsed if elapsed > 0 else 0.0
    if not total:
        return f"{done:,} in {clock_time(elapsed)}, {rate_text(done, elapsed)}"
    left = (total - done) / rate if rate > 0 else 0.0
    return (f"{done:,}/{total:,} ({done / total:.0%}), {rate_text(done, elapsed)}, "
            f"{clock_time(left)} left")


def line_interval() -> float:
    """Seconds between progress lines in a log: $STORYTELLER_PROGRESS_EVERY, else 30."""
    raw = os.environ.get("STORYTELLER_PROGRESS_EVERY", "").strip()
    try:
        return max(float(raw), 0.0) if raw else 30.0
    except ValueError:
        from storyteller.errors import InputError

        raise InputError.at("$STORYTELLER_PROGRESS_EVERY", f"{raw!r} is not a number of seconds",
                            "set it to e.g. 30, or unset it") from None


@contextmanager
def steps() -> Iterator[Steps]:
    """Progress for a command's steps: bars on a terminal (or with $STORYTELLER_PROGRESS), lines
    with counts and time left in a log or CI ($STORYTELLER_PROGRESS_EVERY seconds apart, 30 by
    default), nothing with $STORYTELLER_QUIET."""
    if quiet():
        yield Steps(None)
        return
    if not sys.stderr.isatty() and not os.environ.get("STORYTELLER_PROGRESS"):
        yield LineSteps(line_interval())
        return
    progress = Progress(SpinnerColumn(), TextColumn("{task.description:<22}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
                        TimeRemainingColumn(), console=console, transient=False)
    with progress:
        yield Steps(progress)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> Table:
    result = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        result.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        result.add_row(*(str(cell) for cell in row))
    return result
