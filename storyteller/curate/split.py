"""Train / validation / test assignment by group, stratified by genre, deterministic for a seed.

Everything derived from one story (augmented variants, continuation windows, kept
near-duplicates) shares the story's group, and a group goes to exactly one split."""

from __future__ import annotations

from typing import Mapping

import xxhash

SPLITS = ("train", "val", "test")


def _order_key(seed: int, group: str) -> str:
    return xxhash.xxh64_hexdigest(f"{seed}:{group}".encode())


def assign_splits(groups: Mapping[str, str | None], fractions: Mapping[str, float],
                  seed: int) -> dict[str, str]:
    """group → split, for `groups` given as group → stratum (the genre, or None).

    Groups are ordered by stratum, then by a seeded hash; each in turn goes to the split that is
    furthest below its share so far. The whole dataset gets its fractions to within one group,
    and each stratum gets them to within about one group too, however many small strata
    there are."""
    names = [name for name in SPLITS if fractions.get(name, 0) > 0]
    total = sum(fractions[name] for name in names)
    ordered = sorted(groups, key=lambda g: (groups[g] or "", _order_key(seed, g), g))
    assigned = {name: 0 for name in names}
    assignment: dict[str, str] = {}
    for count, group in enumerate(ordered, start=1):
        name = max(names, key=lambda n: (fractions[n] / total * count - assigned[n], -names.index(n)))
        assigned[name] += 1
        assignment[group] = name
    return assignment
