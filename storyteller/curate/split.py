"""Train / validation / test assignment by group, stratified by genre, deterministic for a seed.

Everything derived from one story (augmented variants, continuation windows, kept
near-duplicates) shares the story's group, and a group goes to exactly one split."""

from __future__ import annotations

from collections import defaultdict
from typing import Mapping, Sequence

import xxhash

SPLITS = ("train", "val", "test")


def _order_key(seed: int, group: str) -> str:
    return xxhash.xxh64_hexdigest(f"{seed}:{group}".encode())


def allocate(n: int, fractions: Sequence[float]) -> list[int]:
    """Counts per split for `n` groups, by largest remainder; every split with a fraction > 0
    gets at least one group once there are enough groups to go round."""
    total = sum(fractions)
    exact = [n * f / total for f in fractions]
    counts = [int(x) for x in exact]
    for i in sorted(range(len(exact)), key=lambda i: (counts[i] - exact[i], i))[: n - sum(counts)]:
        counts[i] += 1
    if n >= len(fractions):
        for i, f in enumerate(fractions):
            if f > 0 and counts[i] == 0:
                donor = max(range(len(counts)), key=lambda j: counts[j])
                counts[donor] -= 1
                counts[i] += 1
    return counts


def assign_splits(groups: Mapping[str, str | None], fractions: Mapping[str, float],
                  seed: int) -> dict[str, str]:
    """group → split, for `groups` given as group → stratum (the genre, or None)."""
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for group, stratum in groups.items():
        by_stratum[stratum or ""].append(group)
    names = [s for s in SPLITS if s in fractions]
    weights = [fractions[s] for s in names]
    assignment: dict[str, str] = {}
    for stratum in sorted(by_stratum):
        members = sorted(by_stratum[stratum], key=lambda g: (_order_key(seed, g), g))
        counts = allocate(len(members), weights)
        start = 0
        for name, count in zip(names, counts):
            for group in members[start:start + count]:
                assignment[group] = name
            start += count
    return assignment
