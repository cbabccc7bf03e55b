"""Does a document continuation use its context? Direction followed, notes' names kept and no
names invented, per generated passage. Pure: a generation record in, metrics out.

- direction_followed: the share of the direction's names and content words (its template words
  and common words aside) that the passage uses, a word with the same stem counting;
- notes_names_kept: of the notes' names that the reference passage (the story's own next
  passage) uses, the share the generated passage uses too: the names a faithful continuation
  needs, not every name in the notes;
- notes_names_recalled: the same, for only those names the story so far and the summary in the
  prompt do not show, so nothing but the notes remembers them (a character from a chapter that
  fell out of the window). notes_names_kept is mostly copying from the visible text when the
  whole story fits; this one is what the notes are for, and only long stories give it;
- invented_names: the share of the passage's names (capitalised words used as names) that
  appear nowhere in the prompt, i.e. characters made up instead of those the notes and the
  story so far give."""

from __future__ import annotations

from typing import Any

from storyteller.curate.memory import direction_terms, notes_names, proper_names, realised

MEMORY_FIELDS = ("notes", "direction", "summary", "context")


def memory_of(pair: dict[str, Any]) -> dict[str, str] | None:
    """A document pair's context parts (from the request curate recorded), or None for other
    kinds."""
    if pair.get("kind") != "document":
        return None
    request = pair.get("request") or {}
    return {name: request.get(name) or "" for name in MEMORY_FIELDS}


def variant_of(record: dict[str, Any]) -> list[str]:
    """The groups a record is reported under: its kind, and for a document continuation each
    optional part it carries ("document · notes", …)."""
    kind = str(record.get("kind") or "unknown")
    memory = record.get("memory") or {}
    extra = [f"{kind} · {name}" for name in ("notes", "direction", "summary") if memory.get(name)]
    if kind == "document" and not extra:
        extra = ["document · bare"]
    return [kind, *extra]


def context_metrics(record: dict[str, Any]) -> dict[str, float]:
    """The metrics above for one record that has a document's memory; {} otherwise."""
    memory = record.get("memory")
    if not memory:
        return {}
    text, result = record["text"], {}
    terms = direction_terms(memory.get("direction") or "")
    if terms:
        result["direction_followed"] = sum(realised(terms, text)) / len(terms)
    names = notes_names(memory.get("notes") or "")
    needed = [n for n, used in zip(names, realised(names, record.get("reference") or "")) if used]
    if needed:
        result["notes_names_kept"] = sum(realised(needed, text)) / len(needed)
        shown = " ".join(str(memory.get(name) or "") for name in ("context", "summary"))
        only_noted = [n for n, seen in zip(needed, realised(needed, shown)) if not seen]
        if only_noted:
            result["notes_names_recalled"] = sum(realised(only_noted, text)) / len(only_noted)
    found = proper_names(text)
    if found:
        prompt = " ".join(str(memory.get(name) or "") for name in MEMORY_FIELDS)
        known = realised(found, prompt)
        result["invented_names"] = sum(1 for k in known if not k) / len(found)
    return result
