"""Readers for plain text: a folder of .txt/.md files (one story each) and one text file holding
many stories between separators (runs of blank lines, one per line, `<|endoftext|>`, a regex)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import yaml

from storyteller.curate.decode import LineCounter, read_text
from storyteller.curate.records import Rejected, RawStory
from storyteller.errors import ConfigError, InputError

ENDOFTEXT = "<|endoftext|>"
STORY_SUFFIXES = (".txt", ".md", ".markdown", ".text")
# A folder's own documentation is not a story.
NOT_STORIES = ("README", "LICENSE", "LICENCE", "CHANGELOG", "CONTRIBUTING")
_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)
_MD_TITLE = re.compile(r"\A\s*#\s+(.+?)\s*#*\s*\n")
_ASTERISM = re.compile(r"^[ \t]*(?:[*#~=-][ \t]*){3,}$", re.MULTILINE)


def split_front_matter(text: str) -> tuple[dict, str]:
    """YAML front matter (`---` … `---`) as metadata, and the rest of the text."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError:
        return {}, text
    return (meta if isinstance(meta, dict) else {}), text[match.end():]


def read_folder(path: Path, encoding: str = "auto") -> Iterator[RawStory | Rejected]:
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in STORY_SUFFIXES
                   and not p.stem.upper().startswith(NOT_STORIES))
    if not files:
        raise InputError.at(str(path), "no .txt or .md files in this folder",
                            "point at the files, or use --format for another layout")
    for file in files:
        text, _ = read_text(file, encoding)
        meta: dict = {}
        if file.suffix.lower() in (".md", ".markdown"):
            front, text = split_front_matter(text)
            meta.update({k: str(v) for k, v in front.items() if v is not None})
            match = _MD_TITLE.match(text)
            if match:
                meta.setdefault("title", match.group(1))
                text = text[match.end():]
            meta["markup"] = "markdown"
        if not text.strip():
            yield Rejected(str(file), None, "empty", "the file holds no text")
            continue
        meta.setdefault("title", file.stem.replace("_", " ").replace("-", " ").strip().capitalize())
        yield RawStory(text=text, source=str(file), line=1, meta=meta)


def split_with_lines(text: str, pattern: re.Pattern[str]) -> Iterator[tuple[int, str]]:
    """The pieces of `text` between matches of `pattern`, each with its 1-based start line."""
    lines = LineCounter(text)
    start = 0
    for match in pattern.finditer(text):
        yield lines.line_at(start), text[start:match.start()]
        start = match.end()
    yield lines.line_at(start), text[start:]


def _first_text_line(start_line: int, piece: str) -> tuple[int, str]:
    stripped = piece.lstrip("\n")
    return start_line + len(piece) - len(stripped), stripped.strip()


def _blank_run(count: int) -> re.Pattern[str]:
    """`count` or more blank lines: a line end followed by that many empty (or blank) lines."""
    return re.compile(r"\n(?:[ \t]*\n){%d,}" % count)


def detect_separator(text: str, min_blank_lines: int = 2) -> str:
    # Explicit separators first: blank lines often pad an asterism line as well.
    if ENDOFTEXT in text:
        return "endoftext"
    if _ASTERISM.search(text):
        return "asterism"
    if _blank_run(min_blank_lines).search(text.strip("\n")):
        return "blank-lines"
    return "line"


def separator_pattern(kind: str, regex: str = "", min_blank_lines: int = 2) -> re.Pattern[str]:
    if kind == "endoftext":
        return re.compile(re.escape(ENDOFTEXT))
    if kind == "blank-lines":
        return _blank_run(min_blank_lines)
    if kind == "asterism":
        return _ASTERISM
    if kind == "line":
        return re.compile(r"\n")
    if kind == "regex":
        try:
            return re.compile(regex, re.MULTILINE)
        except re.error as exc:
            raise ConfigError.at("source.separator_regex", f"not a valid regex: {exc}") from None
    raise ConfigError.at("source.separator", f"unknown separator {kind!r}",
                        "use auto, blank-lines, line, endoftext, asterism or regex")


def read_separated(path: Path, separator: str = "auto", regex: str = "", min_blank_lines: int = 2,
                   encoding: str = "auto") -> Iterator[RawStory | Rejected]:
    text, _ = read_text(path, encoding)
    kind = detect_separator(text, min_blank_lines) if separator == "auto" else separator
    if kind == "regex" and not regex:
        raise ConfigError.at("source.separator_regex", "separator is regex but no regex is set")
    pieces = list(split_with_lines(text, separator_pattern(kind, regex, min_blank_lines)))
    for index, (line, piece) in enumerate(pieces):
        line, story = _first_text_line(line, piece)
        if not story:
            continue
        last = index == len(pieces) - 1
        if last and kind == "endoftext" and len(pieces) > 1 and not re.search(r"[.!?\"'”’)]$", story):
            yield Rejected(str(path), line, "truncated",
                           "the last story ends mid-sentence with no closing separator")
            continue
        yield RawStory(text=story, source=str(path), line=line, position=index)
