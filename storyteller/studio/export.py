"""Stories out of the library: as Markdown or plain text for people, and the rated versions as
JSONL datasets for training. Pure: library rows in, text or records out.

The datasets are what `storyteller curate` reads: each record has the story under `text` and
its controls under their own names (genre, style, tone …), so curate tags and pairs them like
any other record file. A preference record also carries `prompt`, `chosen` and `rejected`, the
usual shape for preference tuning; its `text` is the chosen story, so curate reads a preference
file as fine-tuning data on the stories the writer preferred.

A record's answer to its prompt (the last message of an SFT record; `chosen` and `rejected`) is
what the model was asked for: the whole story for a story request, only the new part for a
continuation, whose prompt quotes the story so far. `text` is always the whole story.

Curate takes the first of a field's aliases that a record has, so no field is named after an
alias of another (a `kind` field would read as the genre: the version's kind is `version_kind`),
and a preference record always has `premise`, so its `prompt` is never read as one.

Who wrote what (`draft.authorship`) survives export in HTML (the model's passages inside
`<span class="ai">`, coloured, with a legend) and JSON (`"spans": [{"by": "ai"|"writer",
"text": …}]`, whose texts joined are the story); Markdown and plain text carry the words only.

When the writer keeps one of several candidates, preference export writes the kept one as
chosen over each other one (`judgement: "studio pick"`), beside the pairs that stars give
(`"studio stars"`) and the writer's edits of what a model wrote (`"writer edit"`). KTO export
writes unpaired judgements from stars (`completion` with a true/false `label`). Every
preference record is a shape `storyteller curate --preferences` reads."""

from __future__ import annotations

import json
import re
import unicodedata
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


# A line of prose starting with one of these would open a Markdown block (heading, quote, list,
# rule, setext underline, code fence, table, link definition) ...
_BLOCK_MARK = "#>*+-=_`~|["
# ... and so would a number followed by "." or ")" (an ordered list: "1984. That winter ...").
_NUMBERED = re.compile(r"(\d{1,9})([.)])(?=\s|$)")


def _no_html(text: str) -> str:
    """Model text stays text in a Markdown viewer too: no tag it wrote is rendered."""
    return text.replace("&", "&amp;").replace("<", "&lt;")


def _prose_line(line: str) -> str:
    """`line` escaped so that it renders as the words it is, not as a block of Markdown.
    Leading spaces go (four of them would start a code block); inline markup is left as
    written, since emphasis and the like are part of how a story reads."""
    line = _no_html(line.strip())
    numbered = _NUMBERED.match(line)
    if numbered:
        return f"{numbered.group(1)}\\{line[numbered.end(1):]}"
    return "\\" + line if line[:1] in _BLOCK_MARK else line


def story_markdown(story: Story, text: str) -> str:
    """`# Title`, an italic line of controls and premise, then the story's paragraphs."""
    lines = [f"# {_no_html(' '.join((story.title or UNTITLED).split()))}", ""]
    about = [part for part in (_controls_line(story),
                               f"Premise: {' '.join(story.premise.split())}" if story.premise
                               else "") if part]
    if about:
        lines += [f"*{_no_html(' — '.join(about))}*", ""]
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    # Single line breaks inside a paragraph are kept as Markdown hard breaks.
    lines += ["\n\n".join("  \n".join(map(_prose_line, p.split("\n"))) for p in paragraphs), ""]
    return "\n".join(lines)


def story_text(story: Story, text: str) -> str:
    title = " ".join((story.title or UNTITLED).split())
    return f"{title}\n{'=' * len(title)}\n\n{text.strip()}\n"


def file_stem(title: str) -> str:
    """A file name from a title: lower case, ASCII letters, digits and dashes ("Café" → cafe)."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")[:60].strip("-")
    return stem or "untitled-story"


def _fields(story: Story, generation: Generation) -> dict[str, Any]:
    request = generation.request or {}
    controls = {**story.controls, **(request.get("controls") or {})}
    # A continuation request's premise may be a stand-in ("the story so far"): only a story
    # request's premise is the writer's.
    asked_premise = request.get("premise") if request.get("kind", "premise") == "premise" else None
    record: dict[str, Any] = {"title": request.get("title") or story.title or None,
                              "premise": asked_premise or story.premise or None}
    record.update({name: controls[name] for name in HEADER_FIELDS if controls.get(name)})
    return {k: v for k, v in record.items() if v}


def _asked(generation: Generation, by_id: dict[str, Generation]) -> Generation | None:
    """The version whose request this one answers: itself when a model wrote it; for an edit,
    the version it edited (up through edits of edits). None without one at hand."""
    seen = set()
    while generation.kind == "edit":
        if generation.parent_id not in by_id or generation.id in seen:
            return None
        seen.add(generation.id)
        generation = by_id[generation.parent_id]
    return generation if generation.messages else None


def _answer(generation: Generation, asked: Generation,
            by_id: dict[str, Generation]) -> str | None:
    """What `generation` holds as the answer to `asked`'s prompt: the whole story for a story
    request; for a continuation, the text after the story it grew from (the prompt quoted
    that story, and a model taught to repeat it would). None where that part cannot be told:
    the version it grew from is not at hand, or an edit changed the text before the new part."""
    if generation is asked and (asked.details or {}).get("answer"):
        # The version says itself which text answered its prompt (document mode, candidates).
        return str(asked.details["answer"]).strip() or None
    text = generation.text.strip()
    if asked.kind != "continue" and (asked.request or {}).get("kind") != "continuation":
        return text or None
    grown_from = by_id.get(asked.parent_id or "")
    if grown_from is None or not text.startswith(grown_from.text.strip()):
        return None
    return text[len(grown_from.text.strip()):].strip() or None


def _prompted(rated: Sequence[tuple[Story, Generation]], versions: Sequence[Generation]
              ) -> list[tuple[Story, Generation, list[dict], str]]:
    """(story, version, prompt messages, answer) for each rated version that has both."""
    by_id = {g.id: g for g in versions} | {g.id: g for _, g in rated}
    found = []
    for story, generation in rated:
        asked = _asked(generation, by_id)
        answer = _answer(generation, asked, by_id) if asked else None
        if asked and answer:
            prompt = [m for m in asked.messages if m.get("role") != "assistant"]
            found.append((story, generation, prompt, answer))
    return found


def sft_records(rated: Sequence[tuple[Story, Generation]], min_stars: int = 4,
                versions: Sequence[Generation] = ()) -> list[dict]:
    """One record per version rated `min_stars` or more that has a prompt: its own, or for an
    edit the prompt of the version it edited, when that is among `versions` or `rated`.
    `versions` (every version of the rated stories) also lets a continuation's new part be
    told from the story it grew from; without it a continuation is left out."""
    records = []
    for story, generation, prompt, answer in _prompted(rated, versions):
        if (generation.stars or 0) < min_stars:
            continue
        records.append({"id": generation.id, "text": generation.text, **_fields(story, generation),
                        "messages": [*prompt, {"role": "assistant", "content": answer}],
                        "rating": generation.stars, "comment": generation.comment,
                        "model": generation.model, "settings": generation.settings,
                        "version_kind": generation.kind, "source": SOURCE})
    return records


def preference_records(rated: Sequence[tuple[Story, Generation]],
                       versions: Sequence[Generation] = ()) -> list[dict]:
    """Every two rated versions of one story that answer the same prompt (regenerations, and
    edits of them) whose stars differ: the better one chosen, the other rejected. Equal stars
    say nothing about which is better and give no pair."""
    groups: dict[tuple[str, str], list[tuple[Story, Generation, str]]] = defaultdict(list)
    for story, generation, prompt, answer in _prompted(rated, versions):
        if generation.stars:
            groups[(story.id, json.dumps(prompt, sort_keys=True))].append(
                (story, generation, answer))
    records = []
    for (_, prompt_json), members in groups.items():
        for one, other in combinations(members, 2):
            if one[1].stars == other[1].stars:
                continue
            (story, chosen, chosen_answer), (_, rejected, rejected_answer) = \
                (one, other) if one[1].stars > other[1].stars else (other, one)
            fields = _fields(story, chosen)
            records.append({"id": f"{chosen.id}>{rejected.id}", "prompt": json.loads(prompt_json),
                            "chosen": chosen_answer, "rejected": rejected_answer,
                            "chosen_rating": chosen.stars, "rejected_rating": rejected.stars,
                            "judgement": "studio stars", "text": chosen.text, **fields,
                            # Always present, so curate never takes `prompt` for the premise.
                            "premise": fields.get("premise"),
                            "model": chosen.model, "source": SOURCE})
    return records


def pick_records(picks: Sequence[Any], stories: dict[str, Story],
                 versions: Sequence[Generation]) -> list[dict]:
    """The writer's picks among candidates as preference records: the kept candidate chosen
    over each other one, both answering the same prompt."""
    by_id = {g.id: g for g in versions}
    records = []
    for pick in picks:
        chosen, rejected = by_id.get(pick.chosen_id), by_id.get(pick.rejected_id)
        story = stories.get(pick.story_id)
        if chosen is None or rejected is None or story is None or not chosen.messages:
            continue
        chosen_answer, rejected_answer = _answer(chosen, chosen, by_id), \
            _answer(rejected, rejected, by_id)
        if not chosen_answer or not rejected_answer:
            continue
        fields = _fields(story, chosen)
        records.append({"id": f"{chosen.id}>{rejected.id}",
                        "prompt": [m for m in chosen.messages if m.get("role") != "assistant"],
                        "chosen": chosen_answer, "rejected": rejected_answer,
                        "judgement": "studio pick", "text": chosen.text, **fields,
                        "premise": fields.get("premise"), "model": chosen.model,
                        "source": SOURCE})
    return records


def _same(one: str, other: str) -> bool:
    return " ".join(one.split()) == " ".join(other.split())


def edit_records(stories: dict[str, Story], versions: Sequence[Generation]) -> list[dict]:
    """The writer's edits as preference records: an edit's answer chosen over the answer of
    the model's version it edited (through edits of edits), `judgement: "writer edit"`. Only
    the last edit of a chain counts (the writer's final word; the studio saves every change
    as a version), and only where it changed the answer part: an edit of the story before a
    continuation's new part tells nothing about that part."""
    by_id = {g.id: g for g in versions}
    edited = {g.parent_id for g in versions if g.kind == "edit"}
    records = []
    for generation in versions:
        story = stories.get(generation.story_id)
        if generation.kind != "edit" or generation.id in edited or story is None:
            continue
        asked = _asked(generation, by_id)
        if asked is None:
            continue
        chosen, rejected = _answer(generation, asked, by_id), _answer(asked, asked, by_id)
        if not chosen or not rejected or _same(chosen, rejected):
            continue
        fields = _fields(story, asked)
        records.append({"id": f"{generation.id}>{asked.id}",
                        "prompt": [m for m in asked.messages if m.get("role") != "assistant"],
                        "chosen": chosen, "rejected": rejected, "judgement": "writer edit",
                        "text": generation.text, **fields, "premise": fields.get("premise"),
                        "model": asked.model, "source": SOURCE})
    return records


KTO_GOOD, KTO_BAD = 4, 2  # stars at or above: a good answer; at or below: a bad one


def kto_records(rated: Sequence[tuple[Story, Generation]],
                versions: Sequence[Generation] = ()) -> list[dict]:
    """Unpaired judgements from stars: a version rated 4★ or more is a good answer to its
    prompt (`label: true`), 2★ or fewer a bad one; 3★ says neither. No `text` field: a bad
    story must never be read as a story to learn from by the fine-tuning curate."""
    records = []
    for story, generation, prompt, answer in _prompted(rated, versions):
        stars = generation.stars or 0
        if KTO_BAD < stars < KTO_GOOD or not stars:
            continue
        fields = _fields(story, generation)
        records.append({"id": generation.id, "prompt": prompt, "completion": answer,
                        "label": stars >= KTO_GOOD, "judgement": "studio stars",
                        "rating": stars, **fields, "premise": fields.get("premise"),
                        "model": generation.model, "source": SOURCE})
    return records


def unique_records(*groups: Sequence[dict]) -> list[dict]:
    """The records of every group in order, each id once: a pair that stars and an edit (or
    a pick) both give is written once, as the first group has it."""
    seen: set[str] = set()
    records = []
    for group in groups:
        for record in group:
            if record["id"] not in seen:
                seen.add(record["id"])
                records.append(record)
    return records


def story_html(story: Story, spans: Sequence[Any]) -> str:
    """A standalone HTML page of the story, the model's passages marked `<span class="ai">`
    (tinted, with a legend), the writer's plain; every character of the text escaped."""
    import html

    title = html.escape(" ".join((story.title or UNTITLED).split()))
    body = "".join(
        f'<span class="ai">{html.escape(span.text)}</span>' if span.by == "ai"
        else html.escape(span.text) for span in spans)
    about = html.escape(" — ".join(part for part in (
        _controls_line(story), f"Premise: {' '.join(story.premise.split())}"
        if story.premise else "") if part))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><style>body{{max-width:42em;margin:2em auto;"
            "font:1.1em/1.6 Georgia,serif}} .story{{white-space:pre-wrap}} "
            ".ai{{background:#e3f0ff}} .legend{{color:#555;font-size:.85em}}</style></head>"
            f"<body><h1>{title}</h1>" + (f"<p><em>{about}</em></p>" if about else "") +
            '<p class="legend"><span class="ai">Tinted</span>: written by the model; the '
            "rest by the writer.</p>"
            f'<div class="story">{body}</div></body></html>\n')


def story_json(story: Story, spans: Sequence[Any], version: Generation | None = None) -> str:
    """The story as JSON: title, premise, controls, notes, direction, and `spans` (who wrote
    each passage, in order; their texts joined are the story)."""
    data = {"title": story.title, "premise": story.premise, "controls": story.controls,
            "notes": getattr(story, "notes", ""), "direction": getattr(story, "direction", ""),
            "version": version.id if version is not None else None,
            "text": "".join(span.text for span in spans),
            "spans": [{"by": span.by, "text": span.text} for span in spans],
            "source": SOURCE}
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def jsonl_bytes(records: Sequence[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


DATASET_KINDS = ("sft", "preference", "kto")


def library_records(lib: Any, kind: str, min_stars: int = 4) -> list[dict]:
    """The dataset of `kind` from an open StoryLibrary: what `storyteller library export`
    writes and `storyteller improve --library` trains on."""
    rated = lib.rated()
    # Every version of the rated stories: an edit takes the prompt of what it edited,
    # a continuation's new part is told from the story it grew from.
    picks = lib.picks() if kind == "preference" else []
    # A writer's edit pairs with what it edited, rated or not: every story counts.
    edited = [s.id for s in lib.search(limit=1_000_000)] if kind == "preference" else []
    story_ids = {s.id for s, _ in rated} | {p.story_id for p in picks} | set(edited)
    versions = [v for story_id in sorted(story_ids) for v in lib.generations(story_id)]
    stories = {story_id: lib.story(story_id) for story_id in story_ids}
    if kind == "sft":
        return sft_records(rated, min_stars, versions)
    if kind == "kto":
        return kto_records(rated, versions)
    return unique_records(preference_records(rated, versions),
                          pick_records(picks, stories, versions),
                          edit_records(stories, versions))
