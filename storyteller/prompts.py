"""THE control schema and prompt renderer.

Curate, finetune, evaluate, serve and the app all build prompts here and nowhere else, so what a
model is trained on is exactly what it is later asked. Controls travel as a plain-text header such
as `[ Genre: fable; Style: moral; Tone: warm ]` at the top of the user message: never special
tokens, so an adapter can be served as an adapter and every engine sees ordinary text. A house
style (`storyteller.styles`) adds its rule on the next line, `Style rule: …`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

from storyteller.styles import STYLE_RULES

SYSTEM_PROMPT = (
    "You are a storyteller. Write original stories that follow the requested genre, style, "
    "tone, length and point of view."
)

# The order the header uses when none is given; also the schema's list of known controls.
HEADER_FIELDS: tuple[str, ...] = ("genre", "style", "tone", "audience", "pov", "length")

CONTROL_SCHEMA: dict[str, dict[str, object]] = {
    "genre": {"label": "Genre", "examples": ["fable", "fairy tale", "mystery", "science fiction",
                                             "ghost story", "adventure", "romance", "slice of life"]},
    "style": {"label": "Style", "examples": ["moral", "refrain", "noir", "log", "plain",
                                             "lyrical", "humorous"]},
    "tone": {"label": "Tone", "examples": ["warm", "wry", "eerie", "bittersweet", "tense"]},
    "audience": {"label": "Audience", "examples": ["children", "young adult", "adult", "all ages"]},
    "pov": {"label": "POV", "examples": ["first", "second", "third"]},
    "length": {"label": "Length", "examples": ["flash", "short", "medium", "long"]},
}

# Word-count bounds of each length control value (lower bound inclusive).
LENGTH_BUCKETS: tuple[tuple[str, int], ...] = (("flash", 0), ("short", 250), ("medium", 600),
                                                ("long", 1200))

Kind = Literal["premise", "title", "opening", "continuation", "document", "summary"]

# Index 0 of each list is the canonical phrasing; the others are augmentation variants.
PHRASINGS: dict[str, tuple[str, ...]] = {
    "premise": (
        "Write a story from this premise: {premise}",
        "Tell me a story. Premise: {premise}",
        "Here is a premise for a short story: {premise}\nWrite the story.",
        "Please write a complete story based on this idea: {premise}",
    ),
    "title": (
        'Write a story titled "{title}".',
        'Tell a story called "{title}".',
        'The title is "{title}". Write the story that goes with it.',
        'Please write a complete story with the title "{title}".',
    ),
    "opening": (
        "Continue this story from where its opening ends:\n\n{opening}",
        "Here is how a story begins. Write the rest of it.\n\n{opening}",
        "Finish the story that starts like this:\n\n{opening}",
    ),
    "continuation": (
        "Premise: {premise}\n\nThe story so far ends with:\n\n{context}\n\n"
        "Write the next part (part {part} of {parts}).",
        "Premise: {premise}\n\nHere is the end of the previous part:\n\n{context}\n\n"
        "Continue with part {part} of {parts}.",
    ),
    # The first window of a long story has no story so far yet.
    "first_part": (
        "Premise: {premise}\n\nWrite the opening part (part 1 of {parts}).",
        "Premise: {premise}\n\nBegin the story: write part 1 of {parts}.",
    ),
    # A document continuation: this line, then the labelled sections (DOCUMENT_SECTIONS).
    "document": (
        "Continue this story from where it stops.",
        "Write the next passage of this story.",
        "Here is a story in progress. Carry on from its last line.",
    ),
    # Not a trained kind: the model asked to summarise a part of a story that falls out of the
    # studio's context window (the alternative to the extractive rolling summary).
    "summary": (
        "Summarise this part of a story in at most {words} words. Keep every character's name "
        "and each fact a reader needs later; write plain sentences, no commentary.\n\n{context}",
    ),
}

# The sections of a document continuation, in the order they are rendered: the request's field
# and the label a writer reads in the context inspector. Notes and the summary come first (the
# background), then the story so far, and the direction last, beside where the model writes.
DOCUMENT_SECTIONS: tuple[tuple[str, str], ...] = (
    ("notes", "Notes"),
    ("summary", "Earlier in the story (summary)"),
    ("context", "The story so far"),
    ("direction", "What happens next"),
)


def length_bucket(words: int) -> str:
    """The length control value for a story of `words` words."""
    name = LENGTH_BUCKETS[0][0]
    for bucket, lower in LENGTH_BUCKETS:
        if words >= lower:
            name = bucket
    return name


@dataclass(frozen=True)
class StoryRequest:
    """What to write: a kind of task, its controls and the task's material."""

    kind: Kind = "premise"
    controls: Mapping[str, str] = field(default_factory=dict)
    premise: str | None = None
    title: str | None = None
    opening: str | None = None
    context: str | None = None
    part: int = 1
    parts: int = 1
    phrasing: int = 0
    control_order: Sequence[str] | None = None
    # A document continuation's memory (kind "document"); `context` is its story so far.
    notes: str | None = None
    direction: str | None = None
    summary: str | None = None
    # The summary kind's length limit in words.
    words: int | None = None


def story_request(premise: str | None = "", title: str | None = "",
                  controls: Mapping[str, object] | None = None, opening: str | None = "",
                  kind: Kind | None = None) -> StoryRequest:
    """What a person filled in (the studio's form, `storyteller write`'s options) as a request.

    The kind is `kind` if given, else an opening's continuation, else a premise (with the title,
    if any), else a title. Controls left empty are not sent: the model writes without them.
    Raises ValueError when the kind's own text is missing."""
    chosen = {name: str(value).strip() for name, value in (controls or {}).items()
              if value is not None and str(value).strip()}
    premise, title, opening = ((text or "").strip() for text in (premise, title, opening))
    kind = kind or ("opening" if opening else "title" if title and not premise else "premise")
    if not {"premise": premise, "title": title, "opening": opening}.get(kind):
        raise ValueError(f"a {kind} is needed")
    return StoryRequest(kind=kind, controls=chosen, premise=premise or None,
                        title=title or None, opening=opening or None)


def render_header(controls: Mapping[str, str], order: Sequence[str] | None = None) -> str:
    """`[ Genre: fable; Style: moral ]` for the controls that are set, in `order`; '' if none."""
    order = list(order) if order is not None else list(HEADER_FIELDS)
    known = [name for name in order if name in CONTROL_SCHEMA]
    parts = []
    for name in known:
        value = str(controls.get(name) or "").strip()
        if value:
            value = " ".join(re.sub(r"[\[\];\n]+", " ", value).split())
            parts.append(f"{CONTROL_SCHEMA[name]['label']}: {value}")
    return f"[ {'; '.join(parts)} ]" if parts else ""


_HEADER = re.compile(r"^\[ (.*) \]$")


def parse_header(line: str) -> dict[str, str]:
    """The controls in a rendered header line (the inverse of `render_header`)."""
    match = _HEADER.match(line.strip())
    if not match:
        return {}
    by_label = {str(spec["label"]).lower(): name for name, spec in CONTROL_SCHEMA.items()}
    controls = {}
    for part in match.group(1).split("; "):
        label, _, value = part.partition(": ")
        name = by_label.get(label.strip().lower())
        if name and value:
            controls[name] = value.strip()
    return controls


RULE_PREFIX = "Style rule: "


def render_style_rule(controls: Mapping[str, str]) -> str:
    """`Style rule: …` for a house style, else ''."""
    rule = STYLE_RULES.get(str(controls.get("style") or "").strip().lower())
    return f"{RULE_PREFIX}{rule}" if rule else ""


def task_of(message: str) -> str:
    """A rendered user message without its control header and style rule: the task alone."""
    lines = message.split("\n")
    if lines and parse_header(lines[0]):
        lines = lines[1:]
    if lines and lines[0].startswith(RULE_PREFIX):
        lines = lines[1:]
    return "\n".join(lines).strip()


def render_document_task(request: StoryRequest) -> str:
    """A document continuation's task: the instruction, then each section that is set, as
    `Label:` on a line of its own and the text below it, sections a blank line apart."""
    if not (request.context or "").strip():
        raise ValueError("a 'document' request needs its story so far (context)")
    phrasings = PHRASINGS["document"]
    blocks = [phrasings[request.phrasing % len(phrasings)]]
    for name, label in DOCUMENT_SECTIONS:
        text = (getattr(request, name) or "").strip()
        if text:
            blocks.append(f"{label}:\n{text}")
    return "\n\n".join(blocks)


def render_user_message(request: StoryRequest) -> str:
    """The user turn: the control header, a house style's rule, then the task in the chosen
    phrasing."""
    if request.kind in ("document", "summary"):
        if request.kind == "document":
            task = render_document_task(request)
        else:
            if not (request.context or "").strip():
                raise ValueError("a 'summary' request needs the text to summarise (context)")
            task = PHRASINGS["summary"][0].format(words=request.words or 150,
                                                  context=request.context.strip())
        header = render_header(request.controls, request.control_order)
        return "\n".join(part for part in (header, render_style_rule(request.controls), task)
                         if part)
    first_part = request.kind == "continuation" and request.part == 1
    phrasings = PHRASINGS["first_part" if first_part else request.kind]
    template = phrasings[request.phrasing % len(phrasings)]
    needed = {"premise": request.premise, "title": request.title, "opening": request.opening,
              "continuation": request.premise if first_part else request.context}[request.kind]
    if not needed:
        raise ValueError(f"a {request.kind!r} request needs its {request.kind} text")
    task = template.format(premise=request.premise or "", title=request.title or "",
                           opening=request.opening or "", context=request.context or "",
                           part=request.part, parts=request.parts)
    if request.kind == "premise" and request.title:
        task += f'\nTitle: "{request.title}"'
    header = render_header(request.controls, request.control_order)
    return "\n".join(part for part in (header, render_style_rule(request.controls), task) if part)


def render_messages(request: StoryRequest, story: str | None = None,
                    system_prompt: str | None = SYSTEM_PROMPT) -> list[dict[str, str]]:
    """The chat messages for `request`; with `story`, the assistant's answer is the last one."""
    messages = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": render_user_message(request)})
    if story is not None:
        messages.append({"role": "assistant", "content": story})
    return messages


def summary_messages(text: str, words: int = 150,
                     system_prompt: str | None = SYSTEM_PROMPT) -> list[dict[str, str]]:
    """The chat messages that ask the model itself to summarise `text` in at most `words`
    words: the studio's model-made rolling summary."""
    return render_messages(StoryRequest(kind="summary", context=text, words=words),
                           system_prompt=system_prompt)


def tail_words(text: str, count: int) -> str:
    """About the last `count` words of `text`, starting at a sentence where possible: the
    story-so-far context of a continuation request, in curated pairs and in the studio alike."""
    tokens = text.split(" ")
    if len(tokens) <= count:
        return text
    tail = " ".join(tokens[-count:])
    match = re.search(r"[.!?][\"'”’)]?\s+(?=[A-Z\"“])", tail)
    return tail[match.end():] if match and match.end() < len(tail) else "…" + tail


def token_ids(encoded) -> list[int]:
    """The token ids of what a tokenizer returned: a plain list, or a mapping with input_ids
    (transformers 5's `apply_chat_template(tokenize=True)` returns the latter)."""
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def prompt_ids(tokenizer, messages: Sequence[Mapping[str, str]]) -> list[int]:
    """The token ids a model sees for `messages` before it writes: the chat template with the
    generation prompt. Training's prompt prefix, evaluation's and merge verification's inputs are
    all this, so they cannot drift apart."""
    return token_ids(tokenizer.apply_chat_template(list(messages), add_generation_prompt=True,
                                                   tokenize=True))


def prompt_text(tokenizer, messages: Sequence[Mapping[str, str]]) -> str:
    """`prompt_ids` as text, for where text offsets are needed."""
    return tokenizer.apply_chat_template(list(messages), add_generation_prompt=True,
                                         tokenize=False)
