"""Writing a curated directory's manifest (the split files, rejects and report are written by
the write stage, `stages/assemble.py`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from storyteller.files import sha256_of, write_atomic  # noqa: F401  (part of this module's API)


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    write_atomic(out / "manifest.json",
                 (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
