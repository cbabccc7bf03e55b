"""`storyteller curate`: read → clean → filter → dedup → tag → pairs → augment → split → write.

The only module of the stage that touches disk; the steps it calls are pure functions, run in
worker processes where there are several cores (the outputs do not depend on how many)."""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import xxhash

import storyteller
from storyteller import console
from storyteller.config import to_dict
from storyteller.curate import dedup
from storyteller.curate.config import CurateConfig
from storyteller.curate.outputs import (SplitWriter, jsonl_bytes, sha256_of, write_atomic,
                                        write_manifest)
from storyteller.curate.pairs import Story
from storyteller.curate.prepare import Pool, Prepared, flatten
from storyteller.curate.records import RawStory, Rejected
from storyteller.curate.preview import MATTER, InputReading, read_back
from storyteller.curate.sources import expand_inputs, read_source
from storyteller.curate.sources.gutenberg import read_gutenberg_book
from storyteller.curate.sources.html import read_html_reading
from storyteller.curate.split import SPLITS, assign_splits
from storyteller.curate.tag import Tag, Tagger
from storyteller.errors import InputError, Problem, StorytellerError

DUPLICATE_REASONS = ("duplicate_exact", "duplicate_near")
CHUNK = 256


@dataclass
class CurateResult:
    out: Path
    manifest: dict[str, Any]
    rejects: list[dict[str, Any]] = field(default_factory=list)


def worker_count(setting: int) -> int:
    """`workers: 0` means one per core (at most 8)."""
    return setting if setting > 0 else min(8, os.cpu_count() or 1)


def read_inputs(paths: Sequence[str], config: CurateConfig, track: console.Steps
                ) -> tuple[list[dict[str, Any]], list[RawStory | Rejected]]:
    source = config.source
    inputs = expand_inputs(list(paths), source.format)
    described, records = [], []
    for location, fmt in track.track(inputs, "reading inputs"):
        reading: dict[str, Any] = {}
        try:
            if fmt == "gutenberg":  # a book: keep how it was divided, for the report
                book = read_gutenberg_book(Path(location), source.encoding)
                items = book.records
                reading = {"method": book.method, "notes": book.notes}
            elif fmt == "html":  # a Gutenberg HTML edition is a book too
                items, reading = read_html_reading(Path(location), source.encoding)
            else:
                items = list(read_source(location, fmt, source.fields, encoding=source.encoding,
                                         separator=source.separator,
                                         separator_regex=source.separator_regex,
                                         min_blank_lines=source.min_blank_lines,
                                         records_key=source.records_key,
                                         dataset_split=source.dataset_split))
        except InputError as error:
            # A file that cannot be read at all is one rejected record; the other inputs go on.
            items = [unreadable(location, error)]
        for item in items:
            if isinstance(item, RawStory):
                item.input = len(described)
        path = Path(location)
        described.append({"path": location, "sha256": sha256_of(path) if path.exists() else None,
                          "format": fmt, "stories": sum(isinstance(i, RawStory) for i in items),
                          "records": len(items), **({"reading": reading} if reading else {})})
        records.extend(items)
    return described, records


def preview(paths: Sequence[str], config: CurateConfig) -> list[InputReading]:
    """What curate would read from `paths`, without writing anything."""
    with console.steps() as track:
        described, records = read_inputs(paths, config, track)
    return read_back(described, records, config.source.format)


def unreadable(location: str, error: InputError) -> Rejected:
    problem = error.problems[0]
    line = problem.where.rsplit(":", 1)[1] if ":" in problem.where else ""
    detail = problem.message + (f" ({problem.hint})" if problem.hint else "")
    return Rejected(location, int(line) if line.isdigit() else None, "unreadable", detail)


PROJECT_ROOT = Path(storyteller.__file__).resolve().parents[1]


def reference_path(location: str) -> Path | None:
    """A reference corpus path: as given, else relative to the project (so the tagger does not
    change with the directory the command runs from); None where neither exists."""
    for path in (Path(location), PROJECT_ROOT / location):
        if path.exists():
            return path
    return None


def load_reference(config: CurateConfig) -> list[RawStory]:
    """Tagged stories the tagger learns from (the shipped corpus); a missing path is skipped
    with a warning."""
    stories = []
    for location in config.tags.reference:
        path = reference_path(location)
        if path is None:
            console.console.print(f"warning: tags.reference {location!r} not found; the tagger "
                                  "learns only from the tagged stories of the input")
            continue
        location = str(path)
        for item_location, fmt in expand_inputs([location], "auto"):
            for item in read_source(item_location, fmt, {}):
                if isinstance(item, RawStory) and item.meta.get("genre"):
                    stories.append(item)
    return stories


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "story"


def story_ids(kept: Sequence[Prepared]) -> list[str]:
    """A stable, unique id per story: its own id where the data has one, else file-NNNNN."""
    seen: set[str] = set()
    per_file: Counter[str] = Counter()
    ids = []
    for item in kept:
        per_file[item.raw.source] += 1
        given = item.raw.meta.get("id")
        base = _slug(str(given)) if given else f"{_slug(Path(item.raw.source).stem)}-{per_file[item.raw.source]:05d}"
        candidate, n = base, 1
        while candidate in seen:  # `a, a, a-2` must not give two `a-2`
            n += 1
            candidate = f"{base}-{n}"
        seen.add(candidate)
        ids.append(candidate)
    return ids


def story_groups(kept: Sequence[Prepared], ids: Sequence[str],
                 representative: dict[int, int]) -> list[str]:
    """Each story's group: its own id, its near-duplicate representative's group, or the group of
    the first story that answers the same premise from the data (WritingPrompts has several
    stories per prompt: one prompt must not reach two splits)."""
    groups: list[str] = []
    by_premise: dict[str, str] = {}
    for index, item in enumerate(kept):
        group = groups[representative[index]] if index in representative else ids[index]
        premise = item.raw.meta.get("premise")
        if isinstance(premise, str) and premise.strip():
            key = " ".join(dedup.normalized_words(premise))
            group = by_premise.setdefault(key, group)
        groups.append(group)
    return groups


def deduplicate(kept: list[Prepared], config: CurateConfig, rejects: list[Rejected],
                track: console.Steps) -> tuple[list[Prepared], dict[int, int], list[dedup.Cluster], int]:
    """Drop exact duplicates; find near-duplicate clusters. Returns the survivors, member →
    representative for near-duplicates, the clusters and the exact-duplicate count."""
    exact = {}
    if config.dedup.exact:
        exact = dedup.exact_duplicates([item.exact_key for item in kept])
        for index, first in exact.items():
            raw = kept[index].raw
            rejects.append(Rejected(raw.source, raw.line, "duplicate_exact",
                                    f"same text as {kept[first].raw.where}", raw.position))
        kept = [item for i, item in enumerate(kept) if i not in exact]
    clusters: list[dedup.Cluster] = []
    representative: dict[int, int] = {}
    if config.dedup.near and kept:
        clusters = dedup.near_duplicate_clusters(
            [item.signature for item in kept], config.dedup.threshold, config.dedup.num_perm,
            progress=track.track(range(len(kept)), "near duplicates"),
            shingle_sets=[item.shingles for item in kept])
        for cluster in clusters:
            for member in cluster.members:
                representative[member] = cluster.representative
                if config.dedup.near_action == "drop":
                    raw = kept[member].raw
                    rejects.append(Rejected(
                        raw.source, raw.line, "duplicate_near",
                        f"{cluster.similarity.get(member, config.dedup.threshold):.2f} similar to "
                        f"{kept[cluster.representative].raw.where}", raw.position))
    for item in kept:  # the sets are large and no longer needed
        item.signature = item.shingles = None
    return kept, representative, clusters, len(exact)


def tag_stories(stories: list[Story], config: CurateConfig) -> tuple[Tagger | None, int]:
    """Tags from metadata, else from the offline tagger, trained only if a story needs it."""
    if all(s.meta.get("genre") and s.meta.get("style") for s in stories):
        for story in stories:
            story.tags = {name: Tag(str(story.meta[name]), 1.0, False) for name in ("genre", "style")}
        return None, 0
    reference = load_reference(config)
    tagged = sorted((s for s in stories if s.meta.get("genre")),
                    key=lambda s: xxhash.xxh64_hexdigest(f"{config.seed}:{s.id}".encode()))
    tagged = tagged[:config.tags.max_training_stories]
    examples = [(r.text, r.meta.get("genre"), r.meta.get("style")) for r in reference] + \
               [(s.text, s.meta.get("genre"), s.meta.get("style")) for s in tagged]
    tagger = Tagger([e[0] for e in examples], [e[1] for e in examples], [e[2] for e in examples],
                    config.tags.min_confidence)
    all_tags = tagger.tag([s.text for s in stories], [s.meta.get("genre") for s in stories],
                          [s.meta.get("style") for s in stories])
    for story, tags in zip(stories, all_tags):
        story.tags = tags
    return tagger, len(reference)


def run(paths: Sequence[str], out: str | Path, config: CurateConfig) -> CurateResult:
    out = Path(out)
    rejects: list[Rejected] = []
    with console.steps() as track, Pool(config, worker_count(config.workers)) as pool:
        described, records = read_inputs(paths, config, track)
        readings = read_back(described, records, config.source.format)
        for entry, reading in zip(described, readings):
            entry["reading"] = reading.to_json()
        rejects.extend(r for r in records if isinstance(r, Rejected))
        raw = [r for r in records if isinstance(r, RawStory)]
        read_counts = {"records_read": len(records), "stories_read": len(raw)}
        del records  # from here on each story is held once, cleaned

        prepared = flatten(track.track(pool.map("prepare", raw, CHUNK), "cleaning and signing",
                                       total=(len(raw) + CHUNK - 1) // CHUNK))
        kept: list[Prepared] = []
        for item in prepared:
            (rejects.append if isinstance(item, Rejected) else kept.append)(item)
        del raw, prepared
        kept, representative, clusters, exact_count = deduplicate(kept, config, rejects, track)

        ids = story_ids(kept)
        drop_near = config.dedup.near_action == "drop"
        groups = story_groups(kept, ids, representative)
        stories = [Story(id=ids[i], group=groups[i], text=item.text,
                         source={"file": item.raw.source, "line": item.raw.line,
                                 "position": item.raw.position},
                         meta=item.raw.meta, words=item.words, tokens=item.tokens)
                   for i, item in enumerate(kept) if not (drop_near and i in representative)]
        cluster_report = [
            {"representative": kept[c.representative].raw.where,
             "members": [{"where": kept[m].raw.where, "similarity": round(c.similarity.get(m, 0.0), 3)}
                         for m in c.members]}
            for c in clusters]
        tagger, reference_count = tag_stories(stories, config)

        strata: dict[str, str | None] = {}
        for story in stories:
            strata.setdefault(story.group,
                              story.control("genre") if config.split.stratify == "genre" else None)
        split_of = assign_splits(strata, {"train": config.split.train, "val": config.split.val,
                                          "test": config.split.test}, config.seed)

        out.mkdir(parents=True, exist_ok=True)
        writer = SplitWriter(out)
        unpaired: set[str] = set()
        try:
            work = [(s, split_of[s.group] in config.augment.apply_to) for s in stories]
            made = flatten(track.track(pool.map("pairs", work, CHUNK // 4), "building pairs",
                                       total=(len(work) + CHUNK // 4 - 1) // (CHUNK // 4)))
            for story, pairs in zip(stories, made):
                if pairs:
                    writer.write(split_of[story.group], pairs, story.tokens)
                else:
                    unpaired.add(story.id)
                    rejects.append(Rejected(
                        story.source["file"], story.source["line"], "no_pairs",
                        f"none of pairs.kinds {config.pairs.kinds} applies to it (no premise, "
                        "title or opening to use)", story.source["position"]))
            outputs = writer.finish()
        except BaseException:
            writer.abandon()
            raise
        pool.close()

    kept_per_input = Counter(item.raw.input for i, item in enumerate(kept)
                             if not (drop_near and i in representative) and ids[i] not in unpaired)
    stories = [s for s in stories if s.id not in unpaired]
    for index, described_input in enumerate(described):
        described_input["kept"] = kept_per_input.get(index, 0)
    reject_rows = [r.to_json() for r in rejects]
    outputs["rejects.jsonl"] = write_atomic(out / "rejects.jsonl", jsonl_bytes(reject_rows))
    manifest = build_manifest(config, described, read_counts, stories, split_of, writer, rejects,
                              exact_count, sum(len(c.members) for c in clusters), cluster_report,
                              tagger, reference_count)
    from storyteller.curate.report import write_report

    for name in write_report(out, manifest, stories, cluster_report, reject_rows, config.charts,
                             readings):
        outputs[name] = sha256_of(out / name)
    manifest["outputs"] = dict(sorted(outputs.items()))
    write_manifest(out, manifest)

    result = CurateResult(out, manifest, reject_rows)
    print_summary(result)
    check_bad_share(manifest, config, out)
    if not stories:
        raise InputError.at(str(out / "rejects.jsonl"), "no story survived curation",
                            "look at rejects.jsonl for the reasons")
    return result


def build_manifest(config: CurateConfig, described, read_counts: dict[str, int],
                   stories: list[Story], split_of,
                   writer: SplitWriter, rejects: list[Rejected], exact_count: int, near_count: int,
                   clusters, tagger: Tagger | None, reference_count: int) -> dict[str, Any]:
    story_splits: dict[str, Counter[str]] = {name: Counter() for name in SPLITS}
    for story in stories:
        story_splits[split_of[story.group]][story.control("genre") or "(none)"] += 1
    inferred = Counter(f"{name}:{tag.value}" for s in stories for name, tag in s.tags.items()
                       if tag.inferred)
    return {
        "name": config.name,
        "storyteller_version": storyteller.__version__,
        "inputs": described,
        "counts": {
            **read_counts,
            "stories_kept": len(stories),
            "rejected": dict(sorted(Counter(r.reason for r in rejects).items())),
            "duplicates": {"exact": exact_count, "near": near_count},
            "near_duplicate_clusters": len(clusters),
            "pairs": {name: writer.pairs[name] for name in SPLITS},
            "story_tokens": {name: writer.tokens[name] for name in SPLITS},
            "stories_per_split": {name: sum(story_splits[name].values()) for name in SPLITS},
            "genre": {name: dict(sorted(writer.genres[name].items())) for name in SPLITS},
            "stories_by_genre": {name: dict(sorted(story_splits[name].items())) for name in SPLITS},
            "kind": {name: dict(sorted(writer.kinds[name].items())) for name in SPLITS},
            "inferred_tags": dict(sorted(inferred.items())),
        },
        "clusters": clusters,
        "tagger": {"used": tagger is not None,
                   "reference_stories": reference_count,
                   "training_stories": tagger.trained_on if tagger else 0,
                   "genre_classifier": bool(tagger and tagger.genre_model is not None),
                   "style_classifier": bool(tagger and tagger.style_model is not None),
                   "min_confidence": config.tags.min_confidence},
        "config": to_dict(config),
    }


def check_bad_share(manifest: dict[str, Any], config: CurateConfig, out: Path) -> None:
    counts = manifest["counts"]
    # Duplicates and a book's front and back matter are expected, not bad records.
    bad = sum(n for reason, n in counts["rejected"].items()
              if reason not in DUPLICATE_REASONS + MATTER)
    read = counts["records_read"]
    if read and bad / read > config.filters.max_bad_share:
        raise StorytellerError(Problem(
            str(out / "rejects.jsonl"),
            f"{bad} of {read} records ({bad / read:.0%}) were rejected, more than "
            f"filters.max_bad_share = {config.filters.max_bad_share:.0%}",
            "everything else was written; look at rejects.jsonl, fix the input or raise the limit"))


def print_summary(result: CurateResult) -> None:
    counts = result.manifest["counts"]
    rows = [("records read", counts["records_read"]), ("stories read", counts["stories_read"]),
            ("stories kept", counts["stories_kept"]),
            ("exact duplicates", counts["duplicates"]["exact"]),
            ("near duplicates", counts["duplicates"]["near"])]
    rows += [(f"rejected: {reason}", n) for reason, n in counts["rejected"].items()
             if reason not in DUPLICATE_REASONS]
    rows += [(f"pairs: {name}", n) for name, n in counts["pairs"].items()]
    if not console.quiet():
        console.console.print(console.table(f"curated → {result.out}", ["", "count"], rows))
