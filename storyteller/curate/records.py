"""The records that flow through curation: a story as read, and a record that was rejected."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Metadata keys a reader may fill; the rest of the pipeline reads only these.
META_KEYS = ("id", "title", "premise", "genre", "style", "tone", "pov", "audience", "moral",
             "features", "words", "tags")


@dataclass
class RawStory:
    """One story as a reader found it. `line` is 1-based where the format has lines, else None;
    `position` locates it otherwise (row index, tale number)."""

    text: str
    source: str
    line: int | None = None
    position: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    input: int = -1  # which of the run's inputs it came from (set by the run)
    # What the reader took out of the text and how often (footnotes, illustrations), for the
    # report.
    removed: dict[str, int] = field(default_factory=dict)

    @property
    def where(self) -> str:
        if self.line is not None:
            return f"{self.source}:{self.line}"
        if self.position is not None:
            return f"{self.source}#{self.position}"
        return self.source


@dataclass
class Rejected:
    """A record that will not become training data, and why (the rejects.jsonl contract)."""

    source: str
    line: int | None
    reason: str
    detail: str = ""
    position: int | None = None

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"source": self.source, "line": self.line, "reason": self.reason,
                               "detail": self.detail}
        if self.position is not None:
            row["position"] = self.position
        return row
