"""The work folder of a curate run: what each stage's tasks wrote, for the next stage to read
and for `--resume` to skip.

A task writes its files under `<stage>/<task>/`, then a `<stage>/<task>.done` marker last, so a
task killed half-way has no marker and runs again from nothing. The folder is any fsspec URL (a
local folder by default), so tasks on several machines can share one."""

from __future__ import annotations

import io
import json
import pickle
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

import fsspec
from fsspec.implementations.local import LocalFileSystem
import numpy as np


class Work:
    def __init__(self, url: str):
        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url)
        self.local = isinstance(self.fs, LocalFileSystem)

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def task(self, stage: str, rank: int) -> tuple[str, str]:
        return stage, f"{rank:05d}"

    # --- completion markers -------------------------------------------------------------

    def done(self, stage: str, rank: int) -> bool:
        return self.fs.exists(self.path(stage, f"{rank:05d}.done"))

    def mark_done(self, stage: str, rank: int, summary: dict[str, Any] | None = None) -> None:
        self.write_json((stage, f"{rank:05d}.done"), summary or {})

    def summary(self, stage: str, rank: int) -> dict[str, Any]:
        return self.read_json((stage, f"{rank:05d}.done"))

    def begin(self, stage: str, rank: int) -> tuple[str, str]:
        """The task's folder, emptied of what an interrupted attempt left."""
        parts = self.task(stage, rank)
        folder = self.path(*parts)
        if self.fs.exists(folder):
            self.fs.rm(folder, recursive=True)
        self.fs.makedirs(folder, exist_ok=True)
        return parts

    def clear(self) -> None:
        if self.fs.exists(self.root):
            self.fs.rm(self.root, recursive=True)

    def makedirs(self) -> None:
        self.fs.makedirs(self.root, exist_ok=True)

    # --- files ------------------------------------------------------------------------------

    def open(self, parts: Iterable[str], mode: str = "rb"):
        return self.fs.open(self.path(*parts), mode)

    def exists(self, parts: Iterable[str]) -> bool:
        return self.fs.exists(self.path(*parts))

    def write_bytes(self, parts: Iterable[str], data: bytes) -> None:
        with self.open(parts, "wb") as handle:
            handle.write(data)

    def write_json(self, parts: Iterable[str], value: Any) -> None:
        self.write_bytes(parts, json.dumps(value, ensure_ascii=False).encode("utf-8"))

    def read_json(self, parts: Iterable[str]) -> Any:
        with self.open(parts) as handle:
            return json.loads(handle.read().decode("utf-8"))

    def write_pickle(self, parts: Iterable[str], value: Any) -> None:
        self.write_bytes(parts, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))

    def read_pickle(self, parts: Iterable[str]) -> Any:
        with self.open(parts) as handle:
            return pickle.loads(handle.read())

    def save_array(self, parts: Iterable[str], array: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        self.write_bytes(parts, buffer.getvalue())

    def load_array(self, parts: Iterable[str], mmap: bool = False) -> np.ndarray:
        parts = tuple(parts)
        if mmap and self.local:
            # Pages are read as they are touched: a large array costs no resident memory.
            return np.load(self.path(*parts), mmap_mode="r")
        with self.open(parts) as handle:
            return np.load(io.BytesIO(handle.read()), allow_pickle=False)

    @contextmanager
    def chunk_writer(self, parts: Iterable[str]) -> Iterator["ChunkWriter"]:
        with self.open(parts, "wb") as handle:
            yield ChunkWriter(handle)

    def chunks(self, parts: Iterable[str]) -> Iterator[Any]:
        """The chunks a ChunkWriter wrote, in order, one at a time."""
        with self.open(parts) as handle:
            while True:
                try:
                    yield pickle.load(handle)
                except EOFError:
                    return

    def lines(self, parts: Iterable[str]) -> Iterator[bytes]:
        with self.open(parts) as handle:
            yield from handle


class ChunkWriter:
    """A stream of pickled chunks (lists of records), read back one chunk at a time."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, chunk: Any) -> None:
        pickle.dump(chunk, self.handle, protocol=pickle.HIGHEST_PROTOCOL)
