"""TinyStories: plain stories between `<|endoftext|>` lines, and the Instruct variant whose
records carry `Features:`, `Words:`, `Summary:` and `Random sentence:` before `Story:`.

Instruct fields become controls and premises: the summary is the premise, features and words
are kept as metadata the pair builder may use."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from storyteller.curate.records import Rejected, RawStory
from storyteller.curate.sources.text import read_separated

_FIELD = re.compile(r"^(Features|Words|Summary|Random sentence|Story):[ \t]*", re.MULTILINE)


def parse_instruct(record: str) -> dict[str, str] | None:
    """The fields of one Instruct record, or None if it is a plain story."""
    matches = list(_FIELD.finditer(record))
    if not matches or record[:matches[0].start()].strip():
        return None
    fields = {}
    for match, following in zip(matches, matches[1:] + [None]):
        end = following.start() if following else len(record)
        fields[match.group(1).lower()] = record[match.end():end].strip()
    return fields


def read_tinystories(path: Path, encoding: str = "auto") -> Iterator[RawStory | Rejected]:
    for item in read_separated(path, "endoftext", encoding=encoding):
        if isinstance(item, Rejected):
            yield item
            continue
        fields = parse_instruct(item.text)
        if fields is None:
            yield item
            continue
        story = fields.get("story", "")
        if not story:
            yield Rejected(item.source, item.line, "missing_text", "Instruct record with no Story:")
            continue
        meta = {"premise": fields["summary"]} if fields.get("summary") else {}
        if fields.get("features"):
            meta["features"] = [f.strip() for f in fields["features"].split(",") if f.strip()]
        if fields.get("words"):
            meta["words"] = [w.strip() for w in fields["words"].split(",") if w.strip()]
        yield RawStory(text=story, source=item.source, line=item.line, position=item.position,
                       meta=meta)
