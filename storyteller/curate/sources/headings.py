"""The headings of a book: its text as blocks (runs of non-blank lines, with the blank lines
before each), which blocks could be headings, and how each is set — ALL CAPS, Title Case or
numbered ("XII. The Fox", "1 The Frog-King", "Adventure I" over the title). Pure functions."""

from __future__ import annotations

import re
from dataclasses import dataclass

NUMBER = r"(?:[IVXLC]+|\d+)"
KEYWORD = r"(?:adventure|story|tale|fable|legend|chapter|book|part|volume|vol\.|no\.|number)"
# A block that is only a label, with the title on the next block: "Adventure I", "II.", "Legend 3".
LABEL = re.compile(rf"^(?:{KEYWORD}\s+)?{NUMBER}\s*(?:[.:)]|[-—–]+)?$", re.IGNORECASE)
# A number before a title: "XII. The Fox", "I.--HOWE'S MASQUERADE", "1 The Frog-King", "Adventure
# I. Silver Blaze". A bare Roman numeral needs its punctuation: "I Remember" is a title.
PREFIX = re.compile(rf"^(?:{KEYWORD}\s+{NUMBER}\s*[.:)]?\s*(?:[-—–]+\s*)?"
                    rf"|{NUMBER}\s*(?:[.:)]|[-—–]+)\s*(?:[-—–]+\s*)?|\d+\s+(?=\S))", re.IGNORECASE)
_ORDINAL = r"(?:one|two|three|four|five|six|seven|eight|nine|ten|first|second|third|fourth|fifth)"
# Parts and volumes divide a book; they are not stories.
STRUCTURE = re.compile(rf"^(?:part|book|volume|vol\.)\s+(?:{NUMBER}|{_ORDINAL})\b"
                       rf"|\b(?:vol\.|volume)\s+(?:{NUMBER}|{_ORDINAL})\.?$", re.IGNORECASE)
# Chapters divide a story; they never start one.
CHAPTER = re.compile(
    rf"^(?:(?:chapter|section|canto|stave|episode)\s+(?:{NUMBER}|{_ORDINAL}|the\s+\w+)\b"
    rf"|{NUMBER}\s*[.:)]?$"
    rf"|(?:first|second|third|fourth|fifth|sixth|seventh|last)\s+(?:story|part|chapter)$"
    rf"|(?:part|story)\s+(?:the\s+)?(?:{NUMBER}|{_ORDINAL}|first|second|third|last)\.?$)",
    re.IGNORECASE)
CONTENTS = re.compile(r"^(?:table\s+of\s+)?contents\b.{0,50}$"
                      r"|^(?:a\s+)?list\s+of\s+(?:the\s+)?(?:fables|stories|tales)\b.{0,30}$",
                      re.IGNORECASE)
# Lists that repeat story titles but are not a contents list: never matched as headings.
OTHER_LIST = re.compile(r"^(?:list\s+of\s+)?(?:full[- ]page\s+|coloured\s+|colored\s+)?"
                        r"(?:illustrations|plates|pictures)\b.{0,30}$", re.IGNORECASE)
SEPARATOR = re.compile(r"^[\s*·•.\-_=~+#]{3,}$")
BRACKET = re.compile(r"^\[(?:footnote|illustration|picture|sidenote|note)\b", re.IGNORECASE)
PAGE_NUMBER = re.compile(r"(?:\s*\.{2,}\s*|\s{2,}|\s+)(?:\d+|[ivxlc]+)\s*$", re.IGNORECASE)
SMALL_WORDS = {"a", "an", "and", "as", "at", "but", "by", "for", "from", "in", "into", "of", "on",
          "or", "the", "to", "with", "who", "what", "was", "is", "his", "her", "its", "that",
          "how", "up", "out", "over", "et", "de", "la", "le", "du", "des", "von", "und"}
MIN_STORY_WORDS = 20  # below this a "story" is a heading-like line inside one
TINY_WORDS = 12


@dataclass(frozen=True)
class Block:
    start: int  # offset of its first character in the book
    end: int  # offset just after its last line
    line: int  # 1-based line of its first line
    lines: tuple[str, ...]
    gap: int  # blank lines before it

    @property
    def text(self) -> str:
        return " ".join(line.strip() for line in self.lines)

    @property
    def indent(self) -> int:
        return min(len(line) - len(line.lstrip()) for line in self.lines)


def split_blocks(book: str) -> list[Block]:
    blocks, lines, gap, start, first = [], [], 0, 0, 0
    offset = 0
    for number, line in enumerate(book.split("\n"), start=1):
        if line.strip():
            if not lines:
                start, first = offset, number
            lines.append(line)
        else:
            if lines:
                blocks.append(Block(start, offset - 1, first, tuple(lines), gap))
                lines, gap = [], 0
            gap += 1
        offset += len(line) + 1
    if lines:
        blocks.append(Block(start, len(book), first, tuple(lines), gap))
    return blocks


def clean_title(text: str) -> str:
    """A heading as a title: no number label, footnote marks, italics marks or end dot."""
    text = re.sub(r"\[\d+\]|\{\d+\}|\*\d+", "", text).replace("_", "")
    text = PREFIX.sub("", text.strip(), count=1) if not STRUCTURE.search(text.strip()) else text
    return re.sub(r"\s+", " ", text).strip().rstrip(".").strip()


def heading_key(text: str) -> str:
    """A heading or contents entry, normalised for matching one against the other."""
    text = re.sub(r"\[[^\]]*\]|\([^)]*\)?", " ", text)
    text = clean_title(text).upper().replace("’", "'")
    text = re.sub(r"^(?:THE|A|AN)\s+", "", text)
    return re.sub(r"[^A-Z0-9]+", "", text)


_SPOKEN = re.compile(r"""^["'“‘].*[.!?,;:—-]["'”’]*$|^["'“‘][^"'“”‘’]*$""")


def style_of(title: str) -> str | None:
    """caps, title or None: how a heading is set (a sentence of prose, or a line of dialogue
    such as `"No."`, is neither)."""
    words = re.findall(r"[^\W\d_][\w'’\-]*", title)
    if not words or len(words) > 16 or len(title) > 100 or _SPOKEN.match(title.strip()):
        return None
    letters = [c for c in title if c.isalpha()]
    if len(letters) >= 2 and all(not c.islower() for c in letters):
        return "caps"
    # "McGOGGIN" is set in capitals too.
    if sum(1 for c in letters if c.isupper()) >= 0.7 * len(letters) and len(letters) >= 4:
        return "caps"
    if not words[0][0].isupper() or re.search(r"[,;:!?]\s+\S", title[:-1]) and \
            len(words) > 10:
        return None
    big = [w for w in words[1:] if w.lower() not in SMALL_WORDS]
    if all(w[0].isupper() for w in big):
        return "title"
    return None


def is_heading_block(block: Block) -> bool:
    return (len(block.lines) <= 3 and all(len(line.strip()) <= 90 for line in block.lines)
            and not SEPARATOR.match(block.text) and not BRACKET.match(block.text))


@dataclass
class Heading:
    """A candidate heading: its block(s), title and style. `text_start` is where its section's
    text begins (after a label block's title block, where the title stands apart)."""

    start: int
    text_start: int
    line: int
    title: str
    raw: str
    style: str | None
    gap: int
    numbered: bool
    first_line: str = ""  # of a title over a subtitle, the title


def heading_lines(heading: Heading, book: str) -> list[str]:
    return [line.strip() for line in book[heading.start:heading.text_start].split("\n")
            if line.strip()]


def headings(blocks: list[Block]) -> list[Heading]:
    """Every short block that could be a heading."""
    found = []
    index = 0
    while index < len(blocks):
        block = blocks[index]
        if not is_heading_block(block):
            index += 1
            continue
        text = block.text
        nxt = blocks[index + 1] if index + 1 < len(blocks) else None
        if LABEL.match(text) and not STRUCTURE.search(text) and nxt is not None \
                and is_heading_block(nxt) and nxt.gap <= 3 and style_of(clean_title(nxt.text)):
            # "Adventure I" with the title as the next block: one heading.
            title = clean_title(nxt.text)
            found.append(Heading(block.start, nxt.end, block.line, title, f"{text} {nxt.text}",
                                 style_of(title), block.gap, True))
            index += 2
            continue
        title = clean_title(text)
        numbered = bool(PREFIX.match(text.strip())) and title != text.strip().rstrip(".")
        found.append(Heading(block.start, block.end, block.line, title, text, style_of(title),
                             block.gap, numbered,
                             block.lines[0].strip() if len(block.lines) > 1 else ""))
        index += 1
    return found


def word_count(text: str) -> int:
    return len(text.split())
