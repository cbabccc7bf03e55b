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
