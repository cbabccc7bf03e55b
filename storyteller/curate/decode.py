"""Bytes → text: UTF-8 with or without BOM, Latin-1 fallback, any newline convention → LF."""

from __future__ import annotations

from pathlib import Path

from storyteller.errors import InputError


def decode_bytes(data: bytes, encoding: str = "auto") -> tuple[str, str]:
    """The text and the encoding used. `auto` tries UTF-8 (BOM stripped), then Latin-1, which
    decodes any byte string, so a stray byte never aborts a run."""
    if encoding != "auto":
        return normalize_newlines(data.decode(encoding, errors="replace")), encoding
    if data.startswith(b"\xef\xbb\xbf"):
        return normalize_newlines(data[3:].decode("utf-8", errors="replace")), "utf-8-sig"
    try:
        return normalize_newlines(data.decode("utf-8")), "utf-8"
    except UnicodeDecodeError:
        return normalize_newlines(data.decode("latin-1")), "latin-1"


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_text(path: Path, encoding: str = "auto") -> tuple[str, str]:
    try:
        return decode_bytes(path.read_bytes(), encoding)
    except OSError as exc:
        raise InputError.at(str(path), f"cannot read: {exc.strerror or exc}") from None
    except LookupError:
        raise InputError.at(str(path), f"unknown encoding {encoding!r}",
                            "set source.encoding to auto, utf-8 or latin-1") from None
