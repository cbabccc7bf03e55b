"""The local executor: every stage's tasks in this process, the per-story work of each task in
the worker pool. (The datatrove executor is `storyteller/curate/engine.py`.) Both run the same
task functions, so they write the same bytes; both skip tasks already finished, which is what
`--resume` relies on."""

from __future__ import annotations

import os
import time
from typing import Any

from storyteller import console
from storyteller.curate.prepare import Pool
from storyteller.curate.stages import STAGES, Plan, run_task
from storyteller.curate.work import Work

TITLES = {"read": "reading and cleaning", "link": "linking duplicates", "tag": "tagging",
          "split": "splitting", "pairs": "building pairs", "write": "writing"}


def worker_count(setting: int) -> int:
    """`workers: 0` means one per core (at most 8)."""
    return setting if setting > 0 else min(8, os.cpu_count() or 1)


def stage_line(stage: str, summaries: list[dict[str, Any]], seconds: float) -> str:
    """What a stage did, in one line: `read: 2,000,000 stories from 64 tasks in 12:34 (2,653/s)`."""
    total = {key: sum(s.get(key, 0) for s in summaries)
             for key in ("stories", "records", "exact", "near", "groups", "stories_kept")}
    pace = f" in {console.clock_time(seconds)}"
    if stage == "read":
        what = f"{total['records']:,} records, {total['stories']:,} stories kept by the filters"
        pace += f" ({total['records'] / seconds:,.0f} records/s)" if seconds > 0 else ""
    elif stage == "link":
        what = f"{total['exact']:,} exact and {total['near']:,} near duplicates"
    elif stage == "split":
        what = f"{total['groups']:,} groups"
    elif stage == "pairs":
        pairs = sum(sum(s.get("pairs", {}).values()) for s in summaries)
        what = f"{pairs:,} pairs"
    elif stage == "write":
        what = f"{total['stories_kept']:,} stories written"
    else:
        what = f"{total['stories']:,} stories"
    tasks = f" ({len(summaries)} tasks)" if len(summaries) > 1 else ""
    return f"{TITLES[stage]}{tasks}: {what}{pace}"


def run_local(plan: Plan) -> None:
    """Every stage in turn in this process; the per-story work of a task in the worker pool."""
    work = Work(plan.work)
    with console.steps() as track, Pool(plan.config, worker_count(plan.config.workers)) as pool:
        for stage in STAGES:
            started = time.perf_counter()
            ranks = range(plan.stage_tasks(stage))
            if len(ranks) == 1:
                run_task(plan, stage, 0, pool, track)
            else:  # many tasks: one bar for the stage, none per task
                for rank in track.track(ranks, TITLES[stage]):
                    run_task(plan, stage, rank, pool, console.Steps(None))
            if not console.quiet():
                console.console.print(stage_line(stage, [work.summary(stage, r) for r in ranks],
                                                 time.perf_counter() - started),
                                      markup=False, highlight=False, soft_wrap=True)
        pool.close()
