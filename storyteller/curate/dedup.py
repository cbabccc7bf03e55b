"""Deduplication: exact (hash of normalised text) and near-duplicate (MinHash LSH).

One representative is kept per cluster, the first in input order, so results do not depend on
anything but the inputs and the config."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import xxhash
from datasketch import MinHash, MinHashLSH


def normalized_words(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text).lower()
    return re.findall(r"\w+", text)


def exact_key(text: str) -> str:
    """Equal for texts that differ only in case, punctuation and spacing."""
    return xxhash.xxh3_128_hexdigest(" ".join(normalized_words(text)).encode())


def shingles(text: str, size: int) -> list[bytes]:
    tokens = normalized_words(text)
    if len(tokens) < size:
        return [" ".join(tokens).encode()] if tokens else [b""]
    return [" ".join(tokens[i:i + size]).encode() for i in range(len(tokens) - size + 1)]


SCHEME = "affine32"


def _hash32(data: bytes) -> int:
    return xxhash.xxh32_intdigest(data)


class Signer:
    """Makes MinHash signatures that share one set of permutations (making them is costly)."""

    def __init__(self, num_perm: int, shingle_words: int, seed: int = 1):
        self.num_perm = num_perm
        self.shingle_words = shingle_words
        self.seed = seed
        self._template = MinHash(num_perm=num_perm, seed=seed, hashfunc=_hash32, scheme=SCHEME)

    def sign(self, text: str) -> MinHash:
        signature = MinHash(num_perm=self.num_perm, seed=self.seed, hashfunc=_hash32,
                            permutations=self._template.permutations, scheme=SCHEME)
        signature.update_batch(shingles(text, self.shingle_words))
        return signature

    def sign_values(self, text: str) -> np.ndarray:
        return self.sign(text).hashvalues

    def sign_with_set(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The signature and the sorted hashed shingle set (for exact Jaccard checks)."""
        hashed = np.unique(np.fromiter((_hash32(s) for s in shingles(text, self.shingle_words)),
                                       dtype=np.uint32))
        signature = MinHash(num_perm=self.num_perm, seed=self.seed, hashfunc=_identity,
                            permutations=self._template.permutations, scheme=SCHEME)
        signature.update_batch(hashed)
        return signature.hashvalues, hashed


def _identity(value) -> int:
    return int(value)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted unique arrays."""
    if not len(a) and not len(b):
        return 1.0
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common)


@dataclass
class Cluster:
    representative: int
    members: list[int] = field(default_factory=list)   # indices of the dropped near-duplicates
    similarity: dict[int, float] = field(default_factory=dict)


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:  # the smaller index (earlier in input order) stays the root
            self.parent[max(ra, rb)] = min(ra, rb)


def exact_duplicates(keys: Sequence[str]) -> dict[int, int]:
    """index → index of the first item with the same key, for every item that repeats one."""
    first: dict[str, int] = {}
    duplicates = {}
    for index, key in enumerate(keys):
        if key in first:
            duplicates[index] = first[key]
        else:
            first[key] = index
    return duplicates


def near_duplicate_clusters(signatures: Sequence[np.ndarray], threshold: float, num_perm: int,
                            progress: Iterable[int] | None = None,
                            shingle_sets: Sequence[np.ndarray] | None = None) -> list[Cluster]:
    """Clusters of near-duplicates. MinHash LSH, tuned below `threshold` so that few true pairs
    escape it, proposes candidates; a pair joins only when its Jaccard similarity reaches
    `threshold` — computed exactly from the shingle sets where given, else estimated."""
    lsh = MinHashLSH(threshold=max(0.2, threshold - 0.2), num_perm=num_perm)
    union = _UnionFind(len(signatures))
    similarity: dict[tuple[int, int], float] = {}
    minhashes = [MinHash(num_perm=num_perm, hashvalues=values, scheme=SCHEME) for values in signatures]
    for index in (progress if progress is not None else range(len(signatures))):
        candidate_keys = lsh.query(minhashes[index])
        for other in candidate_keys:
            if shingle_sets is not None:
                estimate = jaccard(shingle_sets[index], shingle_sets[other])
            else:
                estimate = float(np.mean(signatures[index] == signatures[other]))
            if estimate >= threshold:
                union.union(index, other)
                similarity[(other, index)] = estimate
        lsh.insert(index, minhashes[index], check_duplication=False)
    clusters: dict[int, Cluster] = {}
    for index in range(len(signatures)):
        root = union.find(index)
        if root != index:
            cluster = clusters.setdefault(root, Cluster(root))
            cluster.members.append(index)
    for (a, b), value in similarity.items():
        root = union.find(a)
        if root in clusters and b in clusters[root].members:
            clusters[root].similarity[b] = max(value, clusters[root].similarity.get(b, 0.0))
    return [clusters[root] for root in sorted(clusters)]
