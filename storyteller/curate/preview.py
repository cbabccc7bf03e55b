"""What was read from each input, for a person to check before training: the format and why,
how a book was divided, every story found (line, title, words, first words), the front and back
matter set aside, what was taken out of the text, and warnings where the division looks wrong.

`storyteller curate INPUT --preview` prints it and writes nothing; report.md carries the same
tables. Pure functions of what the readers returned."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any, Iterable, Sequence

from storyteller.curate.records import RawStory, Rejected
from storyteller.curate.sources.headings import CHAPTER, style_of

MATTER = ("front_matter", "back_matter")
BOOK_FORMATS = ("gutenberg", "epub", "docx", "odt", "html")


@dataclass(frozen=True)
class StoryRow:
    line: int | None
    position: int | None
    title: str
    words: int
    first_words: str


@dataclass
class InputReading:
    path: str
    format: str
    why: str
    method: str = ""
    notes: list[str] = field(default_factory=list)
    stories: list[StoryRow] = field(default_factory=list)  # the first ones (all, for a book)
    story_count: int = 0
    matter: list[tuple[int | None, str, str]] = field(default_factory=list)
    rejected: Counter = field(default_factory=Counter)
    removed: Counter = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "notes": self.notes, "warnings": self.warnings,
                "matter": [{"line": line, "reason": reason, "detail": detail}
                           for line, reason, detail in self.matter],
                "removed": dict(sorted(self.removed.items()))}


def why_format(path: str, fmt: str, given: str = "auto") -> str:
    """In words, why `path` was read as `fmt`."""
    if given != "auto":
        return f"source.format is {given}"
    suffix = Path(path).suffix.lower()
    if fmt == "gutenberg":
        return "Project Gutenberg header or Etext licence found"
    if fmt == "folder":
        return "a folder of story files, one story each"
    if fmt == "datasets":
        return "a folder written by datasets' save_to_disk" if Path(path).is_dir() \
            else "a hub id"
    if fmt == "text":
        return f"{suffix or 'a file without suffix'}: plain text, no Project Gutenberg markers"
    if suffix.lstrip(".") == fmt or (fmt, suffix) in (("html", ".htm"), ("jsonl", ".ndjson"),
                                                     ("csv", ".tsv")):
        return f"{suffix} file"
    return f"{suffix or 'no suffix'}, but its content is {fmt}"


def heading_lines_inside(text: str) -> int:
    """Paragraphs of a story that look like headings (short, in capitals or Title Case)."""
    count = 0
    for paragraph in text.split("\n\n"):
        paragraph = paragraph.strip()
        if paragraph and "\n" not in paragraph and len(paragraph.split()) <= 8 \
                and style_of(paragraph.rstrip(".")) == "caps" and len(paragraph) > 3 \
                and not CHAPTER.match(paragraph):
            count += 1
    return count


def split_warnings(fmt: str, stories: Sequence[StoryRow], texts: Sequence[str]) -> list[str]:
    """Where a book's division into stories looks wrong."""
    warnings: list[str] = []
    if not stories or fmt not in (*BOOK_FORMATS, "text"):
        return warnings  # a table's rows are separate stories; their lengths say nothing
    total = sum(s.words for s in stories)
    if fmt in BOOK_FORMATS and len(stories) == 1 and total > 5000:
        warnings.append(f"the whole book ({total:,} words) is one story: no contents list or "
                        "headings divided it")
    biggest = max(stories, key=lambda s: s.words)
    if len(stories) >= 3 and biggest.words > 0.5 * total:
        warnings.append(f"{biggest.title or 'one story'!r} holds {biggest.words / total:.0%} of "
                        "the words: perhaps its headings were missed")
    if len(stories) >= 5:
        middle = median(s.words for s in stories)
        short = [s for s in stories if s.words < middle / 10]
        long = [s for s in stories if s.words > middle * 10]
        if short:
            warnings.append(f"{len(short)} stories are under a tenth of the median length "
                            f"({middle:.0f} words): " + ", ".join(repr(s.title) for s in short[:4]))
        if long:
            warnings.append(f"{len(long)} stories are over ten times the median length: "
                            + ", ".join(repr(s.title) for s in long[:4]))
    for story, text in zip(stories, texts):
        inside = heading_lines_inside(text)
        if inside >= 5:
            warnings.append(f"{story.title or 'a story'!r} has {inside} heading-like lines "
                            "inside: perhaps it is several stories")
    return warnings


def first_words(text: str, count: int = 8) -> str:
    words = text.split()
    return " ".join(words[:count]) + (" …" if len(words) > count else "")


class Tally:
    """Builds the InputReadings of some inputs from their records, one record at a time, so
    that a corpus of millions is read back without being held."""

    def __init__(self, described: Sequence[dict[str, Any]], given_format: str = "auto",
                 keep: int = 200, first_input: int = 0):
        self.readings = [InputReading(d["path"], d["format"],
                                      why_format(d["path"], d["format"], given_format),
                                      d.get("reading", {}).get("method", ""),
                                      list(d.get("reading", {}).get("notes", [])))
                         for d in described]
        self.keep, self.first_input = keep, first_input
        self.by_path = {r.path: r for r in self.readings}
        self.texts: dict[str, list[str]] = {r.path: [] for r in self.readings}

    def add(self, record: RawStory | Rejected) -> None:
        readings = self.readings
        if isinstance(record, RawStory):
            index = record.input - self.first_input
            reading = readings[index] if 0 <= index < len(readings) \
                else self.by_path.get(record.source)
            if reading is None:
                return
            reading.story_count += 1
            if record.removed:
                reading.removed.update(record.removed)
            whole = reading.format in (*BOOK_FORMATS, "text")
            if not whole and len(reading.stories) >= self.keep:
                return
            reading.stories.append(StoryRow(record.line, record.position,
                                            str(record.meta.get("title", "")),
                                            len(record.text.split()), first_words(record.text)))
            if whole:
                self.texts[reading.path].append(record.text)
        else:
            reading = self.by_path.get(record.source) or next(
                (r for r in readings if record.source.startswith(r.path)), None)
            if reading is None:
                return
            reading.rejected[record.reason] += 1
            if record.reason in MATTER:
                reading.matter.append((record.line, record.reason, record.detail))

    def finish(self) -> list[InputReading]:
        for reading in self.readings:
            reading.warnings = split_warnings(reading.format, reading.stories,
                                              self.texts[reading.path])
        return self.readings


def read_back(described: Sequence[dict[str, Any]], records: Iterable[RawStory | Rejected],
              given_format: str = "auto", keep: int = 200) -> list[InputReading]:
    """One InputReading per input, from the records the readers returned (in input order).
    A book keeps a row per story (its warnings need them all); a table or a folder keeps its
    first `keep`, so a corpus of millions costs no more than a book."""
    tally = Tally(described, given_format, keep)
    for record in records:
        tally.add(record)
    return tally.finish()


def _cell(text: Any) -> str:
    return re.sub(r"\s+", " ", str(text)).replace("|", "/")


def markdown(readings: Sequence[InputReading], limit: int = 60) -> str:
    """The readings as Markdown: a heading and tables per input."""
    parts = []
    for reading in readings:
        parts += [f"### {reading.path}", "",
                  f"Read as **{reading.format}** ({reading.why})"
                  + (f"; divided by {reading.method}" if reading.method else "") + ". "
                  f"{reading.story_count} stories"
                  + (f", {sum(reading.rejected.values())} records set aside "
                     f"({', '.join(f'{n} {r}' for r, n in sorted(reading.rejected.items()))})"
                     if reading.rejected else "") + ".", ""]
        for note in reading.notes:
            parts += [f"- note: {note}"]
        for warning in reading.warnings:
            parts += [f"- **warning**: {warning}"]
        if reading.notes or reading.warnings:
            parts.append("")
        if reading.stories:
            parts += ["| line | title | words | first words |", "|---:|---|---:|---|"]
            for row in reading.stories[:limit]:
                where = row.line if row.line is not None else f"#{row.position}"
                parts.append(f"| {where} | {_cell(row.title)} | {row.words:,} | "
                             f"{_cell(row.first_words)} |")
            if reading.story_count > limit:
                parts.append(f"| … | {reading.story_count - limit} more | | |")
            parts.append("")
        if reading.matter:
            parts += ["Not stories (front and back matter):", "",
                      "| line | section | what |", "|---:|---|---|"]
            parts += [f"| {line if line is not None else ''} | {reason.replace('_', ' ')} | "
                      f"{_cell(detail)} |" for line, reason, detail in reading.matter]
            parts.append("")
        if reading.removed:
            parts += ["Taken out of the stories' text: " + ", ".join(
                f"{n} {what}" for what, n in sorted(reading.removed.items())) + ".", ""]
    return "\n".join(parts)


def show(readings: Sequence[InputReading], console, limit: int = 60) -> None:
    """The readings on a terminal: rich tables, warnings in colour."""
    from rich.table import Table

    for reading in readings:
        console.print(f"\n[bold]{reading.path}[/]: {reading.format} ({reading.why})"
                      + (f"; divided by {reading.method}" if reading.method else ""))
        for note in reading.notes:
            console.print(f"  note: {note}")
        for warning in reading.warnings:
            console.print(f"  [yellow]warning[/]: {warning}")
        table = Table("line", "title", "words", "first words", title_justify="left",
                      title=f"{reading.story_count} stories")
        for row in reading.stories[:limit]:
            table.add_row(str(row.line if row.line is not None else f"#{row.position}"),
                          row.title, f"{row.words:,}", row.first_words)
        if reading.story_count > limit:
            table.add_row("…", f"{reading.story_count - limit} more", "", "")
        console.print(table)
        if reading.matter:
            matter = Table("line", "section", "what", title="not stories", title_justify="left")
            for line, reason, detail in reading.matter:
                matter.add_row(str(line or ""), reason.replace("_", " "), detail)
            console.print(matter)
        others = {r: n for r, n in reading.rejected.items() if r not in MATTER}
        if others:
            console.print("  set aside: " + ", ".join(f"{n} {r}" for r, n in sorted(others.items())))
        if reading.removed:
            console.print("  taken out of the text: " + ", ".join(
                f"{n} {what}" for what, n in sorted(reading.removed.items())))
