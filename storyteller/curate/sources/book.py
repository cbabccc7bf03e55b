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

from dataclasses import dataclass, field

from storyteller.curate.sources.contents import align, contents_tree, list_regions, titles_match
from storyteller.curate.sources.headings import (CHAPTER, MIN_STORY_WORDS, STRUCTURE, TINY_WORDS,
                                                 Block, Heading, clean_title, heading_key,
                                                 heading_lines, headings, split_blocks, word_count)
from storyteller.curate.sources.matter import matter_of

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


def _part_marks(book: str, found: list[Heading], stories: list[Heading]) -> list[Heading]:
    """PART / VOLUME headings in the text that open a part: little but a contents list
    between them and the next story (one inside a long story is a division of that story)."""
    marks = []
    starts = sorted(h.start for h in stories)
    for heading in found:
        if not STRUCTURE.search(heading.raw.strip()) or heading.gap < 2:
            continue
        following = next((s for s in starts if s > heading.start), len(book))
        if word_count(book[heading.text_start:following]) < 60:
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
                                      if titles_match(entry.key, heading_key(line))), heading.title)
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
    return [h for h in inside if word_count(book[h.text_start:ends[h.start]]) >= MIN_STORY_WORDS
            and word_count(book[previous[h.start].text_start:h.start]) >= MIN_STORY_WORDS]


def _score(book: str, chosen: list[Heading]) -> float:
    if not chosen:
        return float("-inf")
    bounds = [h.text_start for h in chosen]
    ends = [h.start for h in chosen[1:]] + [len(book)]
    sizes = [word_count(book[a:b]) for a, b in zip(bounds, ends)]
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
    sizes = {h.start: word_count(book[h.text_start:(marks[i + 1].start if i + 1 < len(marks)
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
                 and word_count(book[h.text_start:]) >= 0.9 * word_count(book)), None)
    start, text_start, line, title = (lone.start, lone.text_start, lone.line, lone.title) \
        if lone else (0, 0, 1, "")
    return Structure([Section("story", title, start, text_start, len(book), line)],
                     "nothing: no contents list and no headings divide it",
                     ["the whole book is read as one story"])
