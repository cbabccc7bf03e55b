"""The link stage (one task): what ties stories across files together. Exact duplicates (the
first in input order is kept), near-duplicate clusters (from the band keys and shingle sets the
read tasks wrote, band by band), each story's id and group, and the tagger, trained once.

It holds a few numbers per story — never a text — and writes, per read task, the id and group
of each of its stories that goes on (None for one that does not)."""

from __future__ import annotations

import heapq
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import xxhash

import storyteller
from storyteller import console
from storyteller.curate import dedup
from storyteller.curate.records import RawStory, Rejected
from storyteller.curate.sources import expand_inputs, read_source
from storyteller.curate.stages import read
from storyteller.curate.tag import Tagger

PROJECT_ROOT = Path(storyteller.__file__).resolve().parents[1]


def reference_path(location: str) -> Path | None:
    """A reference corpus path: as given, else relative to the project (so the tagger does not
    change with the directory the command runs from); None where neither exists."""
    for path in (Path(location), PROJECT_ROOT / location):
        if path.exists():
            return path
    return None


def load_reference(config) -> list[RawStory]:
    """Tagged stories the tagger learns from (the shipped corpus); a missing path is skipped
    with a warning."""
    stories = []
    for location in config.tags.reference:
        path = reference_path(location)
        if path is None:
            console.console.print(f"warning: tags.reference {location!r} not found; the tagger "
                                  "learns only from the tagged stories of the input")
            continue
        for item_location, fmt in expand_inputs([str(path)], "auto"):
            for item in read_source(item_location, fmt, {}):
                if isinstance(item, RawStory) and item.meta.get("genre"):
                    stories.append(item)
    return stories


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "story"


class Stories:
    """The read tasks' per-story facts, addressed by a story's index in input order."""

    def __init__(self, work, tasks: int):
        self.work = work
        self.heads = [work.read_pickle(("read", f"{rank:05d}", "heads.pkl")) for rank in range(tasks)]
        sizes = [len(h["words"]) for h in self.heads]
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.count = int(self.starts[-1])
        self._shingles: dict[int, Any] = {}
        self._offsets: dict[int, np.ndarray] = {}

    def locate(self, index: int) -> tuple[int, int]:
        task = int(np.searchsorted(self.starts, index, side="right")) - 1
        return task, index - int(self.starts[task])

    def column(self, name: str) -> np.ndarray:
        return np.concatenate([h[name] for h in self.heads]) if self.heads else np.zeros(0)

    def source(self, index: int) -> str:
        task, local = self.locate(index)
        heads = self.heads[task]
        return heads["source_names"][int(heads["sources"][local])]

    def where(self, index: int) -> str:
        """As RawStory.where: file:line, else file#position, else the file."""
        task, local = self.locate(index)
        heads = self.heads[task]
        source = heads["source_names"][int(heads["sources"][local])]
        line, position = int(heads["lines"][local]), int(heads["positions"][local])
        if line >= 0:
            return f"{source}:{line}"
        return f"{source}#{position}" if position >= 0 else source

    def place(self, index: int) -> tuple[str, int | None, int | None]:
        task, local = self.locate(index)
        heads = self.heads[task]
        line, position = int(heads["lines"][local]), int(heads["positions"][local])
        return (heads["source_names"][int(heads["sources"][local])],
                None if line < 0 else line, None if position < 0 else position)

    def band_rows(self, bands: int, chosen: np.ndarray) -> Iterator[np.ndarray]:
        """Each band's keys for the `chosen` stories, one band at a time."""
        for band in range(bands):
            row = np.concatenate([self.work.load_array(("read", f"{rank:05d}", "bands.npy"),
                                                       mmap=True)[band]
                                  for rank in range(len(self.heads))])
            yield row[chosen]

    def shingle_set(self, index: int) -> np.ndarray:
        task, local = self.locate(index)
        if task not in self._offsets:
            self._offsets[task] = self.work.load_array(("read", f"{task:05d}", "offsets.npy"))
            if self.work.local:
                self._shingles[task] = np.memmap(
                    self.work.path("read", f"{task:05d}", "shingles.bin"), dtype=np.uint32,
                    mode="r") if self._offsets[task][-1] else np.zeros(0, dtype=np.uint32)
            else:
                self._shingles[task] = self.work.open(("read", f"{task:05d}", "shingles.bin"))
        begin, end = self._offsets[task][local], self._offsets[task][local + 1]
        store = self._shingles[task]
        if isinstance(store, np.ndarray):
            return np.asarray(store[begin:end])
        store.seek(int(begin) * 4)
        return np.frombuffer(store.read(int(end - begin) * 4), dtype=np.uint32)

    def texts(self, wanted: set[int]) -> dict[int, tuple[str, dict]]:
        """Text and metadata of the `wanted` stories (one pass over the read tasks)."""
        found: dict[int, tuple[str, dict]] = {}
        for rank in range(len(self.heads)):
            index = int(self.starts[rank])
            if not any(index <= w < self.starts[rank + 1] for w in wanted):
                continue
            for chunk in self.work.chunks(("read", f"{rank:05d}", "stories.pkl")):
                for row in chunk:
                    if index in wanted:
                        found[index] = (row[0], row[4])
                    index += 1
        return found


def exact_firsts(keys: np.ndarray) -> np.ndarray:
    """For each story, the index of the first story with the same exact key (itself if none)."""
    count = len(keys)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((np.arange(count), keys[:, 1], keys[:, 0]))
    ordered = keys[order]
    starts = np.ones(count, dtype=bool)
    starts[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    group = np.cumsum(starts) - 1
    firsts = np.empty(count, dtype=np.int64)
    firsts[order] = order[starts][group]
    return firsts


def reject_line(source: str, line: int | None, reason: str, detail: str,
                position: int | None) -> bytes:
    return read.reject_line(Rejected(source, line, reason, detail, position))


def run(plan, rank: int, work, pool, track) -> dict[str, Any]:
    config = plan.config
    parts = work.begin("link", 0)
    stories = Stories(work, plan.tasks)
    count = stories.count

    # Exact duplicates: the first in input order stays.
    firsts = exact_firsts(stories.column("keys").reshape(-1, 2)) if config.dedup.exact \
        else np.arange(count, dtype=np.int64)
    duplicate = firsts != np.arange(count)
    with work.open((*parts, "rejects-exact.jsonl"), "wb") as rejects:
        for index in np.flatnonzero(duplicate):
            source, line, position = stories.place(int(index))
            rejects.write(reject_line(source, line, "duplicate_exact",
                                      f"same text as {stories.where(int(firsts[index]))}", position))
    survivors = np.flatnonzero(~duplicate)

    # Near duplicates among the survivors, band by band.
    clusters: list[dedup.Cluster] = []
    if config.dedup.near and len(survivors):
        bands, _ = dedup.lsh_shape(config.dedup.threshold, config.dedup.num_perm)

        def similarity(a: int, b: int) -> float:
            return dedup.jaccard(stories.shingle_set(int(survivors[a])),
                                 stories.shingle_set(int(survivors[b])))

        clusters = dedup.staged_clusters(
            len(survivors), track.track(stories.band_rows(bands, survivors), "near duplicates",
                                        total=bands),
            similarity, config.dedup.threshold)
    representative: dict[int, int] = {}
    drop_near = config.dedup.near_action == "drop"
    with work.open((*parts, "rejects-near.jsonl"), "wb") as rejects:
        for cluster in clusters:
            for member in cluster.members:
                representative[member] = cluster.representative
                if drop_near:
                    source, line, position = stories.place(int(survivors[member]))
                    rejects.write(reject_line(
                        source, line, "duplicate_near",
                        f"{cluster.similarity.get(member, config.dedup.threshold):.2f} similar to "
                        f"{stories.where(int(survivors[cluster.representative]))}", position))
    cluster_report = [
        {"representative": stories.where(int(survivors[c.representative])),
         "members": [{"where": stories.where(int(survivors[m])),
                      "similarity": round(c.similarity.get(m, 0.0), 3)} for m in c.members]}
        for c in clusters]
    work.write_json((*parts, "clusters.json"), cluster_report)

    # Ids (the data's own, else file-NNNNN) and groups, in input order.
    decisions: list[tuple[str, str] | None] = [None] * count
    seen: set[str] = set()
    per_file: Counter[str] = Counter()
    stems: dict[str, str] = {}
    groups: list[str] = []
    by_premise: dict[str, str] = {}
    bounds = np.searchsorted(survivors, stories.starts)
    number = 0
    for task, heads in enumerate(stories.heads):
        start = int(stories.starts[task])
        names, sources = heads["source_names"], heads["sources"].tolist()
        given_ids, premises = heads["ids"], heads["premises"]
        for index in survivors[bounds[task]:bounds[task + 1]].tolist():
            local = index - start
            source = names[sources[local]]
            per_file[source] += 1
            given = given_ids[local] if given_ids is not None else None
            if given:
                base = slug(given)
            else:
                if source not in stems:
                    stems[source] = slug(Path(source).stem)
                base = f"{stems[source]}-{per_file[source]:05d}"
            candidate, n = base, 1
            while candidate in seen:  # `a, a, a-2` must not give two `a-2`
                n += 1
                candidate = f"{base}-{n}"
            seen.add(candidate)
            # A near-duplicate joins its representative's group; one premise is one group.
            group = groups[representative[number]] if number in representative else candidate
            premise = premises[local] if premises is not None else None
            if premise is not None:
                group = by_premise.setdefault(premise, group)
            groups.append(group)
            if not (drop_near and number in representative):
                decisions[index] = (candidate, group)
            number += 1
    del seen, by_premise

    for task in range(plan.tasks):
        begin, end = int(stories.starts[task]), int(stories.starts[task + 1])
        work.write_pickle((*parts, f"decisions-{task:05d}.pkl"), decisions[begin:end])

    tagger_info = train_tagger(stories, decisions, config, work, parts)
    return {"exact": int(duplicate.sum()), "near": sum(len(c.members) for c in clusters),
            "clusters": len(clusters), "tagger": tagger_info}


def train_tagger(stories: Stories, decisions, config, work, parts) -> dict[str, Any]:
    """The tagger, trained once on the reference and the chosen tagged input stories — only
    where some story lacks a genre or a style; saved for the tag tasks."""
    both = stories.column("both_tags")
    kept = [index for index, decision in enumerate(decisions) if decision is not None]
    info = {"used": False, "reference_stories": 0, "training_stories": 0,
            "genre_classifier": False, "style_classifier": False,
            "min_confidence": config.tags.min_confidence}
    if all(both[index] for index in kept):
        return info
    reference = load_reference(config)
    genre = stories.column("genre")
    seed = config.seed
    chosen = heapq.nsmallest(
        config.tags.max_training_stories, (index for index in kept if genre[index]),
        key=lambda index: xxhash.xxh64_hexdigest(f"{seed}:{decisions[index][0]}".encode()))
    found = stories.texts(set(chosen))
    examples = [(r.text, r.meta.get("genre"), r.meta.get("style")) for r in reference] + \
               [(found[i][0], found[i][1].get("genre"), found[i][1].get("style")) for i in chosen]
    tagger = Tagger([e[0] for e in examples], [e[1] for e in examples], [e[2] for e in examples],
                    config.tags.min_confidence)
    work.write_pickle((*parts, "tagger.pkl"), tagger)
    return {**info, "used": True, "reference_stories": len(reference),
            "training_stories": tagger.trained_on,
            "genre_classifier": tagger.genre_model is not None,
            "style_classifier": tagger.style_model is not None}
