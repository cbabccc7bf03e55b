"""Writing a curated directory: split files streamed as pairs are made (each hashed as it is
written and renamed into place when complete), rejects, manifest and report."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from storyteller.curate.split import SPLITS
from storyteller.files import sha256_of, write_atomic  # noqa: F401  (part of this module's API)


def jsonl_bytes(rows: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


class SplitWriter:
    """train/val/test.jsonl written as pairs arrive, with counts for the manifest."""

    def __init__(self, out: Path):
        self.out = out
        self.handles = {name: (out / f".{name}.jsonl.tmp").open("wb") for name in SPLITS}
        self.digests = {name: hashlib.sha256() for name in SPLITS}
        self.pairs = Counter()
        self.genres: dict[str, Counter[str]] = {name: Counter() for name in SPLITS}
        self.kinds: dict[str, Counter[str]] = {name: Counter() for name in SPLITS}
        self.tokens = Counter()

    def write(self, split: str, pairs: Iterable[dict[str, Any]], story_tokens: int = 0) -> None:
        for pair in pairs:
            line = (json.dumps(pair, ensure_ascii=False) + "\n").encode("utf-8")
            self.handles[split].write(line)
            self.digests[split].update(line)
            self.pairs[split] += 1
            self.genres[split][pair["controls"].get("genre", "(none)")] += 1
            self.kinds[split][pair["kind"] + (" (augmented)" if pair["augmented"] else "")] += 1
        self.tokens[split] += story_tokens

    def finish(self) -> dict[str, str]:
        """Close and rename the files into place; their SHA-256 by file name."""
        hashes = {}
        for name, handle in self.handles.items():
            handle.close()
            os.replace(self.out / f".{name}.jsonl.tmp", self.out / f"{name}.jsonl")
            hashes[f"{name}.jsonl"] = self.digests[name].hexdigest()
        return hashes

    def abandon(self) -> None:
        for name, handle in self.handles.items():
            handle.close()
            (self.out / f".{name}.jsonl.tmp").unlink(missing_ok=True)


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    write_atomic(out / "manifest.json",
                 (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
