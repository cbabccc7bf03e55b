"""Project Gutenberg books: strip the header, footer and licence, then split the book into its
stories using its contents list, or its headings where it has no contents list.

Headings match contents entries after normalisation (case, a leading "THE", Roman numerals,
bracketed alternatives), in order, so a capitalised line inside a tale that the contents list
does not name never splits it. Contents entries that name parts of a tale ("FIRST STORY",
"PART II", numbered sub-entries) stay inside that tale."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from storyteller.curate.decode import read_text
from storyteller.curate.records import Rejected, RawStory
from storyteller.errors import InputError

_START = re.compile(r"^\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK[^*]*\*{3}[ \t]*$",
                    re.MULTILINE | re.IGNORECASE)
_END = re.compile(r"^\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK",
                  re.MULTILINE | re.IGNORECASE)
_CONTENTS = re.compile(r"^[ \t]*(?:TABLE OF )?CONTENTS[:.]?[ \t]*$", re.MULTILINE | re.IGNORECASE)
_ROMAN = r"(?:[IVXLC]+|\d+)"
_NUMBER_PREFIX = re.compile(rf"^\s*(?:{_ROMAN})\.?\s+", re.IGNORECASE)
_PART_ENTRY = re.compile(
    r"^(?:(?:FIRST|SECOND|THIRD|FOURTH|FIFTH|SIXTH|SEVENTH|LAST)\s+(?:STORY|PART|CHAPTER)"
    r"|(?:PART|CHAPTER|STORY|BOOK)\s+(?:THE\s+)?\w+)$", re.IGNORECASE)
_LONE_NUMBER = re.compile(rf"^[ \t]*(?:{_ROMAN})\.?[ \t]*$", re.MULTILINE)
_CAPS_HEADING = re.compile(r"^[^a-z\n]*[A-Z]{2}[^a-z\n]*$")
_END_LINE = re.compile(r"^\s*THE END\.?\s*$", re.MULTILINE | re.IGNORECASE)
_FOOTER_LINE = re.compile(r"^\s*End of (?:the |this )?Project Gutenberg.*$", re.MULTILINE | re.IGNORECASE)
_SEPARATOR_LINE = re.compile(r"^[ \t]*\*(?:[ \t]*\*){2,}[ \t]*$", re.MULTILINE)


def is_gutenberg(text: str) -> bool:
    return bool(_START.search(_join_split_marker(text[:50000])))


def _join_split_marker(text: str) -> str:
    # Newer books may wrap the START/END marker over two lines.
    return re.sub(r"^(\*{3}\s*(?:START|END) OF [^\n*]*)\n([^\n*]*\*{3})", r"\1 \2", text,
                  flags=re.MULTILINE)


def strip_boilerplate(text: str) -> str:
    """The book between the START and END markers (header, footer and licence removed)."""
    text = _join_split_marker(text)
    start = _START.search(text)
    if not start:
        raise InputError.at("gutenberg", "no '*** START OF ... PROJECT GUTENBERG EBOOK' marker",
                            "is this a Project Gutenberg file? else choose another --format")
    end = _END.search(text, start.end())
    return text[start.end():end.start() if end else len(text)]


def heading_key(line: str) -> str:
    """A heading or contents entry, normalised for matching one against the other."""
    line = re.sub(r"\[[^\]]*\]", " ", line)
    line = _NUMBER_PREFIX.sub("", line).upper().replace("’", "'")
    line = re.sub(r"^THE\s+", "", line.strip())
    return re.sub(r"[^A-Z0-9]+", "", line)


@dataclass(frozen=True)
class Entry:
    title: str
    key: str


def contents_entries(body: str) -> tuple[list[Entry], int]:
    """The tales a contents list names and where the list ends; ([], 0) where there is none."""
    match = _CONTENTS.search(body)
    if not match:
        return [], 0
    lines = body[match.end():].split("\n")
    entries: list[tuple[int, str]] = []
    blank_run = 0
    offset = match.end()
    end = offset
    for line in lines:
        offset += len(line) + 1
        if not line.strip():
            blank_run += 1
            if entries and blank_run >= 3:
                break
            continue
        blank_run = 0
        entries.append((len(line) - len(line.lstrip()), line.strip()))
        end = offset
    if not entries:
        return [], 0
    top = min(indent for indent, _ in entries)
    tales = []
    for indent, title in entries:
        name = _NUMBER_PREFIX.sub("", title).strip()
        # Deeper-indented entries and part names are sections of the tale above them; an entry
        # that starts in lower case is a stray line, not a title.
        if indent > top or _PART_ENTRY.match(name) or not name[:1].isupper():
            continue
        tales.append(Entry(title=re.sub(r"\s*\[[^\]]*\]", "", name).strip(), key=heading_key(name)))
    return tales, end


def _standalone_lines(body: str, start: int) -> Iterator[tuple[int, int, str]]:
    """(start, end, text) of each non-blank line that follows a blank line."""
    for match in re.finditer(r"(?<=\n\n)([^\n]+)\n", body[start:]):
        yield start + match.start(1), start + match.end(), match.group(1).strip()


def find_tales(body: str) -> list[tuple[str, int, int]]:
    """(title, heading position, text start) of each tale in the book body."""
    entries, contents_end = contents_entries(body)
    found: list[tuple[str, int, int]] = []
    if entries:
        wanted = 0
        for start, end, line in _standalone_lines(body, contents_end):
            if (wanted < len(entries) and line[:1].isupper()
                    and heading_key(line) == entries[wanted].key):
                found.append((entries[wanted].title, start, end))
                wanted += 1
        if found:
            return found
    # No usable contents list: numbered headings ("II." on its own line, the title on the next
    # short line) or ALL-CAPS lines, each after two blank lines.
    numbered = list(re.finditer(r"(?<=\n\n\n)(?:[IVXLC]+|\d+)\.?[ \t]*\n", body))
    if len(numbered) >= 2:
        for match in numbered:
            title_match = re.match(r"\s*\n([^\n]{1,80})\n\s*\n", body[match.end() - 1:])
            title = title_match.group(1).strip() if title_match else ""
            if title and len(title.split()) <= 10 and not title.endswith((".", ",", ";")):
                found.append((title, match.start(), match.end() - 1 + title_match.end()))
            else:
                found.append((match.group(0).strip(), match.start(), match.end()))
        return found
    for match in re.finditer(r"(?<=\n\n\n)([^\n]+)\n", body):
        line = match.group(1).strip()
        if _CAPS_HEADING.match(line) and len(line.split()) <= 12 and not _LONE_NUMBER.match(line):
            found.append((_NUMBER_PREFIX.sub("", line).strip(), match.start(1), match.end()))
    return found


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


def tale_text(raw: str, last: bool = False) -> str:
    """A tale's text without lone chapter numbers, a closing THE END and, for the book's last
    tale, back matter after a final separator line (an afterword is not part of the tale)."""
    text = _FOOTER_LINE.sub("", _LONE_NUMBER.sub("", raw))
    if last:
        separators = list(_SEPARATOR_LINE.finditer(text))
        if separators and len(text) - separators[-1].end() < 0.5 * len(text):
            text = text[:separators[-1].start()]
    return unwrap(_END_LINE.sub("", text))


def read_gutenberg(path: Path, encoding: str = "auto") -> Iterator[RawStory | Rejected]:
    text, _ = read_text(path, encoding)
    yield from book_records(text, str(path))


def book_records(text: str, source: str) -> Iterator[RawStory | Rejected]:
    """The stories of a Project Gutenberg book given as plain text (a .txt file, or an HTML
    edition turned into text), each with its title and line; what is not a story, rejected."""
    try:
        body = strip_boilerplate(text)
    except InputError as exc:
        raise InputError.at(source, exc.problems[0].message, exc.problems[0].hint) from None
    offset_line = text[:text.find(body[:200])].count("\n") if body[:200] in text else 0
    tales = find_tales(body)
    if not tales:
        raise InputError.at(source, "found no contents list and no headings to split the book",
                            "use --format text with a separator regex for this book")
    bounds = [start for _, start, _ in tales[1:]] + [len(body)]
    for index, ((title, start, text_start), end) in enumerate(zip(tales, bounds)):
        story = tale_text(body[text_start:end], last=index == len(tales) - 1)
        line = offset_line + body.count("\n", 0, start) + 1
        if not story:
            yield Rejected(source, line, "empty", f"tale {title!r} has no text")
            continue
        yield RawStory(text=story, source=source, line=line, position=index,
                       meta={"title": _title_case(title)})
