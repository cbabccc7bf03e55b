"""Project Gutenberg books of every era: strip the header, footer and licence, then divide the
book into its stories (storyteller.curate.sources.book) and clean each story's text.

Headers and footers seen since the 1990s: the modern `*** START OF THE PROJECT GUTENBERG EBOOK
… ***` (also `THIS`, `ETEXT`, a comma after EBOOK, the marker wrapped over two lines); the Etext
header whose licence ends `*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*…*END*`; footers from
`*** END OF THE PROJECT GUTENBERG EBOOK` to `End of Project Gutenberg's Etext of …` and a licence
printed after the book; and books with a header but no footer. The book is what lies between the
last header marker and the first footer marker after it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from storyteller.curate.decode import read_text
from storyteller.curate.records import Rejected, RawStory
from storyteller.curate.sources.book import find_sections
from storyteller.curate.sources.headings import heading_key  # noqa: F401 (re-exported)
from storyteller.errors import InputError

_FLAGS = re.MULTILINE | re.IGNORECASE
# Where the book begins: after the last of these in the first half of the file.
_STARTS = (
    re.compile(r"^\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG E-?(?:BOOK|TEXT)\b.*$", _FLAGS),
    re.compile(r"^\W*END\W*THE SMALL PRINT\b.*$", _FLAGS),
)
# Where it ends: at the first of these after its beginning.
_ENDS = (
    re.compile(r"^\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG", _FLAGS),
    re.compile(r"^\W*End of (?:the |this )?Project Gutenberg", _FLAGS),
    re.compile(r"^\W*START\W*THE SMALL PRINT\b", _FLAGS),
    re.compile(r"^\W*The Legal Small Print\W*$", _FLAGS),
)
# A banner that names the file as a Project Gutenberg book, in any era.
_BANNER = re.compile(r"^\W*(?:This is )?(?:The )?Project Gutenberg(?:'s|’s)? "
                     r"(?:E-?text|E-?book|Edition)s?\b", _FLAGS)
_LONE_NUMBER = re.compile(r"^[ \t]*(?:[IVXLC]+|\d+)\.?[ \t]*$", re.MULTILINE)
_END_LINE = re.compile(r"^\s*(?:THE END|FINIS)\.?\s*$", _FLAGS)
_SEPARATOR_LINE = re.compile(r"^[ \t]*\*(?:[ \t]*\*){2,}[ \t]*$", re.MULTILINE)
# [Footnote 3: …], [Illustration: …], [Picture: …]: notes and pictures, not the story's words.
_BRACKETED = re.compile(r"\[(Footnote|Illustration|Picture|Sidenote)\b[^\]]*\]", re.IGNORECASE)
_FOOTNOTE_MARK = re.compile(r"(?<=\S)\[(?:\d+|[a-z*†‡])\]")
def is_gutenberg(text: str) -> bool:
    """A Project Gutenberg book of any era, from its first 50,000 characters."""
    head = _join_split_marker(text[:50000])
    return any(marker.search(head) for marker in _STARTS) or bool(_BANNER.search(head[:5000]))


def _join_split_marker(text: str) -> str:
    # Newer books may wrap the START/END marker over two lines.
    return re.sub(r"^(\*{3}\s*(?:START|END) OF [^\n*]*)\n([^\n*]*\*{3})", r"\1 \2", text,
                  flags=re.MULTILINE)


def strip_boilerplate(text: str) -> str:
    """The book between the header and the footer (licence included in either removed)."""
    text = _join_split_marker(text)
    half = max(len(text) // 2, 1)
    begin = max((m.end() for marker in _STARTS for m in marker.finditer(text, 0, half)),
                default=-1)
    if begin < 0:
        raise InputError.at("gutenberg", "no '*** START OF ... PROJECT GUTENBERG EBOOK' marker "
                            "nor an Etext licence ending '*END*THE SMALL PRINT'",
                            "is this a Project Gutenberg file? else choose another --format")
    end = min((m.start() for marker in _ENDS for m in [marker.search(text, begin)] if m),
              default=len(text))
    return text[begin:end]


def find_tales(body: str) -> list[tuple[str, int, int]]:
    """(title, heading position, text start) of each story in the book body."""
    structure = find_sections(body)
    return [(s.title, s.start, s.text_start) for s in structure.sections
            if s.kind == "story"] if structure else []


_SMALL_WORDS = {"a", "an", "and", "as", "at", "but", "by", "for", "in", "of", "on", "or", "the",
                "to", "with", "who", "what", "was"}


def _title_case(title: str) -> str:
    if not title.isupper():
        return title
    words = title.title().replace("'S", "'s").replace("’S", "’s").split(" ")
    return " ".join(w.lower() if i and w.lower() in _SMALL_WORDS else w for i, w in enumerate(words))


def unwrap(text: str) -> str:
    """Join the hard-wrapped lines of each paragraph; indented paragraphs (verse) keep theirs."""
    paragraphs = re.split(r"\n[ \t]*\n+", text.strip())
    joined = []
    for paragraph in paragraphs:
        lines = paragraph.split("\n")
        if any(line.startswith((" ", "\t")) for line in lines):
            joined.append("\n".join(line.strip() for line in lines))
        else:
            joined.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(joined)


def remove_notes(text: str) -> tuple[str, dict[str, int]]:
    """The text without [Footnote …] / [Illustration …] / [Picture …] blocks and footnote marks,
    and how many of each went."""
    removed: dict[str, int] = {}

    def drop(match: re.Match) -> str:
        kind = match.group(1).lower()
        kind = "illustrations" if kind in ("illustration", "picture") else kind + "s"
        removed[kind] = removed.get(kind, 0) + 1
        return ""

    text = _BRACKETED.sub(drop, text)
    marks = len(_FOOTNOTE_MARK.findall(text))
    if marks:
        removed["footnote marks"] = marks
        text = _FOOTNOTE_MARK.sub("", text)
    return text, removed


def clean_tale(raw: str, last: bool = False) -> tuple[str, dict[str, int]]:
    """A tale's text without lone chapter numbers, notes and pictures, a closing THE END
    and, for the book's last tale, what follows a final separator line or THE END; and
    what was taken out."""
    text, removed = remove_notes(_LONE_NUMBER.sub("", raw))
    if last:
        ending = list(_END_LINE.finditer(text))
        if ending and len(text) - ending[-1].end() < 0.5 * len(text):
            text = text[:ending[-1].start()]
        separators = list(_SEPARATOR_LINE.finditer(text))
        if separators and len(text) - separators[-1].end() < 0.5 * len(text):
            text = text[:separators[-1].start()]
    return unwrap(_END_LINE.sub("", text)), removed


def read_gutenberg(path: Path, encoding: str = "auto") -> Iterator[RawStory | Rejected]:
    yield from read_gutenberg_book(path, encoding).records


def read_gutenberg_book(path: Path, encoding: str = "auto") -> "BookReading":
    text, _ = read_text(path, encoding)
    return read_book(text, str(path))


@dataclass
class BookReading:
    """What reading a book found: its stories and rejected sections in order, how it was
    divided, and anything a person should check."""

    records: list[RawStory | Rejected]
    method: str
    notes: list[str] = field(default_factory=list)


def read_book(text: str, source: str) -> BookReading:
    try:
        body = strip_boilerplate(text)
    except InputError as exc:
        raise InputError.at(source, exc.problems[0].message, exc.problems[0].hint) from None
    offset_line = text[:text.find(body[:200])].count("\n") if body[:200] in text else 0
    structure = find_sections(body)
    if structure is None or not any(s.kind == "story" for s in structure.sections):
        raise InputError.at(source, "found no contents list and no headings to split the book",
                            "use --format text with a separator regex for this book")
    stories = [s for s in structure.sections if s.kind == "story"]
    records: list[RawStory | Rejected] = []
    for section in structure.sections:
        line = offset_line + body.count("\n", 0, section.start) + 1
        raw = body[section.text_start:section.end]
        if section.kind in ("front_matter", "back_matter"):
            if len(raw.split()) < 5:  # a heading alone ("THE END"): nothing was left out
                continue
            records.append(Rejected(source, line, section.kind, f"{section.title!r}: "
                                    f"{len(raw.split())} words"))
            continue
        if section.kind == "part":
            if len(raw.split()) >= 20:  # an untitled note under a part heading
                records.append(Rejected(source, line, "front_matter", f"text under "
                                        f"{section.title!r} before its first story: "
                                        f"{len(raw.split())} words"))
            continue
        story, removed = clean_tale(raw, last=section is stories[-1])
        if not story:
            records.append(Rejected(source, line, "empty", f"tale {section.title!r} has no text"))
            continue
        records.append(RawStory(text=story, source=source, line=line,
                                position=stories.index(section),
                                meta={"title": _title_case(section.title)}, removed=removed))
    return BookReading(records, structure.method, structure.notes)
