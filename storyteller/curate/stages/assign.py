"""The split stage (one task): train, val or test for every group, from each group's stratum,
written back per task as the split of each of its stories."""

from __future__ import annotations

from typing import Any

from storyteller.curate.split import assign_splits


def run(plan, rank: int, work, pool, track) -> dict[str, Any]:
    config = plan.config
    parts = work.begin("split", 0)
    by_genre = config.split.stratify == "genre"
    strata: dict[str, str | None] = {}
    per_task: list[list[str]] = []
    for task in range(plan.tasks):
        rows = work.read_pickle(("tag", f"{task:05d}", "strata.pkl"))
        for group, genre in rows:
            strata.setdefault(group, genre if by_genre else None)
        per_task.append([group for group, _ in rows])
    split_of = assign_splits(strata, {"train": config.split.train, "val": config.split.val,
                                      "test": config.split.test}, config.seed)
    del strata
    for task, groups in enumerate(per_task):
        work.write_pickle((*parts, f"splits-{task:05d}.pkl"), [split_of[g] for g in groups])
    return {"groups": len(split_of)}
