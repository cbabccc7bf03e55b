"""A book's contents lists: their entries (titles wrapped over two lines joined, page numbers and
numerals dropped), what each entry is (a story, a part, a chapter, front or back matter, from its
name and its indentation), and the longest in-order matching of entries to the book's headings.
Pure functions."""

from __future__ import annotations

import difflib
import re
from bisect import bisect_left
from dataclasses import dataclass, field

from storyteller.curate.sources.headings import (CHAPTER, CONTENTS, OTHER_LIST, PAGE_NUMBER,
                                                 PREFIX, SMALL_WORDS, STRUCTURE, Block, Heading,
                                                 clean_title, heading_key)
from storyteller.curate.sources.matter import matter_of

@dataclass
class Entry:
    title: str
    key: str
    indent: int
    kind: str = "story"  # story, part, chapter, matter
    numbered: bool = False
    children: list["Entry"] = field(default_factory=list)


def _entry_text(line: str) -> str:
    text = PAGE_NUMBER.sub("", line.rstrip())
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
    return {w for w in re.findall(r"[a-z0-9]+", title.lower()) if w not in SMALL_WORDS and len(w) > 1}


def titles_match(entry_key: str, heading_key_: str, entry_words: set[str] = frozenset(),
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
                         if titles_match(entry.key, key, words, heading_words[p])]
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
