"""`storyteller curate` as stages of tasks that hand each other files, so that a corpus of
millions of stories is never held in memory, a killed run resumes from its finished tasks, and
the same tasks run on this machine or on a distributed engine.

    read   (a task per group of input files)  read, clean, filter, count tokens, hash, sign
    link   (one task)   exact and near duplicates, story ids and groups, the tagger
    tag    (a task per read task)   genre and style of each kept story
    split  (one task)   train / val / test per group
    pairs  (a task per read task)   prompt–story pairs, written per task and split
    write  (one task)   the curated directory: split files, rejects, manifest, report

Everything global is small per story (hashes, band keys, ids, groups), so the one-task stages
hold a few numbers per story, never a story's text. Each task's outputs depend only on its
inputs and the config, never on how many tasks or processes ran, so every executor writes the
same bytes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from storyteller.curate.config import CurateConfig
from storyteller.curate.sources import expand_inputs

STAGES = ("read", "link", "tag", "split", "pairs", "write")
GLOBAL_STAGES = ("link", "split", "write")
MAX_AUTO_TASKS = 256


@dataclass
class Plan:
    """What a run does, made once: every task of every stage reads it (pickled to engines)."""

    inputs: list[tuple[str, str]]          # (location, format), in input order
    groups: list[list[int]]                # the input indices each read task reads, in order
    out: str
    work: str                              # the work folder (a path or an fsspec URL)
    config: CurateConfig
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tasks(self) -> int:
        return len(self.groups)

    def stage_tasks(self, stage: str) -> int:
        return 1 if stage in GLOBAL_STAGES else self.tasks


def task_groups(count: int, tasks: int) -> list[list[int]]:
    """`count` inputs in `tasks` contiguous groups of near-equal size (input order kept)."""
    tasks = max(1, min(tasks, count)) if count else 1
    base, extra = divmod(count, tasks)
    groups, start = [], 0
    for index in range(tasks):
        size = base + (1 if index < extra else 0)
        groups.append(list(range(start, start + size)))
        start += size
    return groups


def make_plan(paths: Sequence[str], out: str | Path, config: CurateConfig) -> Plan:
    inputs = expand_inputs(list(paths), config.source.format)
    tasks = config.resources.tasks or min(MAX_AUTO_TASKS, len(inputs))
    work = config.resources.work_dir or str(Path(out) / ".curate-work")
    return Plan(inputs, task_groups(len(inputs), tasks), str(out), work, config)


def run_task(plan: Plan, stage: str, rank: int, pool, track) -> None:
    """Run one task of a stage (skipped where a finished run of it is on disk)."""
    from storyteller.curate.stages import assemble, assign, link, pairing, read, tagging
    from storyteller.curate.work import Work

    work = Work(plan.work)
    if work.done(stage, rank):
        return
    runner = {"read": read.run, "link": link.run, "tag": tagging.run, "split": assign.run,
              "pairs": pairing.run, "write": assemble.run}[stage]
    started = time.perf_counter()
    summary = runner(plan, rank, work, pool, track)
    work.mark_done(stage, rank, {**summary, "seconds": round(time.perf_counter() - started, 3)})
