"""The write stage (one task): the curated directory from what the tasks wrote — split files
(one per split, or shards above `resources.shard_mb`), rejects.jsonl in the order the stages
found them, manifest.json and report.md with its charts, computed from per-task counts."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

import storyteller
from storyteller.config import to_dict
from storyteller.curate.outputs import sha256_of, write_manifest
from storyteller.curate.split import SPLITS

COPY_BLOCK = 1 << 20


def shard_names(split: str, count: int) -> list[str]:
    """`train.jsonl`, or the shard set `train-00000-of-00004.jsonl` … as `datasets` names it."""
    if count <= 1:
        return [f"{split}.jsonl"]
    return [f"{split}-{index:05d}-of-{count:05d}.jsonl" for index in range(count)]


class Output:
    """One output file written through a staging name and renamed into place when complete,
    hashed as it is written."""

    def __init__(self, out: Path, name: str):
        self.out, self.name = out, name
        self.staging = out / f".{name}.tmp"
        self.handle = self.staging.open("wb")
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.handle.write(data)
        self.digest.update(data)
        self.size += len(data)

    def finish(self) -> str:
        self.handle.close()
        os.replace(self.staging, self.out / self.name)
        return self.digest.hexdigest()


def write_split(out: Path, split: str, sources: list[tuple[Any, ...]], work,
                shard_bytes: int) -> dict[str, str]:
    """Concatenate the tasks' files of one split, in task order; shards where large."""
    total = sum(work.fs.size(work.path(*parts)) for parts in sources)
    count = max(1, math.ceil(total / shard_bytes)) if total > shard_bytes else 1
    for stale in list(out.glob(f"{split}.jsonl")) + list(out.glob(f"{split}-*-of-*.jsonl")):
        stale.unlink()  # a shard set from an earlier run of another size must not linger
    names = shard_names(split, count)
    hashes: dict[str, str] = {}
    if count == 1:
        output = Output(out, names[0])
        for parts in sources:
            with work.open(parts) as handle:
                while block := handle.read(COPY_BLOCK):
                    output.write(block)
        hashes[names[0]] = output.finish()
        return hashes
    target = total / count  # cut at the first line end past each share
    index, output = 0, Output(out, names[0])
    for parts in sources:
        for line in work.lines(parts):
            output.write(line)
            if output.size >= target and index < count - 1:
                hashes[output.name] = output.finish()
                index += 1
                output = Output(out, names[index])
    hashes[output.name] = output.finish()
    return hashes


def reject_sources(tasks: int) -> list[tuple[str, str, str]]:
    """rejects.jsonl in the order the stages find them: reading, cleaning, exact and near
    duplicates, then stories without pairs."""
    read = [("read", f"{t:05d}", "rejects-read.jsonl") for t in range(tasks)]
    prepared = [("read", f"{t:05d}", "rejects-prepare.jsonl") for t in range(tasks)]
    linked = [("link", "00000", "rejects-exact.jsonl"), ("link", "00000", "rejects-near.jsonl")]
    unpaired = [("pairs", f"{t:05d}", "rejects-pairs.jsonl") for t in range(tasks)]
    return read + prepared + linked + unpaired


def write_rejects(out: Path, work, tasks: int) -> tuple[str, Counter, list[dict[str, Any]]]:
    """rejects.jsonl; its hash, the count per reason and the first three rows of each reason
    (the report's examples)."""
    output = Output(out, "rejects.jsonl")
    reasons: Counter[str] = Counter()
    examples: list[dict[str, Any]] = []
    for parts in reject_sources(tasks):
        for line in work.lines(parts):
            output.write(line)
            row = json.loads(line)
            reasons[row["reason"]] += 1
            if reasons[row["reason"]] <= 3:
                examples.append(row)
    return output.finish(), reasons, examples


def summaries(work, stage: str, tasks: int) -> Iterator[dict[str, Any]]:
    for rank in range(tasks):
        yield work.summary(stage, rank)


def counted(rows: Iterable[dict[str, Any]], key: str) -> dict[str, Counter]:
    totals = {name: Counter() for name in SPLITS}
    for row in rows:
        for name in SPLITS:
            totals[name].update(row[key].get(name, {}))
    return totals


def run(plan, rank: int, work, pool, track) -> dict[str, Any]:
    from storyteller.curate.report import write_report

    config = plan.config
    work.begin("write", 0)
    out = Path(plan.out)
    out.mkdir(parents=True, exist_ok=True)
    tasks = plan.tasks
    outputs: dict[str, str] = {}
    shard_bytes = config.resources.shard_mb * 2**20
    for split in SPLITS:
        outputs.update(write_split(out, split, [("pairs", f"{t:05d}", f"{split}.jsonl")
                                                for t in range(tasks)], work, shard_bytes))
    rejects_hash, rejected, examples = write_rejects(out, work, tasks)
    outputs["rejects.jsonl"] = rejects_hash

    described, readings = [], []
    for task in range(tasks):
        for entry, reading in work.read_pickle(("read", f"{task:05d}", "inputs.pkl")):
            entry["reading"] = reading.to_json()
            described.append(entry)
            readings.append(reading)
    paired = list(summaries(work, "pairs", tasks))
    kept_per_input: Counter[int] = Counter()
    for row in paired:
        kept_per_input.update({int(k): v for k, v in row["kept_per_input"].items()})
    for index, entry in enumerate(described):
        entry["kept"] = kept_per_input.get(index, 0)
    linked = work.summary("link", 0)
    clusters = work.read_json(("link", "00000", "clusters.json"))
    pairs = Counter()
    tokens = Counter()
    inferred: Counter[str] = Counter()
    for row in paired:
        pairs.update(row["pairs"])
        tokens.update(row["tokens"])
        inferred.update(row["inferred"])
    genres, kinds, by_genre = (counted(paired, key) for key in ("genres", "kinds", "stories_by_genre"))
    words = np.concatenate([work.load_array(("pairs", f"{t:05d}", "words.npy"))
                            for t in range(tasks)]) if tasks else np.zeros(0, dtype=np.int64)
    settings = to_dict(config)
    settings.pop("resources")  # how the work ran, never what it made
    manifest = {
        "name": config.name,
        "storyteller_version": storyteller.__version__,
        "inputs": described,
        "counts": {
            "records_read": sum(entry["records"] for entry in described),
            "stories_read": sum(entry["stories"] for entry in described),
            "stories_kept": int(len(words)),
            "rejected": dict(sorted(rejected.items())),
            "duplicates": {"exact": linked["exact"], "near": linked["near"]},
            "near_duplicate_clusters": linked["clusters"],
            "pairs": {name: pairs[name] for name in SPLITS},
            "story_tokens": {name: tokens[name] for name in SPLITS},
            "stories_per_split": {name: sum(by_genre[name].values()) for name in SPLITS},
            "genre": {name: dict(sorted(genres[name].items())) for name in SPLITS},
            "stories_by_genre": {name: dict(sorted(by_genre[name].items())) for name in SPLITS},
            "kind": {name: dict(sorted(kinds[name].items())) for name in SPLITS},
            "inferred_tags": dict(sorted(inferred.items())),
        },
        "clusters": clusters,
        "tagger": linked["tagger"],
        "config": settings,
    }
    for name in write_report(out, manifest, words.tolist(), clusters, examples, config.charts,
                             readings):
        outputs[name] = sha256_of(out / name)
    manifest["outputs"] = dict(sorted(outputs.items()))
    write_manifest(out, manifest)
    return {"stories_kept": int(len(words))}

