"""Prompt–story pairs from clean stories: premise → story, title and controls → story,
opening → continuation, and continuation windows for stories longer than the token budget.

Every prompt is rendered by `storyteller.prompts`, the one renderer all stages share."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from storyteller.curate.tag import Tag
from storyteller.prompts import StoryRequest, length_bucket, render_messages, tail_words

CountTokens = Callable[[Sequence[str]], list[int]]

# Capitalised words that are not names even when they recur mid-sentence.
_NOT_NAMES = set("""I I'm I'll I've I'd Mr Mrs Ms Miss Dr Sir Madam Lord Lady King Queen Prince
Princess Captain God Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February
March April May June July August September October November December English French Moral Log
Day Christmas Earth Mars Moon Sun OK Oh Yes No The A An And But""".split())
_STOPWORDS = set("""the a an and or but if then so of to in on at by for with from into onto over
under about after before while when where what which who whom whose this that these those there
here his her hers him he she they them their theirs it its we us our you your i me my mine was
were is are be been being had has have do did does not no nor as than too very can could would
should will shall may might must just only also even still again ever never always all any some
each every both few more most other such own same one two three said says say asked like back
down up out off away through around upon until because though although once little big knew
came went looked thought made took told felt began could know come going want wanted make
take tell think look seemed found left right long last first next time times thing things
something nothing everything anything someone anyone everyone there's it's don't didn't
into just then than""".split())


@dataclass
class Story:
    """A clean, kept story with everything pairs need."""

    id: str
    group: str
    text: str
    source: dict[str, Any]
    meta: dict[str, Any]
    words: int
    tokens: int
    tags: dict[str, Tag] = field(default_factory=dict)

    def control(self, name: str) -> str | None:
        if name in self.tags:
            return self.tags[name].value
        value = self.meta.get(name)
        return str(value) if value else None


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def character_names(text: str, limit: int = 6) -> list[str]:
    """The story's names, most frequent first: capitalised words that occur at least once in
    mid-sentence (so not merely sentence-initial), twice in all, and never in lower case."""
    lowered = {w.lower() for w in re.findall(r"\b[a-z][a-z']*\b", text)}
    mid_sentence = set(re.findall(r"(?<=[^.!?\"“\n]\s)([A-Z][a-z]{2,})\b", text))
    counts = Counter(w for w in re.findall(r"\b[A-Z][a-z]{2,}\b", text) if w in mid_sentence)
    names = [name for name, n in counts.most_common()
             if n >= 2 and name not in _NOT_NAMES and name.lower() not in lowered
             and name.lower() not in _STOPWORDS]
    return names[:limit]


_LOWER_WORD = re.compile(r"\b[a-z]{4,}\b")


def keywords(text: str, limit: int = 3, exclude: Sequence[str] = ()) -> list[str]:
    """The most frequent content words (lower-case in the text, so not names), ties by spelling."""
    skip = {e.lower() for e in exclude}
    counts = Counter(_LOWER_WORD.findall(text))
    chosen = [(n, w) for w, n in counts.items()
              if w not in _STOPWORDS and w not in skip and not w.endswith(("ed", "ly", "ing"))]
    return [w for _, w in sorted(chosen, key=lambda nw: (-nw[0], nw[1]))[:limit]]


def derive_premise(story: Story) -> str:
    """A premise for a story that came without one: who is in it and what it is about."""
    genre = story.control("genre") or "story"
    names = character_names(story.text, 2)
    topics = keywords(story.text, 3, exclude=names)
    about = " and ".join(names) if names else None
    article = "An" if genre[:1].lower() in "aeiou" else "A"
    text = f"{article} {genre}"
    if about:
        text += f" about {about}"
    if topics:
        joined = topics[0] if len(topics) == 1 else ", ".join(topics[:-1]) + " and " + topics[-1]
        text += f"{',' if about else ''} involving {joined}"
    return text + "."


def controls_of(story: Story) -> dict[str, str]:
    controls = {name: value for name in ("genre", "style", "tone", "audience", "pov")
                if (value := story.control(name))}
    controls["length"] = length_bucket(story.words)
    return controls


_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*\s+")


def sentences(text: str) -> list[str]:
    """`text` cut after each sentence end; joined with spaces the pieces give back every word."""
    pieces, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        pieces.append(text[start:match.end()].strip())
        start = match.end()
    pieces.append(text[start:].strip())
    return [p for p in pieces if p]


def split_opening(text: str, share: float) -> tuple[str, str] | None:
    """(opening, rest) cut at a paragraph (or sentence) boundary near `share` of the words, or
    None where the story is too short to cut."""
    pieces = paragraphs(text)
    joiner = "\n\n"
    if len(pieces) < 3:
        pieces, joiner = sentences(text), " "
        if len(pieces) < 4:
            return None
    total = sum(len(p.split()) for p in pieces)
    taken, count = 0, 0
    while count < len(pieces) - 1 and (taken < share * total or count == 0):
        taken += len(pieces[count].split())
        count += 1
    if count >= len(pieces) or taken > 0.6 * total:
        return None
    return joiner.join(pieces[:count]), joiner.join(pieces[count:])


def _fit(unit: str, budget: int, count_tokens: CountTokens) -> list[tuple[str, int]]:
    """`unit` as pieces of at most `budget` tokens each: whole if it fits, else at sentence
    ends, and a sentence longer than the budget at word boundaries."""
    (size,) = count_tokens([unit])
    if size <= budget:
        return [(unit, size)]
    parts = sentences(unit)
    if len(parts) == 1:
        words = unit.split()
        if len(words) == 1:
            return [(unit, size)]  # one unbreakable token run: nothing smaller to cut
        half = len(words) // 2
        parts = [" ".join(words[:half]), " ".join(words[half:])]
    fitted: list[tuple[str, int]] = []
    for part in parts:
        fitted.extend(_fit(part, budget, count_tokens))
    return fitted


def windows(text: str, budget: int, count_tokens: CountTokens) -> list[str]:
    """The story cut at paragraph (else sentence, else word) boundaries into parts of at most
    `budget` tokens each, in order; joined, the parts hold every word of the story."""
    units = paragraphs(text)
    pieces: list[tuple[str, int, str]] = []  # (text, tokens, joiner before it)
    for unit, size in zip(units, count_tokens(units)):
        fitted = [(unit, size)] if size <= budget else _fit(unit, budget, count_tokens)
        for index, (piece, n) in enumerate(fitted):
            pieces.append((piece, n, "\n\n" if index == 0 else " "))
    parts: list[str] = []
    current, used = "", 0
    for piece, size, joiner in pieces:
        if current and used + size + 2 > budget:
            parts.append(current)
            current, used = "", 0
        current = f"{current}{joiner}{piece}" if current else piece
        used += size + 2
    if current:
        parts.append(current)
    return parts


@dataclass(frozen=True)
class PairOptions:
    kinds: tuple[str, ...] = ("premise", "title", "opening")
    derive_premise: bool = True
    max_story_tokens: int = 1536
    context_words: int = 120
    opening_share: float = 0.2
    system_prompt: str | None = None
    # Document continuations (kind "document", see curate.memory): cuts per story, the longest
    # story so far quoted (words; each cut draws a length up to it), the passage to write
    # (words), and how often each optional section is there, so the model also learns to
    # continue a bare document.
    document_windows: int = 2
    document_context_words: int = 600
    document_passage_words: int = 180
    notes_probability: float = 0.6
    direction_probability: float = 0.6
    summary_probability: float = 0.7
    summary_words: int = 120
    seed: int = 0


def make_pair(story: Story, pair_id: str, kind: str, request: StoryRequest, answer: str,
              premise_source: str | None, augmented: dict | None = None,
              system_prompt: str | None = None) -> dict[str, Any]:
    kwargs = {} if system_prompt is None else {"system_prompt": system_prompt}
    controls = dict(request.controls)
    if request.title:
        controls["title"] = request.title
    material = {"kind": request.kind, "premise": request.premise, "title": request.title,
                "opening": request.opening, "context": request.context, "part": request.part,
                "parts": request.parts, "phrasing": request.phrasing,
                "control_order": list(request.control_order) if request.control_order else None}
    if request.kind == "document":  # other kinds' records stay as they were
        material.update(notes=request.notes, direction=request.direction,
                        summary=request.summary)
    return {
        "id": pair_id,
        "group": story.group,
        "messages": render_messages(request, answer, **kwargs),
        "controls": controls,
        "source": story.source,
        "kind": kind,
        "augmented": augmented,
        "story_id": story.id,
        "premise_source": premise_source,
        "tags": {name: tag.to_json() for name, tag in sorted(story.tags.items())},
        # Everything the renderer took, so any stage can rebuild these exact messages.
        "request": material,
    }


def build_pairs(story: Story, options: PairOptions, count_tokens: CountTokens) -> list[dict[str, Any]]:
    """All pairs of the kinds asked for that this story supports."""
    pairs = _story_pairs(story, options, count_tokens)
    if "document" in options.kinds:
        from storyteller.curate.memory import document_pairs  # memory builds on this module

        pairs += document_pairs(story, options, count_tokens)
    return pairs


def _story_pairs(story: Story, options: PairOptions,
                 count_tokens: CountTokens) -> list[dict[str, Any]]:
    controls = controls_of(story)
    title = story.meta.get("title") or None
    premise, premise_source = story.meta.get("premise"), "data"
    if not premise and options.derive_premise:
        premise, premise_source = derive_premise(story), "derived"
    if not premise:
        premise_source = None
    system = options.system_prompt
    if story.tokens > options.max_story_tokens:
        parts = windows(story.text, options.max_story_tokens, count_tokens)
        if not premise:
            return []
        pairs = []
        for index, part in enumerate(parts, start=1):
            context = tail_words("\n\n".join(parts[:index - 1]), options.context_words) if index > 1 else None
            request = StoryRequest(kind="continuation", controls=controls, premise=premise,
                                   context=context, part=index, parts=len(parts))
            pairs.append(make_pair(story, f"{story.id}-part{index}", "continuation", request, part,
                                   premise_source, system_prompt=system))
        return pairs
    pairs = []
    if "premise" in options.kinds and premise:
        request = StoryRequest(kind="premise", controls=controls, premise=premise)
        pairs.append(make_pair(story, f"{story.id}-premise", "premise", request, story.text,
                               premise_source, system_prompt=system))
    if "title" in options.kinds and title:
        request = StoryRequest(kind="title", controls=controls, title=title)
        pairs.append(make_pair(story, f"{story.id}-title", "title", request, story.text, None,
                               system_prompt=system))
    if "opening" in options.kinds:
        cut = split_opening(story.text, options.opening_share)
        if cut:
            request = StoryRequest(kind="opening", controls=controls, opening=cut[0])
            pairs.append(make_pair(story, f"{story.id}-opening", "opening", request, cut[1], None,
                                   system_prompt=system))
    return pairs
