"""The story library's records as plain values, and how a row of its tables becomes one:
a Story (title, premise, controls, the writer's memory for it, how it is written), a
Generation (one version: the whole text and how it was made), a Pick (a kept candidate over
another). Pure: storyteller.studio.library reads and writes them in SQLite."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Generation:
    id: str
    story_id: str
    parent_id: str | None
    kind: str  # write | continue | regenerate | edit
    text: str  # the whole story as of this version
    messages: list[dict]
    request: dict
    settings: dict
    model: str
    endpoint: str
    finish_reason: str | None  # stop | length | stopped | error | None (edits, still streaming)
    created_at: str
    stars: int | None
    comment: str
    # What the endpoint reported with it: {"steering": {...}, "logprobs": [[token, logprob,
    # [[alternative, logprob], ...]], ...], "candidates": n, "alternative": {...}}.
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Story:
    id: str
    title: str
    premise: str
    controls: dict
    current_id: str | None
    created_at: str
    updated_at: str
    notes: str = ""
    direction: str = ""
    banned: list = field(default_factory=list)
    mode: str = "premise"


@dataclass(frozen=True)
class Pick:
    """The writer kept `chosen` out of several candidates, over `rejected`."""

    story_id: str
    chosen_id: str
    rejected_id: str
    created_at: str


GENERATION_COLUMNS = ("id, story_id, parent_id, kind, text, messages, request, settings, model, "
                "endpoint, finish_reason, created_at, stars, comment, details")
STORY_COLUMNS = ("id, title, premise, controls, current_id, created_at, updated_at, notes, "
                  "direction, banned, mode")


def generation_from_row(row: Sequence[Any]) -> Generation:
    values = list(row)
    for index in (5, 6, 7, 14):
        values[index] = json.loads(values[index] or "null") or ([] if index == 5 else {})
    return Generation(*values)


def story_from_row(row: Sequence[Any]) -> Story:
    values = list(row)
    values[3] = json.loads(values[3] or "{}")
    values[9] = json.loads(values[9] or "[]")
    return Story(*values)


def clean_phrases(phrases: Sequence[str]) -> list[str]:
    """A banned list as stored: each phrase's spaces collapsed, empty ones and repeats gone
    (first spelling kept, compared case-blind), in the writer's order."""
    seen, kept = set(), []
    for phrase in phrases:
        phrase = " ".join(str(phrase).split())
        if phrase and phrase.casefold() not in seen:
            seen.add(phrase.casefold())
            kept.append(phrase)
    return kept
