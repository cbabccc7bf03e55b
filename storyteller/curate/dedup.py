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
from datasketch import LeanMinHash, MinHashLSH


def normalized_words(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text).lower()
    return re.findall(r"\w+", text)


def exact_key(text: str) -> str:
    """Equal for texts that differ only in case, punctuation and spacing."""
    return xxhash.xxh3_128_hexdigest(" ".join(normalized_words(text)).encode())


_MASK32 = np.uint64(0xFFFFFFFF)
_PRIME = np.uint64(0x100000001B3)


def _mix_to_32(values: np.ndarray) -> np.ndarray:
    """A 64-bit finaliser (MurmurHash3's) folded to 32 bits, so combined word hashes spread."""
    values = values ^ (values >> np.uint64(33))
    values = values * np.uint64(0xFF51AFD7ED558CCD)
    values = values ^ (values >> np.uint64(33))
    return (values & _MASK32).astype(np.uint32)


class Signer:
    """Shingle sets and MinHash signatures of texts.

    A shingle is `shingle_words` consecutive normalised words, hashed to 32 bits by combining the
    words' hashes (each word is hashed once per run, then cached). A signature is the minimum of
    `num_perm` universal hash permutations `(a·h + b) mod 2³²` over the shingle set, computed for
    all permutations at once with numpy."""

    def __init__(self, num_perm: int, shingle_words: int, seed: int = 1):
        self.num_perm = num_perm
        self.shingle_words = shingle_words
        self.seed = seed
        rng = np.random.default_rng(seed)
        self._a = rng.integers(1, 2**32, num_perm, dtype=np.uint64) | np.uint64(1)
        self._b = rng.integers(0, 2**32, num_perm, dtype=np.uint64)
        self._word_hashes: dict[str, int] = {}

    def _word_ids(self, words: list[str]) -> np.ndarray:
        cache = self._word_hashes
        ids = []
        for word in words:
            value = cache.get(word)
            if value is None:
                value = cache[word] = xxhash.xxh32_intdigest(word.encode())
            ids.append(value)
        return np.array(ids, dtype=np.uint64)

    def shingle_set(self, text: str) -> np.ndarray:
        """The sorted unique 32-bit hashes of the text's word shingles."""
        ids = self._word_ids(normalized_words(text))
        size = min(self.shingle_words, len(ids))
        if size == 0:
            return np.zeros(1, dtype=np.uint32)
        count = len(ids) - size + 1
        combined = np.zeros(count, dtype=np.uint64)
        for offset in range(size):
            combined = combined * _PRIME + ids[offset:offset + count]
        return np.unique(_mix_to_32(combined))

    def signature(self, shingle_set: np.ndarray) -> np.ndarray:
        values = shingle_set.astype(np.uint64)
        permuted = (self._a[:, None] * values[None, :] + self._b[:, None]) & _MASK32
        return permuted.min(axis=1).astype(np.uint32)

    def sign_with_set(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The signature and the shingle set (kept for exact Jaccard checks)."""
        shingle_set = self.shingle_set(text)
        return self.signature(shingle_set), shingle_set


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
    `threshold` — computed exactly from the shingle sets where given, else estimated. Each
    member's reported similarity is to its cluster's representative."""

    def similarity(a: int, b: int) -> float:
        if shingle_sets is not None:
            return jaccard(shingle_sets[a], shingle_sets[b])
        return float(np.mean(signatures[a] == signatures[b]))

    lsh = MinHashLSH(threshold=max(0.2, threshold - 0.2), num_perm=num_perm)
    union = _UnionFind(len(signatures))
    minhashes = [LeanMinHash(seed=1, hashvalues=values, scheme="affine32") for values in signatures]
    for index in (progress if progress is not None else range(len(signatures))):
        for other in lsh.query(minhashes[index]):
            if union.find(other) != union.find(index) and similarity(index, other) >= threshold:
                union.union(index, other)
        lsh.insert(index, minhashes[index], check_duplication=False)
    clusters: dict[int, Cluster] = {}
    for index in range(len(signatures)):
        root = union.find(index)
        if root != index:
            cluster = clusters.setdefault(root, Cluster(root))
            cluster.members.append(index)
            cluster.similarity[index] = similarity(root, index)
    return [clusters[root] for root in sorted(clusters)]
