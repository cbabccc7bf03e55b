"""Reading a curated data directory (storyteller curate's --out): the contract every later stage
reads, with errors that name the file and line of a malformed pair.

A split is one file, `train.jsonl`, or a complete set of shards named as `datasets` names them,
`train-00000-of-00004.jsonl` … `train-00003-of-00004.jsonl`; both hold one pair per line.
`split_files` finds either (and refuses an incomplete set), `read_pairs` / `read_split` /
`read_data` load pairs whole, and `iter_pairs` / `iter_located_pairs` stream them line by line,
for splits too large to hold in memory."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyteller.errors import InputError, Problem
from storyteller.files import sha256_of

SPLITS = ("train", "val", "test")
SPLIT_FILES = tuple(f"{split}.jsonl" for split in SPLITS)  # the unsharded names
SHARD_NAME = "{split}-{index:05d}-of-{count:05d}.jsonl"
MAX_PROBLEMS = 20  # located problems reported at once; more would only bury the first


def shard_name(split: str, index: int, count: int) -> str:
    return SHARD_NAME.format(split=split, index=index, count=count)


def _shard_pattern(split: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(split)}-(\d{{5,}})-of-(\d{{5,}})\.jsonl")


def split_files(directory: Path, split: str) -> list[Path]:
    """The files of `split` in reading order: `[split.jsonl]`, the shards in index order, or []
    where the split has no file. A shard set with a file missing, or with two different counts,
    is an error naming what is missing: reading part of a split would train or evaluate on less
    than was curated, silently."""
    directory = Path(directory)
    single = directory / f"{split}.jsonl"
    pattern = _shard_pattern(split)
    shards: dict[int, dict[int, Path]] = {}  # count → index → file
    if directory.is_dir():
        for path in directory.iterdir():
            match = pattern.fullmatch(path.name)
            if match:
                index, count = int(match[1]), int(match[2])
                shards.setdefault(count, {})[index] = path
    if not shards:
        return [single] if single.exists() else []
    if single.exists():
        raise InputError.at(str(directory), f"holds both {single.name} and {split} shards "
                                            f"({_listing(shards)})",
                            f"keep one: remove {single.name} or the shards, or curate again "
                            "into an empty directory")
    if len(shards) > 1:
        raise InputError.at(str(directory), f"the {split} shards disagree on their count "
                                            f"({_listing(shards)})",
                            "remove the shards of the older set, or curate again into an empty "
                            "directory")
    (count, found), = shards.items()
    missing = [shard_name(split, i, count) for i in range(count) if i not in found]
    extra = sorted(path.name for index, path in found.items() if index >= count)
    problems = []
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        problems.append(Problem(str(directory), f"the {split} split is incomplete: {len(missing)} "
                                                f"of {count} shards missing: {shown}",
                                "copy the missing shards back, or curate again"))
    if extra:
        problems.append(Problem(str(directory), f"{', '.join(extra)}: shard index beyond its "
                                                f"count of {count}",
                                "remove it, or curate again into an empty directory"))
    if problems:
        raise InputError(*problems)
    return [found[i] for i in range(count)]


def _listing(shards: dict[int, dict[int, Path]]) -> str:
    return "; ".join(f"{len(files)} of {count:05d}" for count, files in sorted(shards.items()))


def split_label(directory: Path, split: str) -> str:
    """How errors name a split: its file, or its shards' pattern."""
    try:
        files = split_files(directory, split)
    except InputError:
        files = []
    if len(files) > 1 or (files and files[0].name != f"{split}.jsonl"):
        return str(Path(directory) / f"{split}-*-of-{len(files):05d}.jsonl")
    return str(Path(directory) / f"{split}.jsonl")


def parse_pair(line: str, where: str) -> dict[str, Any] | Problem | None:
    """One line as a pair, a Problem located at `where` (file:line), or None for a blank line."""
    if not line.strip():
        return None
    try:
        pair = json.loads(line)
    except json.JSONDecodeError as exc:
        return Problem(where, f"not valid JSON: {exc.msg}")
    if not isinstance(pair, dict) or "id" not in pair or not isinstance(pair.get("messages"), list):
        return Problem(where, "not a curated pair (needs id and messages)")
    return pair


def read_pairs(path: Path) -> list[dict[str, Any]]:
    """The pairs of one split file; a malformed line is an error naming file:line."""
    pairs, problems = _read_file(path)
    if problems:
        raise InputError(*problems[:MAX_PROBLEMS])
    return pairs


def _read_file(path: Path, parse=parse_pair) -> tuple[list[dict[str, Any]], list[Problem]]:
    pairs, problems = [], []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            parsed = parse(line, f"{path}:{number}")
            if isinstance(parsed, Problem):
                problems.append(parsed)
            elif parsed is not None:
                pairs.append(parsed)
    return pairs, problems


def read_split(directory: Path, split: str, parse=parse_pair) -> list[dict[str, Any]]:
    """Every pair of `split`, shard after shard; [] where the split has no file. Malformed
    lines of every shard are reported together, each as file:line. `parse` reads one line
    (a preference directory's records have their own)."""
    pairs, problems = [], []
    for path in split_files(directory, split):
        found, bad = _read_file(path, parse)
        pairs += found
        problems += bad
    if problems:
        raise InputError(*problems[:MAX_PROBLEMS])
    return pairs


def manifest_hash(directory: Path) -> str:
    """The sha256 of the directory's manifest, which identifies the curated data."""
    manifest = Path(directory) / "manifest.json"
    if not manifest.is_file():
        raise InputError.at(str(directory), "not a curated data directory (no manifest.json)",
                            f"run: storyteller curate <inputs> --out {directory}")
    return sha256_of(manifest)


def read_data(directory: Path) -> tuple[dict[str, list[dict[str, Any]]], str]:
    """The splits of a curated directory and the sha256 of its manifest."""
    data_hash = manifest_hash(directory)
    splits = {split: read_split(directory, split) for split in SPLITS}
    if not splits["train"]:
        raise InputError.at(split_label(directory, "train"), "no training pairs",
                            "curate more stories, or check the curate report")
    return splits, data_hash


@dataclass(frozen=True)
class Position:
    """A place in a split: `file` indexes `split_files`, `offset` is a byte offset in it and
    `line` the number of lines before it (so errors after a seek still name file:line)."""

    file: int = 0
    offset: int = 0
    line: int = 0


def iter_located_pairs(directory: Path, split: str,
                       start: Position = Position()) -> Iterator[tuple[Position, dict[str, Any]]]:
    """(the position just after the pair's line, the pair) from `start` to the split's end, file
    by file, line by line; a malformed line stops it with an error naming its file:line. Only
    the line being read is held, so a split of any size streams in constant memory."""
    files = split_files(directory, split)
    for index in range(start.file, len(files)):
        path = files[index]
        offset, number = (start.offset, start.line) if index == start.file else (0, 0)
        with open(path, "rb") as handle:
            handle.seek(offset)
            for raw in handle:
                offset += len(raw)
                number += 1
                where = f"{path}:{number}"
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError.at(where, f"not UTF-8 ({exc.reason})") from None
                parsed = parse_pair(line, where)
                if isinstance(parsed, Problem):
                    raise InputError(parsed)
                if parsed is not None:
                    yield Position(index, offset, number), parsed


def iter_pairs(directory: Path, split: str) -> Iterator[dict[str, Any]]:
    """The pairs of `split`, streamed file by file and line by line (see iter_located_pairs)."""
    for _, pair in iter_located_pairs(directory, split):
        yield pair
