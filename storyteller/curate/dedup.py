"""Deduplication: exact (hash of normalised text) and near-duplicate (MinHash LSH).

One representative is kept per cluster, the first in input order, so results do not depend on
anything but the inputs and the config."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

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
    return clusters_of(union, range(len(signatures)), similarity)


def clusters_of(union: _UnionFind, indices: Iterable[int],
                similarity: Callable[[int, int], float]) -> list[Cluster]:
    """The clusters among `indices` (ascending), each member with its similarity to the
    cluster's first story."""
    clusters: dict[int, Cluster] = {}
    for index in indices:
        root = union.find(index)
        if root != index:
            cluster = clusters.setdefault(root, Cluster(root))
            cluster.members.append(index)
            cluster.similarity[index] = similarity(root, index)
    return [clusters[root] for root in sorted(clusters)]


def lsh_shape(threshold: float, num_perm: int) -> tuple[int, int]:
    """The bands and rows per band that `near_duplicate_clusters` uses for `threshold`: the
    staged path below proposes exactly the pairs that index proposes."""
    lsh = MinHashLSH(threshold=max(0.2, threshold - 0.2), num_perm=num_perm)
    return lsh.b, lsh.r


_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)


def _mix64(values: np.ndarray) -> np.ndarray:
    values = values ^ (values >> np.uint64(33))
    values = values * _M1
    values = values ^ (values >> np.uint64(33))
    values = values * _M2
    return values ^ (values >> np.uint64(33))


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(bands, stories) 64-bit keys: two stories share a band's key when their signatures agree
    on all of that band's rows (up to a 64-bit hash collision, which exact similarity then
    rejects)."""
    count = len(signatures)
    if count == 0:
        return np.zeros((bands, 0), dtype=np.uint64)
    grid = signatures[:, :bands * rows].reshape(count, bands, rows).astype(np.uint64)
    keys = np.broadcast_to(np.arange(bands, dtype=np.uint64) + np.uint64(1), (count, bands)).copy()
    with np.errstate(over="ignore"):
        for row in range(rows):
            keys = _mix64(keys ^ grid[:, :, row])
    return np.ascontiguousarray(keys.T)


def band_candidates(keys: np.ndarray) -> np.ndarray:
    """The pairs of stories that share a key (one band's key per story), as rows [i, j] with
    i < j."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    same = ordered[1:] == ordered[:-1]
    if not same.any():
        return np.zeros((0, 2), dtype=np.int64)
    edges = np.diff(np.concatenate(([0], same.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    pairs = []
    for start, end in zip(starts, ends):
        members = np.sort(order[start:end + 1])
        left, right = np.triu_indices(len(members), k=1)
        pairs.append(np.stack([members[left], members[right]], axis=1))
    return np.concatenate(pairs).astype(np.int64)


def staged_clusters(count: int, band_key_rows: Iterable[np.ndarray],
                    similarity: Callable[[int, int], float], threshold: float,
                    progress: Callable[[Iterable[int]], Iterable[int]] | None = None
                    ) -> list[Cluster]:
    """The clusters `near_duplicate_clusters` finds, from band keys computed ahead (one row of
    keys per band, e.g. read from disk band by band) instead of an index held in memory.

    A pair sharing any band is a candidate; it joins when its similarity reaches `threshold`.
    Clusters are the connected components, so the order pairs are checked in does not change
    them, and each keeps its first story in input order."""
    found = [band_candidates(keys) for keys in band_key_rows]
    found = [pairs for pairs in found if len(pairs)]
    union = _UnionFind(count)
    touched: set[int] = set()
    if found:
        pairs = np.concatenate(found)
        # Unique pairs, ordered by the later story then the earlier, as the index meets them.
        keys = np.unique(pairs[:, 1] * np.int64(count) + pairs[:, 0])
        later, earlier = np.divmod(keys, np.int64(count))
        steps = range(len(keys))
        for step in (progress(steps) if progress else steps):
            a, b = int(earlier[step]), int(later[step])
            if union.find(a) != union.find(b) and similarity(a, b) >= threshold:
                union.union(a, b)
                touched.update((a, b))
    return clusters_of(union, sorted(touched), similarity)
