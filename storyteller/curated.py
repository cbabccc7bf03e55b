"""Reading a curated data directory (storyteller curate's --out): the contract every later stage
reads, with errors that name the file and line of a malformed pair."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from storyteller.errors import InputError, Problem
from storyteller.files import sha256_of

SPLIT_FILES = ("train.jsonl", "val.jsonl", "test.jsonl")


def read_pairs(path: Path) -> list[dict[str, Any]]:
    """The pairs of one split file; a malformed line is an error naming file:line."""
    pairs, problems = [], []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                pair = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(Problem(f"{path}:{number}", f"not valid JSON: {exc.msg}"))
                continue
            if not isinstance(pair, dict) or "id" not in pair or \
                    not isinstance(pair.get("messages"), list):
                problems.append(Problem(f"{path}:{number}", "not a curated pair (needs id and messages)"))
                continue
            pairs.append(pair)
    if problems:
        raise InputError(*problems[:20])
    return pairs


def read_data(directory: Path) -> tuple[dict[str, list[dict[str, Any]]], str]:
    """The splits of a curated directory and the sha256 of its manifest."""
    manifest = directory / "manifest.json"
    if not manifest.is_file():
        raise InputError.at(str(directory), "not a curated data directory (no manifest.json)",
                            f"run: storyteller curate <inputs> --out {directory}")
    splits = {}
    for name in SPLIT_FILES:
        path = directory / name
        splits[name.removesuffix(".jsonl")] = read_pairs(path) if path.exists() else []
    if not splits["train"]:
        raise InputError.at(str(directory / "train.jsonl"), "no training pairs",
                            "curate more stories, or check the curate report")
    return splits, sha256_of(manifest)
