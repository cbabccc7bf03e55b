"""What the studio sends to continue a document: the story so far, the writer's notes and
direction, and a summary of what no longer fits, within a token budget; and, part by part, what
the context inspector shows (every part, its tokens, what was cut).

The request is the document kind of `storyteller.prompts`, built with the same pieces curate's
training pairs use (`curate.memory`: the quoted window, the extractive summary), so the model is
asked exactly what it was trained on. Pure: text in, a Context out."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from storyteller.curate.memory import (document_request, extractive_summary, memory_notes,
                                      split_window)
from storyteller.curate.pairs import PairOptions
from storyteller.prompts import (DOCUMENT_SECTIONS, PHRASINGS, SYSTEM_PROMPT, StoryRequest,
                                 render_header, render_style_rule)

CountTokens = Callable[[Sequence[str]], list[int]]

# The summary's length, as training's document pairs have it (PairOptions.summary_words).
SUMMARY_WORDS = PairOptions().summary_words
# The longest story so far training quoted (words): a longer window is a context the model has
# not seen, so the studio quotes no more even where the budget would allow it.
MAX_WINDOW_WORDS = PairOptions().document_context_words
# The least story so far worth sending (tokens); notes are cut before the story goes below it.
MIN_STORY_TOKENS = 64
_LABELS = dict(DOCUMENT_SECTIONS)

_PIECE = re.compile(r"[^\W\d_]+|\d|[^\w\s]+|_+")


def approximate_tokens(texts: Sequence[str]) -> list[int]:
    """SmolLM2's token count of each text, estimated without its tokenizer: one token per word
    of up to six letters and one more per two letters beyond, one per digit and per punctuation
    mark, plus 3%.

    Measured against the real SmolLM2-135M tokenizer (bench/summary.py, docs/BENCHMARKS.md,
    "Rolling summary"): on the 132 starter stories and 50 passages of Sherlock Holmes the mean
    error is +0.0%, the mean absolute error 2.1% and the largest 8.4%, either way (words × 1.35:
    4.2% and 16.2%). Keep ~10% of headroom when the budget is tight."""
    counts = []
    for text in texts:
        n = 0.0
        for piece in _PIECE.findall(text):
            if piece[0].isalpha():
                n += 1 + max(0, len(piece) - 6) // 2
            else:
                n += len(piece)
        counts.append(math.ceil(n * 1.03))
    return counts


def rolling_summary(text: str, words: int = SUMMARY_WORDS) -> str:
    """An extractive summary of `text` in about `words` words: the story's own sentences,
    chosen to keep every character's name and the most telling lines (curate.memory's
    summary, the one training's document pairs carry)."""
    return extractive_summary(text, words)


@dataclass(frozen=True)
class ContextPart:
    """One part of what is sent: its name (system, controls, notes, direction, summary, story so
    far), the text exactly as sent, its tokens, and in words what was left out of it."""

    name: str
    text: str
    tokens: int
    cut: str = ""


@dataclass
class Context:
    request: StoryRequest
    parts: list[ContextPart]
    dropped_words: int = 0
    # Messages for the writer: what did not fit and what to do about it.
    notices: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(part.tokens for part in self.parts)


def _words(n: int) -> str:
    return f"{n:,} word{'s' if n != 1 else ''}"


def _fit_lines(text: str, budget: int, count: Callable[[str], int]) -> tuple[str, int]:
    """The longest head of `text` (whole lines, else words of the first line) within `budget`
    tokens, and how many words were left out."""
    total = len(text.split())
    lines = text.split("\n")
    kept: list[str] = []
    for line in lines:
        if count("\n".join(kept + [line])) > budget:
            break
        kept.append(line)
    if not kept:
        words = lines[0].split()
        low, high = 0, len(words)
        while low < high:
            mid = (low + high + 1) // 2
            if count(" ".join(words[:mid]) + " …") <= budget:
                low = mid
            else:
                high = mid - 1
        head = " ".join(words[:low]) + " …" if low else ""
        return head, total - low
    head = "\n".join(kept)
    return head, total - len(head.split())


def _tail(document: str, budget: int, count: Callable[[str], int],
          most_words: int) -> tuple[str, str]:
    """(the story so far, quoted as training quotes it: the longest tail from a sentence start
    within `budget` tokens and `most_words` words; the text before it)."""
    words = len(document.split(" "))
    low, high = 1, min(words, most_words, max(1, budget))  # a word is at least one token
    best = split_window(document, 1)
    while low <= high:
        mid = (low + high) // 2
        context, before = split_window(document, mid)
        if count(context) <= budget:
            best, low = (context, before), mid + 1
        else:
            high = mid - 1
    return best


def build_context(document: str, *, notes: str = "", direction: str = "",
                  controls: Mapping[str, str] = {}, premise: str = "", title: str = "",
                  budget_tokens: int, count_tokens: CountTokens = approximate_tokens,
                  summary: str | None = None, system_prompt: str | None = SYSTEM_PROMPT,
                  summary_words: int = SUMMARY_WORDS) -> Context:
    """The request that continues `document` at its end and what it is made of.

    Within `budget_tokens` (the prompt's text; the chat template adds a few tokens more): the
    system prompt, the controls and instruction, and the direction are sent whole; the notes
    whole if they leave room for at least MIN_STORY_TOKENS of story, else their first lines
    (the part says what was cut, and a notice asks the writer to shorten them); the rest is the
    end of the document, and what falls before it is summarised (`summary` if the studio has
    one, e.g. made by the model, else `rolling_summary`). Raises ValueError, with what to do,
    for an empty document or a budget too small for anything of the story."""
    text = document.strip()
    if not text:
        raise ValueError("the document is empty: write or paste some story to continue")

    def count(piece: str) -> int:
        return count_tokens([piece])[0] if piece else 0

    def block(name: str, body: str) -> str:
        return f"{_LABELS[name]}:\n{body}"

    chosen = {k: str(v).strip() for k, v in controls.items() if v is not None and str(v).strip()}
    parts: list[ContextPart] = []
    notices: list[str] = []
    if system_prompt:
        parts.append(ContextPart("system", system_prompt, count(system_prompt)))
    head = "\n".join(p for p in (render_header(chosen), render_style_rule(chosen),
                                 PHRASINGS["document"][0]) if p)
    parts.append(ContextPart("controls", head, count(head)))
    direction = " ".join(direction.split())
    if direction:
        parts.append(ContextPart("direction", block("direction", direction),
                                 count(block("direction", direction))))
    used = sum(part.tokens for part in parts)
    if used + MIN_STORY_TOKENS > budget_tokens:
        raise ValueError(f"a budget of {budget_tokens} tokens leaves no room for the story "
                         f"(system prompt, controls and direction take {used}): raise the "
                         "budget or shorten the direction")
    memory = memory_notes(notes, premise, title)
    if memory:
        room = budget_tokens - used - MIN_STORY_TOKENS
        label_cost = count(block("notes", ""))
        sent, left_out = memory, 0
        if count(block("notes", memory)) > room:
            sent, left_out = _fit_lines(memory, room - label_cost, count)
            notices.append(f"The notes are longer than the context allows ({_words(len(memory.split()))}); "
                           f"the last {_words(left_out)} of them were left out. Shorten the notes "
                           "or move what matters most to the top.")
        if sent:
            cut = f"the last {_words(left_out)} of the notes left out (too long for the context)" \
                if left_out else ""
            parts.append(ContextPart("notes", block("notes", sent), count(block("notes", sent)), cut))
            used += parts[-1].tokens
        memory = sent
    room = budget_tokens - used
    if count(block("context", text)) <= room and len(text.split()) <= MAX_WINDOW_WORDS:
        story, before, summary_text = text, "", ""
    else:
        # Room for the summary first (about its length in tokens, at most a third of what is
        # left), then the longest tail of the story that fits beside it.
        wanted = summary if summary is not None else None
        reserve = min(room // 3, count(wanted) + 8 if wanted else int(summary_words * 1.6) + 8)
        story, before = _tail(text, room - reserve - count(block("context", "")), count,
                              MAX_WINDOW_WORDS)
        summary_text = (summary.strip() if summary is not None
                        else rolling_summary(before, summary_words))
        if summary_text and count(block("summary", summary_text)) > room - count(block("context", story)):
            space = room - count(block("context", story)) - count(block("summary", ""))
            summary_text, _ = _fit_lines(" ".join(summary_text.split()), max(0, space), count)
    dropped = len(before.split())
    pieces = {"summary": summary_text, "context": story}
    request = document_request(story, chosen, memory, direction, summary_text)
    if summary_text:
        parts.append(ContextPart("summary", block("summary", summary_text),
                                 count(block("summary", summary_text)),
                                 f"the first {_words(dropped)} of the story, summarised"))
    story_cut = ""
    if dropped:
        story_cut = (f"the first {_words(dropped)} left out"
                     + (", summarised above" if summary_text else ", with no room for a summary"))
    parts.append(ContextPart("story so far", block("context", pieces["context"]),
                             count(block("context", pieces["context"])), story_cut))
    # The inspector lists the parts in the order the model reads them.
    order = {"system": 0, "controls": 1, "notes": 2, "summary": 3, "story so far": 4,
             "direction": 5}
    parts.sort(key=lambda part: order[part.name])
    return Context(request=request, parts=parts, dropped_words=dropped, notices=notices)
