"""Where the stories are in a book: its contents list(s) matched against its headings, or, with
no usable contents list, the heading style that cuts the book into stories of plausible length.

A book is read as blocks (runs of non-blank lines) with the blank lines before each. A heading is
a short block; its style is ALL CAPS, Title Case or numbered ("XII. The Fox", "1 The Frog-King",
"Adventure I" over the title). Parts and volumes ("PART II", a contents entry whose indented
entries are titles) divide the book but are not stories; chapters ("CHAPTER III", a lone "II.",
"SECOND STORY") never divide a story. Front and back matter (storyteller.curate.sources.matter)
becomes its own section, so a preface or the notes never reach a story.

Pure functions of the book's text: the reader (gutenberg.py) does the I/O and the cleaning."""

from __future__ import annotations

import difflib
import re
from bisect import bisect_left
from dataclasses import dataclass, field
from statistics import median

from storyteller.curate.sources.matter import matter_of

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
_PAGE = re.compile(r"(?:\s*\.{2,}\s*|\s{2,}|\s+)(?:\d+|[ivxlc]+)\s*$", re.IGNORECASE)
_SMALL = {"a", "an", "and", "as", "at", "but", "by", "for", "from", "in", "into", "of", "on",
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
    big = [w for w in words[1:] if w.lower() not in _SMALL]
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


def headings(blocks: list[Block], begin: int = 0) -> list[Heading]:
    """Every short block from `begin` on that could be a heading."""
    found = []
    index = begin
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


# ------------------------------------------------------------------------------ contents lists


@dataclass
class Entry:
    title: str
    key: str
    indent: int
    kind: str = "story"  # story, part, chapter, matter
    numbered: bool = False
    children: list["Entry"] = field(default_factory=list)


def _entry_text(line: str) -> str:
    text = _PAGE.sub("", line.rstrip())
    text = re.sub(r"\s*\.{2,}\s*$", "", text)
    return text.strip()


def _is_prose(line: str) -> bool:
    text = _entry_text(line)
    words = re.sub(r"\([^)]*\)?", "", text).split()
    return len(text) > 90 or len(words) > 16 or bool(re.search(r"[a-z][.!?]\s+[A-Z]", text)
                                                       and len(words) > 8)


def read_contents(blocks: list[Block], at: int) -> tuple[list[tuple[int, str]], int]:
    """The (indent, text) entries of the contents list whose heading is block `at`, and the
    index of the first block after it. A title wrapped over two lines is one entry: the second
    line starts in lower case, or (in a list with page numbers) the first line has none."""
    lines: list[tuple[int, str, bool]] = []  # indent, text, has a page number
    keys: set[str] = set()
    index = at + 1
    while index < len(blocks):
        block = blocks[index]
        if OTHER_LIST.match(block.text) or CONTENTS.match(block.text):
            break
        if any(_is_prose(line) for line in block.lines):
            break
        # After a wide gap, a heading that repeats an entry is the body starting.
        if lines and block.gap >= 3 and any(heading_key(line) in keys for line in block.lines):
            break
        for line in block.lines:
            text = _entry_text(line)
            if not text or text.upper() in ("PAGE", "PAGES"):
                continue
            lines.append((len(line) - len(line.lstrip()), text, text != line.strip()))
            keys.add(heading_key(text))
        index += 1
    paged = sum(page for _, _, page in lines) > len(lines) / 2
    entries: list[tuple[int, str]] = []
    previous_paged = True
    for indent, text, page in lines:
        if entries and heading_key(text) == heading_key(entries[-1][1]):
            continue  # a stray repeat of the entry above
        if entries and (text[:1].islower() or text[:1] == "("
                        or entries[-1][1].count("(") > entries[-1][1].count(")")
                        or entries[-1][1].endswith((",", "-", "—", " and", " AND"))
                        or (paged and not previous_paged and indent > entries[-1][0])):
            entries[-1] = (entries[-1][0], f"{entries[-1][1]} {text}")
        else:
            entries.append((indent, text))
        previous_paged = page
    return entries, index


def contents_tree(raw: list[tuple[int, str]]) -> list[Entry]:
    """Stories, parts, chapters and matter from a contents list. A part is named so ("PART II",
    "VOLUME III") or has indented entries that are titles; indented entries that are chapters
    belong to the story above them."""
    entries = []
    for position, (indent, text) in enumerate(raw):
        title = clean_title(re.sub(r"\s*\([^)]*\)?\s*$", "", text)).rstrip(":").strip()
        kind = "story"
        if STRUCTURE.search(text.strip()):
            kind = "part"
        elif CHAPTER.match(text.strip()) or CHAPTER.match(title):
            kind = "chapter"
        elif matter_of(title, position / max(1, len(raw) - 1)):
            kind = "matter"
        entries.append(Entry(title, heading_key(title), indent, kind,
                             numbered=bool(PREFIX.match(text.strip()))))
    levels = sorted({e.indent for e in entries if e.kind in ("story", "matter")})
    top = levels[0] if levels else 0
    tree: list[Entry] = []
    for entry in entries:
        # One space more is a slip of the typesetter, not a level.
        parent = next((e for e in reversed(tree) if e.kind in ("story", "part")
                       and e.indent + 1 < entry.indent), None) if entry.indent > top + 1 else None
        if entry.kind == "part" or parent is None or (tree and tree[-1].kind == "part"
                                                       and entry.indent == tree[-1].indent):
            tree.append(entry)
        else:
            parent.children.append(entry)
    flat: list[Entry] = []
    for entry in tree:
        # Numbered titles under a story are its episodes ("1. HOW THEY WENT TO THE MOUNTAINS");
        # titles under a heading are the stories of a part.
        titled = [c for c in entry.children if c.kind in ("story", "matter") and not c.numbered]
        if len(titled) < len([c for c in entry.children if c.kind == "story"]):
            entry.children = [c for c in entry.children if not c.numbered]
        if entry.kind == "story" and len(titled) >= 2:
            entry.kind = "part"  # a group of stories, e.g. "LEGENDS OF THE PROVINCE HOUSE:"
        flat.append(entry)
        if entry.kind == "part" or len(titled) == 1:  # one indented title is a story beside it
            flat.extend(c for c in entry.children if c.kind in ("story", "matter", "part"))
    return flat


def content_words(title: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", title.lower()) if w not in _SMALL and len(w) > 1}


def _matches(entry_key: str, heading_key_: str, entry_words: set[str] = frozenset(),
             heading_words: set[str] = frozenset()) -> bool:
    if not entry_key or not heading_key_:
        return False
    if entry_key == heading_key_:
        return True
    # "The Boy with Moon on Forehead" names "THE BOY WHO HAD A MOON ON HIS FOREHEAD AND …".
    short, long = sorted((entry_words, heading_words), key=len)
    if len(short) >= 3 and short <= long:
        return True
    short, long = sorted((entry_key, heading_key_), key=len)
    if len(short) >= 8 and short in long and len(short) >= 0.5 * len(long):
        return True
    if abs(len(entry_key) - len(heading_key_)) > 0.35 * max(len(entry_key), len(heading_key_)):
        return False
    matcher = difflib.SequenceMatcher(None, entry_key, heading_key_, autojunk=False)
    return matcher.quick_ratio() >= 0.8 and matcher.ratio() >= 0.8


def align(entries: list[Entry], found: list[Heading]) -> list[tuple[Entry, Heading]]:
    """The longest in-order matching of entries to headings (a heading matches one entry)."""
    keys = [heading_key(h.title) for h in found]
    heading_words = [content_words(h.title) for h in found]
    by_key: dict[str, list[int]] = {}
    for position, (key, heading) in enumerate(zip(keys, found)):
        by_key.setdefault(key, []).append(position)
        if heading.first_line:  # a title over a subtitle is named by its first line
            by_key.setdefault(heading_key(heading.first_line), []).append(position)
    tails: list[int] = []  # smallest heading position ending a chain of each length
    tail_links: list[int] = []  # index into links of that chain's last pair
    links: list[tuple[int, int, int]] = []  # (entry, heading, previous link or -1)
    for entry_index, entry in enumerate(entries):
        positions = list(by_key.get(entry.key, ()))
        if not positions:
            words = content_words(entry.title)
            positions = [p for p, key in enumerate(keys)
                         if _matches(entry.key, key, words, heading_words[p])]
        for position in sorted(positions, reverse=True):
            length = bisect_left(tails, position)
            previous = tail_links[length - 1] if length else -1
            links.append((entry_index, position, previous))
            if length == len(tails):
                tails.append(position)
                tail_links.append(len(links) - 1)
            elif position < tails[length]:
                tails[length] = position
                tail_links[length] = len(links) - 1
    pairs = []
    link = tail_links[-1] if tail_links else -1
    while link >= 0:
        entry_index, position, link = links[link]
        pairs.append((entries[entry_index], found[position]))
    return pairs[::-1]


# ------------------------------------------------------------------------------------ sections


@dataclass(frozen=True)
class Section:
    kind: str  # story, front_matter, back_matter, part
    title: str
    start: int  # offset of its heading
    text_start: int
    end: int
    line: int


@dataclass
class Structure:
    sections: list[Section]
    method: str  # how the book was divided, in words
    notes: list[str] = field(default_factory=list)


def _words(text: str) -> int:
    return len(text.split())


def _build(book: str, marks: list[tuple[Heading, str]]) -> list[Section]:
    marks = sorted(marks, key=lambda m: m[0].start)
    sections = []
    for index, (heading, kind) in enumerate(marks):
        end = marks[index + 1][0].start if index + 1 < len(marks) else len(book)
        sections.append(Section(kind, heading.title, heading.start, heading.text_start, end,
                                heading.line))
    return sections


def matter_label(start: int, book: str, stories: list[Heading]) -> str:
    """Front matter before the stories' middle, back matter after it."""
    middle = stories[len(stories) // 2].start if stories else len(book) / 2
    return "back_matter" if start > middle else "front_matter"


def _matter_marks(book: str, found: list[Heading], taken: set[int],
                  stories: list[Heading]) -> list[tuple[Heading, str]]:
    """Headings of front or back matter anywhere in the book (a preface, "LIFE OF AESOP" after
    the fables, "NOTES AND REFERENCES"): each ends the section before it."""
    last = max((h.start for h in stories), default=len(book))
    marks = []
    for heading in found:
        if heading.start in taken or heading.gap < 2 or not heading.style:
            continue
        share = heading.start / max(1, len(book))
        # After the last story, a life or a note is the book's, whatever its place.
        if matter_of(heading.title, None if heading.start > last else share):
            marks.append((heading, matter_label(heading.start, book, stories)))
    return marks


def list_regions(blocks: list[Block]) -> tuple[list[tuple[int, int]], list[list[tuple[int, str]]]]:
    """Where the contents lists and the lists of illustrations are (block index ranges), and
    the entries of each contents list that names something new: a volume that repeats its
    part of the book's contents adds nothing."""
    regions, lists, seen = [], [], set()
    for index, block in enumerate(blocks):
        if len(block.lines) != 1 or not (CONTENTS.match(block.text)
                                         or OTHER_LIST.match(block.text)):
            continue
        raw, after = read_contents(blocks, index)
        regions.append((index, after))
        keys = {heading_key(text) for _, text in raw}
        if CONTENTS.match(block.text) and raw and not keys <= seen:
            lists.append(raw)
            seen |= keys
    return regions, lists


def _part_marks(book: str, found: list[Heading], stories: list[Heading]) -> list[Heading]:
    """PART / VOLUME headings in the text that open a part: little but a contents list
    between them and the next story (one inside a long story is a division of that story)."""
    marks = []
    starts = sorted(h.start for h in stories)
    for heading in found:
        if not STRUCTURE.search(heading.raw.strip()) or heading.gap < 2:
            continue
        following = next((s for s in starts if s > heading.start), len(book))
        if _words(book[heading.text_start:following]) < 60:
            marks.append(heading)
    return marks


def by_contents(book: str, blocks: list[Block]) -> Structure | None:
    """Sections from the book's contents list(s); None where no list names enough headings."""
    regions, lists = list_regions(blocks)
    if not lists:
        return None
    raw = [entry for entries in lists for entry in entries]
    entries = [e for e in contents_tree(raw) if e.kind != "chapter"]
    stories = [e for e in entries if e.kind == "story"]
    if len(stories) < 2:
        return None
    listed = {i for start, after in regions for i in range(start, after)}
    found_all = [h for h in headings([b for i, b in enumerate(blocks) if i not in listed])
                 if STRUCTURE.search(h.raw.strip()) or not CHAPTER.match(h.raw.strip())]
    first_list = blocks[regions[0][0]].start
    found = [h for h in found_all if h.start > first_list]
    # Back matter (notes, an index) repeats the titles: stories are looked for before it.
    keys = {e.key for e in stories}
    back = next((h.start for h in found if h.gap >= 2 and h.style
                 and h.start > 0.5 * len(book) and matter_of(h.title, h.start / len(book))
                 and heading_key(h.title) not in keys), len(book))
    pairs = align(entries, [h for h in found if h.start < back or any(
        e.kind == "matter" and e.key == heading_key(h.title) for e in entries)])
    matched = [h for e, h in pairs if e.kind == "story"]
    if len(matched) < max(2, 0.5 * len(stories)):
        return None
    marks = []
    for entry, heading in pairs:
        if entry.kind == "matter":
            marks.append((heading, matter_label(heading.start, book, matched)))
        else:
            if not heading.style:
                heading.title = entry.title
            elif heading.first_line or len(heading.title) > len(entry.title) + 10:
                # A subtitle under the title ("A STUDY OF DUTY") is not part of it.
                heading.title = next((clean_title(line) for line in heading_lines(heading, book)
                                      if _matches(entry.key, heading_key(line))), heading.title)
            marks.append((heading, entry.kind))
    notes = []
    extras = unlisted(book, found, matched, back)
    if extras:
        marks += [(h, "story") for h in extras]
        notes.append(f"{len(extras)} stories have a heading like the others but are not in the "
                     f"contents list: {', '.join(repr(h.title) for h in extras[:5])}")
    story_heads = matched + extras
    taken = {h.start for h, _ in marks}
    marks += [(h, "part") for h in _part_marks(book, found, story_heads) if h.start not in taken]
    taken = {h.start for h, _ in marks}
    marks += _matter_marks(book, found_all, taken, story_heads)
    missing = len(stories) - len(matched)
    if missing:
        notes.append(f"{missing} of the {len(stories)} stories the contents list names have no "
                     "heading in the text")
    return Structure(_build(book, marks), f"contents list ({len(stories)} stories named, "
                     f"{len(matched)} found in the text)", notes)


def unlisted(book: str, found: list[Heading], matched: list[Heading], back: int) -> list[Heading]:
    """Headings set exactly like the matched ones (style, blank lines before) between the first
    and last of them that the contents list does not name: a story left out of the list."""
    if len(matched) < 3:
        return []
    counts: dict[str | None, int] = {}
    for heading in matched:
        counts[heading.style] = counts.get(heading.style, 0) + 1
    style, count = max(counts.items(), key=lambda item: item[1])
    if style is None or count < 0.8 * len(matched):
        return []
    styles = {style}
    numbered = sum(h.numbered for h in matched) >= 0.8 * len(matched)
    least = sorted(h.gap for h in matched)[len(matched) // 10]  # a stray gap or two aside
    if least < 2:
        return []
    taken = {h.start for h in matched}
    inside = [h for h in found if matched[0].start < h.start < back and h.start not in taken
              and h.style in styles and h.gap >= least and not matter_of(h.title)
              and (h.numbered or not numbered)
              and not STRUCTURE.search(h.raw.strip())]
    marks = sorted([*matched, *inside], key=lambda h: h.start)
    ends = {h.start: (marks[i + 1].start if i + 1 < len(marks) else back)
            for i, h in enumerate(marks)}
    previous = {marks[i + 1].start: h for i, h in enumerate(marks[:-1])}
    return [h for h in inside if _words(book[h.text_start:ends[h.start]]) >= MIN_STORY_WORDS
            and _words(book[previous[h.start].text_start:h.start]) >= MIN_STORY_WORDS]


def _score(book: str, chosen: list[Heading]) -> float:
    if not chosen:
        return float("-inf")
    bounds = [h.text_start for h in chosen]
    ends = [h.start for h in chosen[1:]] + [len(book)]
    sizes = [_words(book[a:b]) for a, b in zip(bounds, ends)]
    plausible = sum(1 for n in sizes if n >= MIN_STORY_WORDS)
    tiny = sum(1 for n in sizes if n < TINY_WORDS)
    return plausible - 3 * tiny


def irregular(book: str, blocks: list[Block], candidates: list[Heading],
              chosen: list[Heading]) -> list[Heading]:
    """Headings set like the chosen ones but with less space before them (a typesetter's slip
    in older books), each opening a paragraph of prose; taken only where they are a few."""
    style = chosen[0].style
    numbered = chosen[0].numbered
    least = min(h.gap for h in chosen)
    taken = {h.start for h in chosen}
    openings = {b.start: b for b in blocks}
    next_block = {}
    for index, block in enumerate(blocks[:-1]):
        next_block[block.end] = blocks[index + 1]
    extra = []
    for heading in candidates:
        if heading.start in taken or not chosen[0].start < heading.start < chosen[-1].start:
            continue
        if heading.style != style or heading.numbered != numbered or heading.gap >= least:
            continue
        following = next_block.get(heading.text_start)
        if heading.start in openings and following is not None and len(following.lines) >= 2:
            extra.append(heading)
    if len(extra) > 0.1 * len(chosen):
        return []
    marks = sorted([*chosen, *extra], key=lambda h: h.start)
    sizes = {h.start: _words(book[h.text_start:(marks[i + 1].start if i + 1 < len(marks)
                                                 else len(book))]) for i, h in enumerate(marks)}
    return [h for h in extra if sizes[h.start] >= MIN_STORY_WORDS]


def by_headings(book: str, blocks: list[Block]) -> Structure | None:
    """Sections from the heading style (and blank lines before it) that divides the book into
    the most stories of plausible length."""
    found = [h for h in headings(blocks) if h.style and not CHAPTER.match(h.raw.strip())
             and not STRUCTURE.search(h.raw.strip())]
    stories = [h for h in found if not matter_of(h.title, h.start / max(1, len(book)))]
    best: tuple[float, str, list[Heading]] = (float("-inf"), "", [])
    # Blank lines set headings apart: a set with two or more before each is preferred, and one
    # blank line (every paragraph has that) is tried only where no such set divides the book.
    for gaps in ((4, 3, 2), (1,)):
        for style in ("numbered", "caps", "title"):
            for gap in gaps:
                chosen = [h for h in stories if h.gap >= gap
                          and (h.numbered if style == "numbered" else h.style == style)]
                if len(chosen) < 2:
                    continue
                score = _score(book, chosen)
                if score > best[0]:
                    described = {"numbered": "numbered headings", "caps": "ALL-CAPS headings",
                                 "title": "Title Case headings"}[style]
                    best = (score, f"{described} after {gap}+ blank lines", chosen)
        if best[0] >= 2:
            break
    if not best[2]:
        return None
    chosen = sorted(best[2] + irregular(book, blocks, stories, best[2]), key=lambda h: h.start)
    marks = [(h, "story") for h in chosen]
    marks += _matter_marks(book, found, {h.start for h in chosen}, chosen)
    return Structure(_build(book, marks), best[1])


def find_sections(book: str) -> Structure | None:
    """The book's sections in order; a book nothing divides is one story (titled by its one
    heading, if it has one); None for a book with no text."""
    blocks = split_blocks(book)
    found = by_contents(book, blocks) or by_headings(book, blocks)
    if found is not None or not book.strip():
        return found
    lone = next((h for h in headings(blocks) if h.style and h.gap >= 2
                 and _words(book[h.text_start:]) >= 0.9 * _words(book)), None)
    start, text_start, line, title = (lone.start, lone.text_start, lone.line, lone.title) \
        if lone else (0, 0, 1, "")
    return Structure([Section("story", title, start, text_start, len(book), line)],
                     "nothing: no contents list and no headings divide it",
                     ["the whole book is read as one story"])
