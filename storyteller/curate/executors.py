"""The local executor: every stage's tasks in this process, the per-story work of each task in
the worker pool. (The datatrove executor is `storyteller/curate/engine.py`.) Both run the same
task functions, so they write the same bytes; both skip tasks already finished, which is what
`--resume` relies on."""

from __future__ import annotations

import os

from storyteller import console
from storyteller.curate.prepare import Pool
from storyteller.curate.stages import STAGES, Plan, run_task

TITLES = {"read": "reading and cleaning", "link": "linking duplicates", "tag": "tagging",
          "split": "splitting", "pairs": "building pairs", "write": "writing"}


def worker_count(setting: int) -> int:
    """`workers: 0` means one per core (at most 8)."""
    return setting if setting > 0 else min(8, os.cpu_count() or 1)


def run_local(plan: Plan) -> None:
    """Every stage in turn in this process; the per-story work of a task in the worker pool."""
    with console.steps() as track, Pool(plan.config, worker_count(plan.config.workers)) as pool:
        for stage in STAGES:
            ranks = range(plan.stage_tasks(stage))
            if len(ranks) == 1:
                run_task(plan, stage, 0, pool, track)
                continue
            # Many tasks: one bar for the stage, none per task.
            for rank in track.track(ranks, TITLES[stage]):
                run_task(plan, stage, rank, pool, console.Steps(None))
        pool.close()
