"""A story being written: its versions, branches, continuation and undo, as pure functions.

Every version of a story is stored whole (the library's generations): a first draft, a
regeneration of it, a continuation that grew it, an edit by hand. Versions form a tree through
`parent_id`: a continuation or an edit is the child of what it changed; a regeneration is a
sibling of what it replaces, so the versions sharing a parent are the branches a writer switches
between. Undo steps back through the versions the writer has had in front of them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from storyteller.prompts import StoryRequest, tail_words

if TYPE_CHECKING:
    from storyteller.studio.library import Generation

# Words of the story so far that a continuation request quotes: what training's continuation
# windows quoted (curate's PairOptions.context_words).
CONTEXT_WORDS = 120

# Kinds of version a model wrote (an edit is the writer's own).
GENERATED = ("write", "regenerate", "continue")


# What a word processor counts: hyphenated words and contractions are one word; a spaced dash
# or other punctuation is none.
_WORD = re.compile(r"\w[\w'’-]*")


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def request_to_json(request: StoryRequest) -> dict[str, Any]:
    data = asdict(request)
    data["controls"] = dict(request.controls)
    return {key: value for key, value in data.items() if value is not None}


def request_from_json(data: Mapping[str, Any]) -> StoryRequest:
    known = {f.name for f in fields(StoryRequest)}
    values = {key: value for key, value in data.items() if key in known}
    values["controls"] = dict(values.get("controls") or {})
    return StoryRequest(**values)


def by_id(versions: Sequence[Generation]) -> dict[str, Generation]:
    return {version.id: version for version in versions}


def lineage(versions: Sequence[Generation], current_id: str | None) -> list[Generation]:
    """The versions from the first draft to `current_id`, oldest first."""
    index, chain = by_id(versions), []
    while current_id and current_id in index and len(chain) <= len(index):
        chain.append(index[current_id])
        current_id = index[current_id].parent_id
    return chain[::-1]


def branches(versions: Sequence[Generation], current_id: str | None) -> list[Generation]:
    """The alternatives to the current version: every version with the same parent, oldest
    first (the current one among them)."""
    index = by_id(versions)
    if current_id not in index:
        return []
    parent = index[current_id].parent_id
    return [version for version in versions if version.parent_id == parent]


def regenerate_parent(versions: Sequence[Generation], current_id: str) -> str | None:
    """Where a regeneration of the current version hangs: beside it, under the same parent."""
    return by_id(versions)[current_id].parent_id


def generating_request(versions: Sequence[Generation], current_id: str) -> Generation | None:
    """The nearest version (the current one or an ancestor) that a model wrote: a regeneration
    asks its question again; edits in between are the writer's and are not re-asked."""
    for version in reversed(lineage(versions, current_id)):
        if version.kind in GENERATED and version.messages:
            return version
    return None


def continuation_request(request: StoryRequest, text: str, versions: Sequence[Generation],
                         current_id: str | None, final: bool = False) -> StoryRequest:
    """The request for the next part of `text`: training's continuation phrasing, quoting the
    end of the story so far. `final` asks for the last part (the model may end the story)."""
    done = sum(1 for v in lineage(versions, current_id) if v.kind == "continue")
    part = done + 2
    premise = request.premise or (f'a story titled "{request.title}"' if request.title else
                                  "the story so far")
    return StoryRequest(kind="continuation", controls=dict(request.controls), premise=premise,
                        title=request.title, context=tail_words(text.strip(), CONTEXT_WORDS),
                        part=part, parts=part if final else part + 1)


def join_continuation(text: str, piece: str) -> str:
    """The story with its new part: a paragraph break between them unless one is there."""
    head, tail = text.rstrip(), piece.lstrip("\n")
    if not head:
        return tail
    if not tail:
        return head
    return f"{head}\n\n{tail.lstrip()}"


def continued(text: str, piece: str) -> tuple[str, int]:
    """(the story with its new part, joined as join_continuation joins them; the offset where
    that part starts in it): the part is what a version records as its answer, and what a
    branch from one of its words replaces. With no story before it, the part is the story,
    as the model wrote it."""
    head, tail = text.rstrip(), piece.lstrip("\n")
    if not head:
        return piece, 0
    return join_continuation(text, piece), len(head) + 2 if tail else len(head)


@dataclass(frozen=True)
class History:
    """The versions the writer had in front of them before each change, newest last."""

    past: tuple[str, ...] = ()

    def moved(self, previous: str | None, now: str | None) -> History:
        if previous is None or previous == now:
            return self
        return History((*self.past, previous)[-100:])

    def undo(self, versions: Sequence[Generation],
             current_id: str | None) -> tuple[str | None, History]:
        """(the version to go back to, the history after it). Without history (a story just
        reopened from the library) undo goes to the current version's parent."""
        known = by_id(versions)
        past = [v for v in self.past if v in known and v != current_id]
        if past:
            return past[-1], History(tuple(past[:-1]))
        parent = known[current_id].parent_id if current_id in known else None
        return parent, History()


# ------------------------------------------------------------------------------ document mode

# What a writer types where the model should go on writing (case-blind); without one, the
# model continues at the end. A bracketed phrase, so it is never mistaken for story text.
MARKER = "[continue here]"
_MARKER = re.compile(re.escape(MARKER), re.IGNORECASE)


@dataclass(frozen=True)
class Split:
    before: str  # the story the model continues
    after: str  # what stays after the new text (empty: continuing at the end)
    marked: bool


def split_at_marker(text: str) -> Split:
    """Where the model writes: at the writer's marker, else at the end. ValueError when the
    text holds more than one marker (the writer must say which)."""
    found = list(_MARKER.finditer(text))
    if len(found) > 1:
        raise ValueError(f"the story holds {len(found)} {MARKER} marks; keep one")
    if not found:
        return Split(text, "", False)
    mark = found[0]
    return Split(text[:mark.start()], text[mark.end():], True)


def insert_continuation(split: Split, piece: str) -> tuple[str, int]:
    """(the story with `piece` written where the model was asked to write, the offset where
    `piece` starts in it). At the end, a new paragraph unless the story ends mid-paragraph
    with no final newline (then a space: the model goes on with the sentence's paragraph)."""
    before = split.before.rstrip(" \t")
    if not before.strip():
        head = ""
    elif before.endswith("\n") or piece.startswith("\n"):
        head = before
    else:
        head = before if piece[:1].isspace() else before + " "
    piece = piece if head else piece.lstrip()
    tail = split.after
    if tail and not tail[:1].isspace() and piece and not piece[-1:].isspace():
        tail = " " + tail
    return head + piece + tail, len(head)


# ------------------------------------------------------------------------------ who wrote what

WRITER, AI = "writer", "ai"


@dataclass(frozen=True)
class Span:
    by: str  # WRITER or AI
    text: str


def author_of(version: Generation) -> str:
    return AI if version.kind in GENERATED else WRITER


def _cut(runs: list[tuple[str, int]], start: int, end: int) -> list[tuple[str, int]]:
    """The (author, length) runs covering characters start..end of the text `runs` describe."""
    out, position = [], 0
    for by, length in runs:
        low, high = max(start, position), min(end, position + length)
        if low < high:
            out.append((by, high - low))
        position += length
        if position >= end:
            break
    return out


_PIECE = re.compile(r"\s+|\w+|[^\w\s]")


def _changed(old: str, new: str) -> list[tuple[str, int, int, int, int]]:
    """Character opcodes (as difflib's) from `old` to `new`, aligned on whole words, spaces
    and punctuation marks, so a changed word is changed whole. A shared start and end are
    matched first, so a change in a long story costs what the changed part costs."""
    import difflib

    prefix = 0
    limit = min(len(old), len(new))
    while prefix < limit and old[prefix] == new[prefix]:
        prefix += 1
    # Back to a word's start, so the word the change falls in is compared whole.
    while prefix and (old[prefix - 1:prefix].isalnum() or new[prefix - 1:prefix].isalnum()):
        prefix -= 1
    suffix = 0
    while suffix < limit - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    while suffix and (old[len(old) - suffix:][:1].isalnum() or
                      new[len(new) - suffix:][:1].isalnum()):
        suffix -= 1
    ops = [("equal", 0, prefix, 0, prefix)] if prefix else []
    a, b = old[prefix:len(old) - suffix], new[prefix:len(new) - suffix]
    pieces_a, pieces_b = _PIECE.findall(a), _PIECE.findall(b)
    if a and b and len(pieces_a) * len(pieces_b) <= 25_000_000:
        at_a = [0]
        for piece in pieces_a:
            at_a.append(at_a[-1] + len(piece))
        at_b = [0]
        for piece in pieces_b:
            at_b.append(at_b[-1] + len(piece))
        matcher = difflib.SequenceMatcher(None, pieces_a, pieces_b, autojunk=False)
        ops += [(tag, at_a[i1] + prefix, at_a[i2] + prefix, at_b[j1] + prefix, at_b[j2] + prefix)
                for tag, i1, i2, j1, j2 in matcher.get_opcodes()]
    elif a or b:  # all new, all gone, or too large a rewrite to align
        ops.append(("replace", prefix, len(old) - suffix, prefix, len(new) - suffix))
    if suffix:
        ops.append(("equal", len(old) - suffix, len(old), len(new) - suffix, len(new)))
    return ops


def authorship(versions: Sequence[Generation], current_id: str | None) -> list[Span]:
    """The current version's text as spans written by the writer or by the model, from the
    version lineage: a model's version made every character it added, an edit or a pasted
    draft the writer's; what a version kept from its parent keeps the parent's author."""
    runs: list[tuple[str, int]] = []
    previous = ""
    for version in lineage(versions, current_id):
        by = author_of(version)
        made: list[tuple[str, int]] = []
        for tag, i1, i2, j1, j2 in _changed(previous, version.text):
            if tag == "equal":
                made += _cut(runs, i1, i2)
            elif j2 > j1:
                made.append((by, j2 - j1))
        runs, previous = made, version.text
    spans: list[Span] = []
    position = 0
    for by, length in runs:
        piece = previous[position:position + length]
        position += length
        if spans and spans[-1].by == by:
            spans[-1] = Span(by, spans[-1].text + piece)
        elif piece:
            spans.append(Span(by, piece))
    return spans


# ------------------------------------------------------------------------------ word alternatives

@dataclass(frozen=True)
class Word:
    """A word of the model's text: its tokens' text, where it starts in that text, and the
    words the model weighed in its place (the first token's alternatives: text, probability,
    most likely first)."""

    index: int
    text: str
    start: int
    alternatives: tuple[tuple[str, float], ...]


def words_of(tokens: Sequence[Sequence[Any]]) -> list[Word]:
    """The model's text as words, from its tokens `[(token, logprob, [(alternative,
    logprob), ...]), ...]`: a token that starts with a space or follows a line break starts a
    word; one that goes on a word (", ed" …) joins it."""
    import math

    words: list[Word] = []
    position = 0
    for token, _, alternatives in tokens:
        starts = not words or token[:1].isspace() or words[-1].text.endswith("\n") \
            or not any(ch.isalnum() for ch in words[-1].text)
        if starts:
            options = tuple((str(alt), math.exp(float(lp))) for alt, lp in alternatives)
            words.append(Word(len(words), token, position, options))
        else:
            last = words[-1]
            words[-1] = Word(last.index, last.text + token, last.start, last.alternatives)
        position += len(token)
    return words


def branch_prefix(tokens: Sequence[Sequence[Any]], word: Word, alternative: str) -> str:
    """The model's text up to `word`, with `alternative` in its first token's place: what a
    new branch starts from and the model continues."""
    text = "".join(str(token[0]) for token in tokens)
    return text[:word.start] + alternative
