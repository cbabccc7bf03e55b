"""The read stage: one task per group of input files. Reads each file's records as a stream,
cleans and filters them in the worker pool a window at a time, and writes:

    stories.pkl            the kept stories, in chunks (text, source, line, position, meta,
                           words, tokens, input)
    heads.pkl              per story, what the link stage needs: exact key, place, id,
                           premise, tags given
    bands.npy              (bands, stories) LSH band keys (with near-duplicate detection on)
    shingles.bin / .npy    each story's shingle set, concatenated, and where each begins
    rejects-read.jsonl     records the readers rejected
    rejects-prepare.jsonl  records the cleaning and filters rejected
    inputs.pkl             each input's manifest entry and what was read from it"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from storyteller.curate import dedup
from storyteller.curate.outputs import sha256_of
from storyteller.curate.prepare import Prepared
from storyteller.curate.preview import Tally
from storyteller.curate.records import RawStory, Rejected
from storyteller.curate.sources import read_source
from storyteller.curate.sources.gutenberg import read_gutenberg_book
from storyteller.curate.sources.html import read_html_reading
from storyteller.errors import InputError

CHUNK = 256


def premise_key(premise: Any) -> str | None:
    """What makes two premises the same one (stories answering one prompt share a group)."""
    if isinstance(premise, str) and premise.strip():
        return " ".join(dedup.normalized_words(premise))
    return None


def reject_line(rejected: Rejected) -> bytes:
    return (json.dumps(rejected.to_json(), ensure_ascii=False) + "\n").encode("utf-8")


def unreadable(location: str, error: InputError) -> Rejected:
    problem = error.problems[0]
    line = problem.where.rsplit(":", 1)[1] if ":" in problem.where else ""
    detail = problem.message + (f" ({problem.hint})" if problem.hint else "")
    return Rejected(location, int(line) if line.isdigit() else None, "unreadable", detail)


def open_input(location: str, fmt: str, source) -> tuple[Iterator[RawStory | Rejected], dict]:
    """The records of one input as a stream, and how a book was divided (for the report)."""
    if fmt == "gutenberg":  # a book: keep how it was divided
        book = read_gutenberg_book(Path(location), source.encoding)
        return iter(book.records), {"method": book.method, "notes": book.notes}
    if fmt == "html":  # a Gutenberg HTML edition is a book too
        items, reading = read_html_reading(Path(location), source.encoding)
        return iter(items), reading
    items = iter(read_source(location, fmt, source.fields, encoding=source.encoding,
                             separator=source.separator, separator_regex=source.separator_regex,
                             min_blank_lines=source.min_blank_lines,
                             records_key=source.records_key, dataset_split=source.dataset_split))
    # The readers check a file's layout before their first record: fail here, as a whole.
    first = next(items, None)
    return (itertools.chain([first], items) if first is not None else iter(())), {}


def input_records(location: str, fmt: str, source) -> tuple[Iterator[RawStory | Rejected], dict]:
    """`open_input`, where a file that cannot be read at all is one rejected record, and one
    whose layout breaks half-way ends on one."""
    try:
        records, reading = open_input(location, fmt, source)
    except InputError as error:
        return iter([unreadable(location, error)]), {}

    def guarded():
        try:
            yield from records
        except InputError as error:
            yield unreadable(location, error)
    return guarded(), reading


class Heads:
    """Per kept story, the small facts the one-task stages need, as arrays."""

    def __init__(self):
        self.keys: list[tuple[int, int]] = []
        self.inputs: list[int] = []
        self.lines: list[int] = []
        self.positions: list[int] = []
        self.sources: list[int] = []
        self.source_names: dict[str, int] = {}
        self.ids: list[str | None] = []
        self.premises: list[str | None] = []
        self.genre: list[bool] = []
        self.style: list[bool] = []
        self.words: list[int] = []

    def add(self, item: Prepared) -> None:
        raw = item.raw
        key = int(item.exact_key, 16)
        self.keys.append((key >> 64, key & 0xFFFFFFFFFFFFFFFF))
        self.inputs.append(raw.input)
        self.lines.append(-1 if raw.line is None else raw.line)
        self.positions.append(-1 if raw.position is None else raw.position)
        self.sources.append(self.source_names.setdefault(raw.source, len(self.source_names)))
        given = raw.meta.get("id")
        self.ids.append(str(given) if given else None)
        self.premises.append(premise_key(raw.meta.get("premise")))
        self.genre.append(bool(raw.meta.get("genre")))
        self.style.append(bool(raw.meta.get("genre")) and bool(raw.meta.get("style")))
        self.words.append(item.words)

    def to_dict(self) -> dict[str, Any]:
        return {"keys": np.array(self.keys, dtype=np.uint64).reshape(-1, 2),
                "inputs": np.array(self.inputs, dtype=np.int32),
                "lines": np.array(self.lines, dtype=np.int64),
                "positions": np.array(self.positions, dtype=np.int64),
                "sources": np.array(self.sources, dtype=np.int32),
                "source_names": list(self.source_names),
                "ids": self.ids if any(self.ids) else None,
                "premises": self.premises if any(p is not None for p in self.premises) else None,
                "genre": np.array(self.genre, dtype=bool), "both_tags": np.array(self.style, dtype=bool),
                "words": np.array(self.words, dtype=np.int32)}


def batched(items: Iterator[RawStory], size: int) -> Iterator[list[RawStory]]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


def run(plan, rank: int, work, pool, track) -> dict[str, Any]:
    config = plan.config
    source = config.source
    parts = work.begin("read", rank)
    near = config.dedup.near
    bands, rows = dedup.lsh_shape(config.dedup.threshold, config.dedup.num_perm) if near else (0, 0)
    heads, band_chunks, offsets = Heads(), [], [0]
    described: list[tuple[dict[str, Any], Any]] = []
    records_total = 0
    with work.chunk_writer((*parts, "stories.pkl")) as stories, \
            work.open((*parts, "rejects-read.jsonl"), "wb") as read_rejects, \
            work.open((*parts, "rejects-prepare.jsonl"), "wb") as prepare_rejects, \
            work.open((*parts, "shingles.bin"), "wb") as shingles:
        for index in plan.groups[rank]:
            location, fmt = plan.inputs[index]
            records, reading = input_records(location, fmt, source)
            counts = {"stories": 0, "records": 0}
            path = Path(location)
            entry = {"path": location, "sha256": sha256_of(path) if path.exists() else None,
                     "format": fmt, "stories": 0, "records": 0,
                     **({"reading": reading} if reading else {})}
            tally = Tally([entry], source.format, first_input=index)

            def stories_of(records=records, tally=tally, counts=counts, index=index):
                for item in records:
                    counts["records"] += 1
                    if isinstance(item, RawStory):
                        item.input = index
                        counts["stories"] += 1
                        tally.add(item)
                        yield item
                    else:
                        tally.add(item)
                        read_rejects.write(reject_line(item))

            chunks = pool.map_chunks("prepare", batched(stories_of(), CHUNK))
            for results in track.track(chunks, f"reading {Path(location).name}"[:40]):
                kept: list[Prepared] = []
                for item in results:
                    if isinstance(item, Rejected):
                        prepare_rejects.write(reject_line(item))
                    else:
                        kept.append(item)
                if not kept:
                    continue
                stories.write([(p.text, p.raw.source, p.raw.line, p.raw.position, p.raw.meta,
                                p.words, p.tokens, p.raw.input) for p in kept])
                for item in kept:
                    heads.add(item)
                if near:
                    band_chunks.append(dedup.band_keys(np.stack([p.signature for p in kept]),
                                                       bands, rows))
                    for item in kept:
                        shingles.write(np.ascontiguousarray(item.shingles, dtype=np.uint32).tobytes())
                        offsets.append(offsets[-1] + len(item.shingles))
            entry["stories"], entry["records"] = counts["stories"], counts["records"]
            records_total += counts["records"]
            described.append((entry, tally.finish()[0]))
    work.write_pickle((*parts, "heads.pkl"), heads.to_dict())
    work.write_pickle((*parts, "inputs.pkl"), described)
    if near:
        work.save_array((*parts, "bands.npy"),
                        np.concatenate(band_chunks, axis=1) if band_chunks
                        else np.zeros((bands, 0), dtype=np.uint64))
        work.save_array((*parts, "offsets.npy"), np.array(offsets, dtype=np.int64))
    return {"stories": len(heads.words), "records": records_total}
