"""Bytes → text: UTF-8 with or without BOM, Latin-1 fallback, any newline convention → LF."""

from __future__ import annotations

import re
from pathlib import Path

from storyteller.errors import ConfigError, InputError


def decode_bytes(data: bytes, encoding: str = "auto") -> tuple[str, str]:
    """The text and the encoding used. `auto` reads UTF-8 (BOM stripped). A file that is not
    UTF-8 is read as Latin-1, which decodes any byte string, so a stray byte never aborts a run;
    but a UTF-8 file with a few bad bytes (under 1 in 1,000) keeps UTF-8, the bad bytes replaced,
    rather than garbling every accented letter in it."""
    if encoding != "auto":
        return normalize_newlines(data.decode(encoding, errors="replace")), encoding
    if data.startswith(b"\xef\xbb\xbf"):
        return normalize_newlines(data[3:].decode("utf-8", errors="replace")), "utf-8-sig"
    try:
        return normalize_newlines(data.decode("utf-8")), "utf-8"
    except UnicodeDecodeError:
        replaced = data.decode("utf-8", errors="replace")
        if replaced.count("\ufffd") * 1000 < len(data) and re.search(rb"[\xc2-\xf4][\x80-\xbf]", data):
            return normalize_newlines(replaced), "utf-8 (bad bytes replaced)"
        return normalize_newlines(data.decode("latin-1")), "latin-1"


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_text(path: Path, encoding: str = "auto") -> tuple[str, str]:
    try:
        return decode_bytes(path.read_bytes(), encoding)
    except OSError as exc:
        raise InputError.at(str(path), f"cannot read: {exc.strerror or exc}") from None
    except LookupError:
        raise ConfigError.at("source.encoding", f"unknown encoding {encoding!r}",
                             "set source.encoding to auto, utf-8 or latin-1") from None


def read_head(path: Path, size: int = 65536) -> str:
    """The decoded start of a file, for format detection without reading all of it."""
    try:
        with path.open("rb") as handle:
            data = handle.read(size)
    except OSError as exc:
        raise InputError.at(str(path), f"cannot read: {exc.strerror or exc}") from None
    return decode_bytes(data)[0]


class LineCounter:
    """1-based line numbers of offsets in a text, asked in increasing order (each newline is
    counted once, so a whole file costs one pass)."""

    def __init__(self, text: str):
        self.text = text
        self.offset = 0
        self.line = 1

    def line_at(self, offset: int) -> int:
        if offset < self.offset:
            self.offset, self.line = 0, 1
        self.line += self.text.count("\n", self.offset, offset)
        self.offset = offset
        return self.line
