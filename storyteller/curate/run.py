"""`storyteller curate`: read → clean → filter → dedup → tag → pairs → augment → split → write.

The only module of the stage that touches disk; every step it calls is a pure function."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import storyteller
from storyteller import console
from storyteller.config import to_dict
from storyteller.curate import clean, dedup
from storyteller.curate.augment import augment
from storyteller.curate.config import CurateConfig
from storyteller.curate.pairs import PairOptions, Story, build_pairs
from storyteller.curate.records import RawStory, Rejected
from storyteller.curate.sources import expand_inputs, read_source
from storyteller.curate.split import SPLITS, assign_splits
from storyteller.curate.tag import Tagger
from storyteller.errors import InputError, Problem, StorytellerError

DUPLICATE_REASONS = ("duplicate_exact", "duplicate_near")


@dataclass
class Candidate:
    """A story that survived reading and the text filters, on its way to becoming a Story."""

    raw: RawStory
    text: str
    words: int
    tokens: int = 0
    input_index: int = 0


@dataclass
class CurateResult:
    out: Path
    manifest: dict[str, Any]
    rejects: list[dict[str, Any]] = field(default_factory=list)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(file.relative_to(path)).encode())
            digest.update(sha256_of(file).encode())
        return digest.hexdigest()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "story"


def _with_moral(raw: RawStory, append: bool) -> str:
    moral = raw.meta.get("moral")
    if not append or not moral or not raw.text.strip() or "Moral:" in raw.text:
        return raw.text
    moral = str(moral).strip()
    if moral.lower().startswith("moral:"):
        moral = moral[6:].strip()
    return f"{raw.text.rstrip()}\n\nMoral: {moral}"


def read_inputs(paths: Sequence[str], config: CurateConfig, track: console.Steps
                ) -> tuple[list[dict[str, Any]], list[RawStory | Rejected]]:
    source = config.source
    inputs = expand_inputs(list(paths), source.format)
    described, records = [], []
    for location, fmt in track.track(inputs, "reading inputs"):
        items = list(read_source(location, fmt, source.fields, encoding=source.encoding,
                                 separator=source.separator, separator_regex=source.separator_regex,
                                 min_blank_lines=source.min_blank_lines, records_key=source.records_key,
                                 dataset_split=source.dataset_split))
        path = Path(location)
        described.append({"path": location, "sha256": sha256_of(path) if path.exists() else None,
                          "format": fmt, "stories": sum(isinstance(i, RawStory) for i in items),
                          "records": len(items)})
        records.extend(items)
    return described, records


def count_tokens_with(tokenizer):
    def count(texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False)
        return [len(ids) for ids in encoded["input_ids"]]
    return count


def load_reference(config: CurateConfig) -> list[RawStory]:
    """Tagged stories the tagger learns from (the shipped corpus); missing paths are skipped."""
    stories = []
    for location in config.tags.reference:
        if not Path(location).exists():
            continue
        for item_location, fmt in expand_inputs([location], "auto"):
            for item in read_source(item_location, fmt, {}):
                if isinstance(item, RawStory) and item.meta.get("genre"):
                    stories.append(item)
    return stories


def _unique_ids(candidates: Sequence[Candidate]) -> list[str]:
    seen: Counter[str] = Counter()
    per_input: Counter[int] = Counter()
    ids = []
    for candidate in candidates:
        per_input[candidate.input_index] += 1
        given = candidate.raw.meta.get("id")
        base = _slug(str(given)) if given else \
            f"{_slug(Path(candidate.raw.source).stem)}-{per_input[candidate.input_index]:05d}"
        seen[base] += 1
        ids.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return ids


def write_atomic(path: Path, data: bytes) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_bytes(data)
    os.replace(staging, path)


def jsonl_bytes(rows: Sequence[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def run(paths: Sequence[str], out: str | Path, config: CurateConfig) -> CurateResult:
    out = Path(out)
    rejects: list[Rejected] = []
    with console.steps() as track:
        described, records = read_inputs(paths, config, track)
        input_index = {d["path"]: i for i, d in enumerate(described)}

        # Clean and filter on text alone.
        candidates: list[Candidate] = []
        for record in track.track(records, "cleaning"):
            if isinstance(record, Rejected):
                rejects.append(record)
                continue
            excluded = sorted({str(t).lower() for t in record.meta.get("tags") or []}
                              & {t.lower() for t in config.filters.exclude_tags})
            if excluded:
                rejects.append(Rejected(record.source, record.line, "excluded_tag",
                                        f"tagged {', '.join(excluded)}", record.position))
                continue
            markup = record.meta.pop("markup", None) if config.clean.strip_markdown else None
            text = clean.clean_text(_with_moral(record, config.source.append_moral), markup=markup,
                                    strip_html_tags=config.clean.strip_html)
            count = len(clean.words(text))
            verdict = clean.quality_verdict(text, count, min_words=config.filters.min_words,
                                            max_words=config.filters.max_words,
                                            max_repeated_share=config.filters.max_repeated_share,
                                            min_letter_share=config.filters.min_letter_share)
            if verdict:
                rejects.append(Rejected(record.source, record.line, verdict.reason, verdict.detail,
                                        record.position))
                continue
            candidates.append(Candidate(record, text, count,
                                        input_index=_input_of(record.source, input_index)))

        # Token bounds in the target tokenizer.
        from storyteller.models import load_tokenizer

        count_tokens = count_tokens_with(load_tokenizer(config.tokenizer))
        batch = 256
        for start in track.track(range(0, len(candidates), batch), "counting tokens",
                                 total=(len(candidates) + batch - 1) // batch):
            chunk = candidates[start:start + batch]
            for candidate, tokens in zip(chunk, count_tokens([c.text for c in chunk])):
                candidate.tokens = tokens
        kept: list[Candidate] = []
        for candidate in candidates:
            verdict = clean.token_verdict(candidate.tokens, min_tokens=config.filters.min_tokens,
                                          max_tokens=config.filters.max_tokens)
            if verdict:
                raw = candidate.raw
                rejects.append(Rejected(raw.source, raw.line, verdict.reason, verdict.detail, raw.position))
            else:
                kept.append(candidate)

        # Exact, then near duplicates.
        exact_count = 0
        if config.dedup.exact:
            keys = [dedup.exact_key(c.text) for c in kept]
            duplicates = dedup.exact_duplicates(keys)
            for index, first in duplicates.items():
                raw = kept[index].raw
                rejects.append(Rejected(raw.source, raw.line, "duplicate_exact",
                                        f"same text as {kept[first].raw.where}", raw.position))
            exact_count = len(duplicates)
            kept = [c for i, c in enumerate(kept) if i not in duplicates]
        clusters: list[dedup.Cluster] = []
        group_of: dict[int, int] = {}
        if config.dedup.near and kept:
            signer = dedup.Signer(config.dedup.num_perm, config.dedup.shingle_words, seed=config.seed + 1)
            signed = [signer.sign_with_set(c.text) for c in track.track(kept, "signing (MinHash)")]
            clusters = dedup.near_duplicate_clusters(
                [s[0] for s in signed], config.dedup.threshold, config.dedup.num_perm,
                progress=track.track(range(len(kept)), "near-duplicate search"),
                shingle_sets=[s[1] for s in signed])
            del signed
            for cluster in clusters:
                for member in cluster.members:
                    group_of[member] = cluster.representative
                    if config.dedup.near_action == "drop":
                        raw = kept[member].raw
                        rejects.append(Rejected(
                            raw.source, raw.line, "duplicate_near",
                            f"{cluster.similarity.get(member, config.dedup.threshold):.2f} similar to "
                            f"{kept[cluster.representative].raw.where}", raw.position))
        near_count = sum(len(c.members) for c in clusters)
        cluster_report = [
            {"representative": kept[c.representative].raw.where,
             "members": [{"where": kept[m].raw.where,
                          "similarity": round(c.similarity.get(m, 0.0), 3)} for m in c.members]}
            for c in clusters
        ]
        ids = _unique_ids(kept)
        stories = [
            Story(id=ids[i], group=ids[group_of.get(i, i)], text=c.text,
                  source={"file": c.raw.source, "line": c.raw.line, "position": c.raw.position},
                  meta=c.raw.meta, words=c.words, tokens=c.tokens)
            for i, c in enumerate(kept)
            if not (config.dedup.near_action == "drop" and i in group_of)
        ]

        # Tags: metadata first, then the offline tagger.
        reference = load_reference(config)
        tagged = [s for s in stories if s.meta.get("genre")]
        train_texts = [r.text for r in reference] + [s.text for s in tagged]
        tagger = Tagger(train_texts,
                        [str(r.meta.get("genre")) for r in reference] + [str(s.meta["genre"]) for s in tagged],
                        [r.meta.get("style") for r in reference] + [s.meta.get("style") for s in tagged],
                        config.tags.min_confidence)
        all_tags = tagger.tag([s.text for s in stories], [s.meta.get("genre") for s in stories],
                              [s.meta.get("style") for s in stories])
        for story, tags in zip(stories, all_tags):
            story.tags = tags

        # Splits by group, then pairs and augmentation.
        strata = {}
        for story in stories:
            genre = story.control("genre") if config.split.stratify == "genre" else None
            strata.setdefault(story.group, genre)
        split_of = assign_splits(strata, {"train": config.split.train, "val": config.split.val,
                                          "test": config.split.test}, config.seed)
        options = PairOptions(kinds=tuple(config.pairs.kinds), derive_premise=config.pairs.derive_premise,
                              max_story_tokens=config.pairs.max_story_tokens,
                              context_words=config.pairs.context_words,
                              opening_share=config.pairs.opening_share)
        by_split: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLITS}
        for story in track.track(stories, "building pairs"):
            pairs = build_pairs(story, options, count_tokens)
            split = split_of[story.group]
            if split in config.augment.apply_to and config.augment.ratio > 0:
                pairs += augment(story, pairs, ratio=config.augment.ratio,
                                 methods=config.augment.methods, seed=config.seed,
                                 control_dropout=config.augment.control_dropout)
            by_split[split].extend(pairs)

    manifest = write_outputs(out, config, described, records, stories, split_of, by_split, rejects,
                             exact_count, near_count, cluster_report, tagger, reference)
    result = CurateResult(out, manifest, [r.to_json() for r in rejects])
    print_summary(result)
    bad = sum(n for reason, n in manifest["counts"]["rejected"].items() if reason not in DUPLICATE_REASONS)
    read = manifest["counts"]["records_read"]
    if read and bad / read > config.filters.max_bad_share:
        raise StorytellerError(Problem(
            str(out / "rejects.jsonl"),
            f"{bad} of {read} records ({bad / read:.0%}) were rejected, more than "
            f"filters.max_bad_share = {config.filters.max_bad_share:.0%}",
            "everything else was written; look at rejects.jsonl, fix the input or raise the limit"))
    if not stories:
        raise InputError.at(str(out / "rejects.jsonl"), "no story survived curation",
                            "look at rejects.jsonl for the reasons")
    return result


def _input_of(source: str, index: dict[str, int]) -> int:
    if source in index:
        return index[source]
    for location, i in index.items():
        if source.startswith(location.rstrip("/") + "/") or source.startswith(location):
            return i
    return len(index)


def write_outputs(out: Path, config: CurateConfig, described, records, stories, split_of, by_split,
                  rejects: list[Rejected], exact_count: int, near_count: int, clusters, tagger,
                  reference) -> dict[str, Any]:
    from storyteller.curate.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    outputs: dict[str, str] = {}
    for name in SPLITS:
        data = jsonl_bytes(by_split[name])
        write_atomic(out / f"{name}.jsonl", data)
        outputs[f"{name}.jsonl"] = hashlib.sha256(data).hexdigest()
    reject_rows = [r.to_json() for r in rejects]
    data = jsonl_bytes(reject_rows)
    write_atomic(out / "rejects.jsonl", data)
    outputs["rejects.jsonl"] = hashlib.sha256(data).hexdigest()

    genre_counts: dict[str, Counter[str]] = {name: Counter() for name in SPLITS}
    kind_counts: dict[str, Counter[str]] = {name: Counter() for name in SPLITS}
    for name, pairs in by_split.items():
        for pair in pairs:
            genre_counts[name][pair["controls"].get("genre", "(none)")] += 1
            kind_counts[name][pair["kind"] + (" (augmented)" if pair["augmented"] else "")] += 1
    story_splits: dict[str, Counter[str]] = {name: Counter() for name in SPLITS}
    for story in stories:
        story_splits[split_of[story.group]][story.control("genre") or "(none)"] += 1
    inferred = Counter(f"{name}:{tag.value}" for s in stories for name, tag in s.tags.items() if tag.inferred)
    manifest = {
        "name": config.name,
        "storyteller_version": storyteller.__version__,
        "inputs": described,
        "counts": {
            "records_read": len(records),
            "stories_read": sum(isinstance(r, RawStory) for r in records),
            "stories_kept": len(stories),
            "rejected": dict(sorted(Counter(r.reason for r in rejects).items())),
            "duplicates": {"exact": exact_count, "near": near_count},
            "near_duplicate_clusters": len(clusters),
            "pairs": {name: len(by_split[name]) for name in SPLITS},
            "stories_per_split": {name: sum(story_splits[name].values()) for name in SPLITS},
            "genre": {name: dict(sorted(genre_counts[name].items())) for name in SPLITS},
            "stories_by_genre": {name: dict(sorted(story_splits[name].items())) for name in SPLITS},
            "kind": {name: dict(sorted(kind_counts[name].items())) for name in SPLITS},
            "inferred_tags": dict(sorted(inferred.items())),
        },
        "tagger": {"reference_stories": len(reference),
                   "genre_classifier": tagger.genre_model is not None,
                   "style_classifier": tagger.style_model is not None,
                   "min_confidence": config.tags.min_confidence},
        "config": to_dict(config),
    }
    report_files = write_report(out, manifest, stories, split_of, clusters, reject_rows, config.charts)
    for name in report_files:
        outputs[name] = sha256_of(out / name)
    manifest["outputs"] = dict(sorted(outputs.items()))
    write_atomic(out / "manifest.json",
                 (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
    return manifest


def print_summary(result: CurateResult) -> None:
    counts = result.manifest["counts"]
    rows = [("records read", counts["records_read"]), ("stories read", counts["stories_read"]),
            ("stories kept", counts["stories_kept"]),
            ("exact duplicates", counts["duplicates"]["exact"]),
            ("near duplicates", counts["duplicates"]["near"])]
    rows += [(f"rejected: {reason}", n) for reason, n in counts["rejected"].items()
             if reason not in DUPLICATE_REASONS]
    rows += [(f"pairs: {name}", n) for name, n in counts["pairs"].items()]
    console.console.print(console.table(f"curated → {result.out}", ["", "count"], rows))
