"""The training console: a live bar with step, loss, tokens/s and ETA on a terminal, or a
plain line per tenth of the run, and at least every $STORYTELLER_PROGRESS_EVERY seconds (30 by
default), when output goes to a log."""

from __future__ import annotations

import os
import sys
import time

from storyteller import console


class progress_bar:
    """Step, loss, tokens/s and ETA: a live bar on a terminal, a line per tenth of the run
    otherwise (logs stay readable)."""

    def __init__(self, total: int, done: int, main: bool):
        self.total, self.done, self.main = total, done, main
        self.live = main and not console.quiet() and (
            sys.stderr.isatty() or bool(os.environ.get("STORYTELLER_PROGRESS")))
        self.last_line = done
        self.every = console.line_interval()
        self.last_time = time.perf_counter()
        self.progress = None
        self.started = time.perf_counter()
        self.loss = self.rate = None

    def __enter__(self):
        if self.live:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self.progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                                     TextColumn("eta"), TimeRemainingColumn(),
                                     console=console.console)
            self.progress.start()
            self.task = self.progress.add_task("training", total=self.total, completed=self.done,
                                               info="")
        return self.on_step

    def on_step(self, state, record) -> None:
        if not self.main or console.quiet():
            return
        if record.get("kind") == "sample":
            # The start of the story, one line: the whole of it is in samples.jsonl.
            opening = " ".join(record["story"].split())
            opening = opening[:100] + "…" if len(opening) > 100 else opening
            console.console.print(f"sample at step {record['step']} ({record['seconds']:.1f} s): "
                                  f"{opening!r}", markup=False, highlight=False)
            return
        if record.get("kind") == "train":
            self.loss = record["loss"]
            self.rate = record.get("tokens_per_s", self.rate)
        info = f"loss {self.loss:.3f}" if self.loss is not None else ""
        if self.rate:
            info += f" {self.rate:,.0f} tok/s"
        if state.best_loss is not None:
            info += f" val {state.best_loss:.3f}"
        if self.progress is not None:
            self.progress.update(self.task, completed=state.step, info=info)
        elif record.get("kind") == "eval" or state.step - self.last_line >= max(1, self.total // 10) \
                or state.step == self.total or time.perf_counter() - self.last_time >= self.every:
            self.last_line, self.last_time = state.step, time.perf_counter()
            elapsed = time.perf_counter() - self.started
            done_now = state.step - self.done
            eta = elapsed / done_now * (self.total - state.step) if done_now else 0
            what = f"eval loss {record['val_loss']:.4f}" if record.get("kind") == "eval" else info
            console.console.print(f"step {state.step}/{self.total} {what} eta {eta:.0f}s")

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False
