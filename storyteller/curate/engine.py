"""The datatrove executor: each stage of curate is one datatrove step, run for each of the
stage's tasks (its rank) by datatrove's local executor here, or submitted to Slurm as one job
array per stage, each depending on the one before. datatrove keeps a completion record per task,
so a rerun skips what finished — on top of the stages' own markers."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from datatrove.pipeline.base import PipelineStep

from storyteller import console
from storyteller.curate.executors import worker_count
from storyteller.curate.prepare import Pool
from storyteller.curate.stages import GLOBAL_STAGES, STAGES, Plan, run_task


class LazyPool:
    """A one-process Pool made on first use: a datatrove task is already one of many
    processes, and the one-task stages need no tokenizer at all."""

    def __init__(self, config):
        self.config = config
        self.pool: Pool | None = None

    def map_chunks(self, method: str, chunks, in_flight: int = 0):
        if self.pool is None:
            self.pool = Pool(self.config, 1)
        return self.pool.map_chunks(method, chunks, in_flight)


class CurateStage(PipelineStep):
    """One stage of curate as a datatrove step: runs the stage's task for the rank it is given."""

    name = "storyteller curate"
    type = "curate"

    def __init__(self, plan: Plan, stage: str, isolate: bool = False):
        super().__init__()
        self.plan, self.stage, self.isolate = plan, stage, isolate

    def run(self, data, rank: int = 0, world_size: int = 1):
        if self.isolate:
            run_in_child(self.plan, self.stage, rank)
        else:
            run_task(self.plan, self.stage, rank, LazyPool(self.plan.config), console.Steps(None))
        self.stat_update(f"{self.stage} tasks")
        yield from ()


def run_in_child(plan: Plan, stage: str, rank: int) -> None:
    """Run a task in a forked child and wait for it. datatrove's local executor runs a one-task
    stage in the command's own process; what that stage held (ids and groups of every story)
    would stay with the command and be inherited by every task forked after it."""
    import multiprocessing

    child = multiprocessing.get_context("fork").Process(
        target=run_task, args=(plan, stage, rank, LazyPool(plan.config), console.Steps(None)))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"curate's {stage} task ended with exit code {child.exitcode} "
                           "(its error is above)")


def datatrove_executors(plan: Plan) -> list[Any]:
    """One datatrove executor per stage, each depending on the one before."""
    resources = plan.config.resources
    workers = worker_count(plan.config.workers)
    executors: list[Any] = []
    for stage in STAGES:
        tasks = plan.stage_tasks(stage)
        isolate = stage in GLOBAL_STAGES and not resources.slurm_partition
        common = {"pipeline": [CurateStage(plan, stage, isolate)], "tasks": tasks,
                  "logging_dir": f"{plan.work.rstrip('/')}/logs/{stage}", "skip_completed": True,
                  "depends": executors[-1] if executors else None}
        if resources.slurm_partition:
            from datatrove.executor import SlurmPipelineExecutor

            executors.append(SlurmPipelineExecutor(
                **common, time=resources.slurm_time, partition=resources.slurm_partition,
                job_name=f"curate-{stage}", cpus_per_task=1,
                mem_per_cpu_gb=max(1, int(resources.memory_gb)),
                venv_path=os.environ.get("VIRTUAL_ENV") or sys.prefix,
                workers=1 if stage in GLOBAL_STAGES else -1))
        else:
            from datatrove.executor import LocalPipelineExecutor

            # fork: each task starts from this process, with the modules and the tokenizer
            # already loaded, instead of importing everything again (seconds per task).
            executors.append(LocalPipelineExecutor(**common, workers=min(tasks, workers),
                                                   start_method="fork"))
    return executors


def run_datatrove(plan: Plan) -> bool:
    """Run (or, on Slurm, submit) every stage; True when the outputs are written."""
    if console.quiet():
        from loguru import logger

        logger.remove()
        logger.add(sys.stderr, level="WARNING")
    logging.getLogger("datatrove").setLevel(logging.WARNING)
    if not plan.config.resources.slurm_partition:
        from storyteller.models import load_tokenizer

        # Loaded once here, inherited by every forked task; their own threads would only
        # compete with the other tasks for the same cores.
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        load_tokenizer(plan.config.tokenizer)
    executors = datatrove_executors(plan)
    executors[-1].run()
    return not plan.config.resources.slurm_partition
