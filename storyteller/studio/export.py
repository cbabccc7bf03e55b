"""Stories out of the library: as Markdown or plain text for people, and the rated versions as
JSONL datasets for training. Pure: library rows in, text or records out.

The datasets are what `storyteller curate` reads: each record has the story under `text` and
its controls under their own names (genre, style, tone …), so curate tags and pairs them like
any other record file. A preference record also carries `prompt`, `chosen` and `rejected`, the
usual shape for preference tuning; its `text` is the chosen story, so curate reads a preference
file as fine-tuning data on the stories the writer preferred."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations
from typing import TYPE_CHECKING, Any

from storyteller.prompts import HEADER_FIELDS

if TYPE_CHECKING:
    from storyteller.studio.library import Generation, Story

SOURCE = "storyteller-studio"
UNTITLED = "Untitled story"


def _controls_line(story: Story) -> str:
    return " · ".join(f"{name}: {story.controls[name]}" for name in HEADER_FIELDS
                      if story.controls.get(name))


def story_markdown(story: Story, text: str) -> str:
    """`# Title`, an italic line of controls and premise, then the story's paragraphs."""
    lines = [f"# {' '.join((story.title or UNTITLED).split())}", ""]
    about = [part for part in (_controls_line(story),
                               f"Premise: {' '.join(story.premise.split())}" if story.premise
                               else "") if part]
    if about:
        lines += [f"*{' — '.join(about)}*", ""]
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    # Single line breaks inside a paragraph are kept as Markdown hard breaks.
    lines += ["\n\n".join(p.replace("\n", "  \n") for p in paragraphs), ""]
    return "\n".join(lines)


def story_text(story: Story, text: str) -> str:
    title = " ".join((story.title or UNTITLED).split())
    return f"{title}\n{'=' * len(title)}\n\n{text.strip()}\n"


def file_stem(title: str) -> str:
    """A file name from a title: lower case, ASCII letters, digits and dashes."""
    stem = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60].strip("-")
    return stem or "untitled-story"


def _fields(story: Story, generation: Generation) -> dict[str, Any]:
    request = generation.request or {}
    controls = {**story.controls, **(request.get("controls") or {})}
    record: dict[str, Any] = {"title": request.get("title") or story.title or None,
                              "premise": request.get("premise") or story.premise or None}
    record.update({name: controls[name] for name in HEADER_FIELDS if controls.get(name)})
    return {k: v for k, v in record.items() if v}


def _prompt_of(generation: Generation, by_id: dict[str, Generation]) -> list[dict]:
    """The messages that asked for this version; an edit inherits its parent's."""
    seen = set()
    while generation.kind == "edit" and generation.parent_id in by_id \
            and generation.id not in seen:
        seen.add(generation.id)
        generation = by_id[generation.parent_id]
    return [m for m in generation.messages if m.get("role") != "assistant"]


def sft_records(rated: Sequence[tuple[Story, Generation]], min_stars: int = 4,
                versions: Sequence[Generation] = ()) -> list[dict]:
    """One record per version rated `min_stars` or more that has a prompt (its own, or for an
    edit, the prompt of the version it edited when that is among `versions` or `rated`)."""
    by_id = {g.id: g for g in versions} | {g.id: g for _, g in rated}
    records = []
    for story, generation in rated:
        if (generation.stars or 0) < min_stars or not generation.text.strip():
            continue
        prompt = _prompt_of(generation, by_id)
        if not prompt:
            continue
        records.append({"id": generation.id, "text": generation.text, **_fields(story, generation),
                        "messages": [*prompt, {"role": "assistant", "content": generation.text}],
                        "rating": generation.stars, "comment": generation.comment,
                        "model": generation.model, "settings": generation.settings,
                        "kind": generation.kind, "source": SOURCE})
    return records


def preference_records(rated: Sequence[tuple[Story, Generation]],
                       versions: Sequence[Generation] = ()) -> list[dict]:
    """Every two rated versions of one story asked with the same prompt (regenerations) whose
    stars differ: the better one chosen, the other rejected."""
    by_id = {g.id: g for g in versions} | {g.id: g for _, g in rated}
    groups: dict[tuple[str, str], list[tuple[Story, Generation]]] = defaultdict(list)
    for story, generation in rated:
        prompt = _prompt_of(generation, by_id)
        if prompt and generation.stars and generation.text.strip():
            groups[(story.id, json.dumps(prompt, sort_keys=True))].append((story, generation))
    records = []
    for (_, prompt_json), members in groups.items():
        for (story, one), (_, other) in combinations(members, 2):
            if one.stars == other.stars:
                continue
            chosen, rejected = (one, other) if one.stars > other.stars else (other, one)
            records.append({"id": f"{chosen.id}>{rejected.id}", "prompt": json.loads(prompt_json),
                            "chosen": chosen.text, "rejected": rejected.text,
                            "chosen_rating": chosen.stars, "rejected_rating": rejected.stars,
                            "text": chosen.text, **_fields(story, chosen),
                            # Always present, so curate never takes `prompt` for the premise.
                            "premise": _fields(story, chosen).get("premise"),
                            "model": chosen.model, "source": SOURCE})
    return records


def jsonl_bytes(records: Sequence[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
