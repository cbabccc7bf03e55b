"""A story's memory, taken from the story itself: the notes a writer keeps (names and facts),
the direction they give for the next passage, and an extractive summary of what came before.

Curate builds document-continuation pairs with these, and the studio uses the same summary for
the text that falls out of its context window, so what the model is trained on is what it is
later sent. Pure functions: text in, text out; nothing here draws random numbers (callers choose
the variant)."""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from storyteller.curate.pairs import (_NOT_NAMES, _STOPWORDS, CountTokens, PairOptions, Story,
                                      character_names, controls_of, derive_premise, make_pair,
                                      paragraphs, sentences)
from storyteller.prompts import StoryRequest, tail_words

_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
_CONTENT = re.compile(r"\b[a-z]{4,}\b")

# Words the direction templates add; they are not the direction's content.
DIRECTION_WORDS = frozenset("next passage happens involves bring write with about".split())

NOTES_LABEL = "Characters: "


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def join_and(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def fact_sentences(text: str, names: Sequence[str], limit: int = 3, min_words: int = 4,
                   max_words: int = 25) -> list[str]:
    """For each name in turn (most frequent first), the first sentence of `text` that names it
    and is between `min_words` and `max_words` long: a fact about that character, word for word
    from the story. At most `limit`, none twice."""
    pieces = [s for s in sentences(text) if min_words <= len(s.split()) <= max_words]
    facts: list[str] = []
    for name in names:
        if len(facts) >= limit:
            break
        pattern = re.compile(rf"\b{re.escape(name)}\b")
        found = next((s for s in pieces if pattern.search(s) and s not in facts), None)
        if found:
            facts.append(found.strip(" \"“”'"))
    return facts


def notes_from(earlier: str, names: int = 6, facts: int = 3, facts_from: str = "") -> str:
    """Notes as a writer keeps them, from the part of the story written so far: the
    characters' names on one line, then a few facts about them, one a line, taken from
    `facts_from` first (the text that fell out of the window: what the notes must remember)
    and then from `earlier`. '' where the text has no names."""
    found = character_names(earlier, names)
    if not found:
        return ""
    lines = [f"{NOTES_LABEL}{', '.join(found)}."]
    chosen = fact_sentences(facts_from, found, facts) if facts_from.strip() else []
    for fact in fact_sentences(earlier, found, facts + len(chosen)):
        if len(chosen) < facts and fact not in chosen:
            chosen.append(fact)
    return "\n".join(lines + chosen)


def memory_notes(notes: str, premise: str = "", title: str = "") -> str:
    """The notes as sent, by the studio and in training: a title and a premise line first
    (where the story has them), then the writer's notes."""
    lines = []
    if title.strip():
        lines.append(f'Title: "{" ".join(title.split())}"')
    if premise.strip():
        lines.append(f"Premise: {' '.join(premise.split())}")
    if notes.strip():
        lines.append(notes.strip())
    return "\n".join(lines)


def notes_names(notes: str) -> list[str]:
    """The names a notes text holds: its `Characters:` line where it has one, else the
    capitalised words that are not sentence starts or common words (as a writer types them)."""
    for line in notes.splitlines():
        if line.startswith(NOTES_LABEL):
            return [n.strip(" .") for n in line[len(NOTES_LABEL):].split(",") if n.strip(" .")]
    return proper_names(notes, min_count=1)


def proper_names(text: str, min_count: int = 1) -> list[str]:
    """Capitalised words used as names in `text`: not at a sentence start, not a common word
    and never written in lower case there; most frequent first. Looser than
    pairs.character_names (one mention is enough), for short generated passages."""
    lowered = {w.lower() for w in re.findall(r"\b[a-z][a-z']*\b", text)}
    mid = re.findall(r"(?<=[^.!?\"“\n:]\s)([A-Z][a-z]{2,})\b", text)
    counts = Counter(mid)
    return [name for name, n in counts.most_common()
            if n >= min_count and name not in _NOT_NAMES and name.lower() not in lowered
            and name.lower() not in _STOPWORDS]


def distinctive_keywords(passage: str, earlier: str, limit: int = 3,
                         exclude: Sequence[str] = ()) -> list[str]:
    """The passage's content words, favouring those it uses more than the story before it did
    (what is new in the passage), ties by spelling."""
    skip = {e.lower() for e in exclude}
    # Past tenses, adverbs and -ing forms say little about what a passage is about.
    here = Counter(w for w in _CONTENT.findall(passage) if w not in _STOPWORDS and w not in skip
                   and not w.endswith(("ed", "ly", "ing")))
    before = Counter(_CONTENT.findall(earlier))
    scale = max(1, len(passage.split())) / max(1, len(earlier.split()))
    scored = [(n / (1.0 + before[w] * scale), w) for w, n in here.items() if n >= 1]
    return [w for _, w in sorted(scored, key=lambda sw: (-sw[0], sw[1]))[:limit]]


DIRECTION_TEMPLATES = (
    "Next: {who}{with_what}.",
    "In the next passage: {who}{with_what}.",
    "What happens next involves {who}{with_what}.",
)


def direction_from(passage: str, earlier: str, story_names: Sequence[str], variant: int = 0,
                   topics: int = 3) -> str:
    """A short description of the next passage: who is in it (the story's names it mentions)
    and what it is about (its distinctive words), in one of DIRECTION_TEMPLATES. Built from
    single words, so it never quotes the passage beyond a name or two. '' where the passage
    gives nothing to say."""
    who = [n for n in story_names if re.search(rf"\b{re.escape(n)}\b", passage)][:3]
    what = distinctive_keywords(passage, earlier, topics, exclude=who)
    if not who and not what:
        return ""
    template = DIRECTION_TEMPLATES[variant % len(DIRECTION_TEMPLATES)]
    if who:
        return template.format(who=join_and(who),
                               with_what=f", with {join_and(what)}" if what else "")
    return template.format(who=join_and(what), with_what="")


def direction_terms(direction: str) -> list[str]:
    """The words a passage must realise to follow `direction`: its names and content words,
    without the templates' own words and common words."""
    seen: list[str] = []
    for word in _words(direction):
        low = word.lower().strip("'’-")
        if len(low) < 3 or low in _STOPWORDS or low in DIRECTION_WORDS:
            continue
        if low not in (s.lower() for s in seen):
            seen.append(word)
    return seen


def _stem(word: str) -> str:
    # A crude stem, enough to match lantern/lanterns and confront/confronted/confronting.
    low = word.lower()
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if low.endswith(suffix) and len(low) - len(suffix) >= 4:
            low = low[:-len(suffix)]
            break
    return low[:6]


def realised(terms: Sequence[str], text: str) -> list[bool]:
    """For each term, whether `text` uses it (or a word with the same stem)."""
    stems = {_stem(w) for w in re.findall(r"[A-Za-z]+", text)}  # sea-woman has a woman in it
    return [_stem(term) in stems for term in terms]


def extractive_summary(text: str, words: int) -> str:
    """About `words` words of `text`'s own sentences, in story order: sentences that name
    characters not yet covered score highest, then those rich in the text's frequent content
    words, with a mild preference for later sentences (what happened recently matters more to
    the next passage). The whole text when it is short enough; '' for no text.

    Linear in the text's length per chosen sentence, so a 200,000-word document is summarised
    in well under a second."""
    text = " ".join(text.split())
    if not text or words <= 0:
        return ""
    if len(text.split()) <= words:
        return text
    pieces = sentences(text)
    names = character_names(text, 12)
    name_sets = [{n for n in names if re.search(rf"\b{re.escape(n)}\b", p)} for p in pieces]
    frequent = Counter(w for w in _CONTENT.findall(text.lower()) if w not in _STOPWORDS)
    lengths = [len(p.split()) for p in pieces]
    base = []
    for index, (piece, size) in enumerate(zip(pieces, lengths)):
        content = [w for w in _CONTENT.findall(piece.lower()) if w not in _STOPWORDS]
        richness = sum(math.log1p(frequent[w]) for w in set(content)) / math.sqrt(max(size, 1))
        recency = 0.5 * index / max(1, len(pieces) - 1)
        # Very long or very short sentences make poor summary lines.
        shape = 0.0 if 5 <= size <= 35 else -1.0
        base.append(richness + recency + shape)
    chosen: set[int] = set()
    covered: set[str] = set()
    used = 0
    while True:
        best, best_score = None, -math.inf
        for index, score in enumerate(base):
            if index in chosen or used + lengths[index] > words:
                continue
            score += 2.0 * len(name_sets[index] - covered)
            if score > best_score:
                best, best_score = index, score
        if best is None:
            break
        chosen.add(best)
        covered |= name_sets[best]
        used += lengths[best]
    if not chosen:  # every sentence is longer than the budget: the text's first words
        return " ".join(text.split()[:words]) + " …"
    return " ".join(pieces[i] for i in sorted(chosen))


# A document pair needs at least this much story before the cut and after it (words).
MIN_EARLIER_WORDS = 60
MIN_PASSAGE_WORDS = 30


def sentence_units(text: str) -> list[tuple[str, str]]:
    """The story as (sentence, joiner before it): "\n\n" at a paragraph start, " " inside one;
    joined back, the units give the story's words and paragraphs."""
    units: list[tuple[str, str]] = []
    for paragraph in paragraphs(text):
        for index, piece in enumerate(sentences(paragraph)):
            units.append((piece, "\n\n" if index == 0 else " "))
    return units


def join_units(units: Sequence[tuple[str, str]]) -> str:
    return "".join((joiner if i else "") + piece for i, (piece, joiner) in enumerate(units))


def document_cuts(units: Sequence[tuple[str, str]]) -> list[int]:
    """Where a document may stop and its next passage begin: unit indices with enough story on
    both sides; paragraph starts where there are at least two such, else any sentence start."""
    sizes = [len(piece.split()) for piece, _ in units]
    total, before, valid = sum(sizes), 0, []
    for index, size in enumerate(sizes):
        if before >= MIN_EARLIER_WORDS and total - before >= MIN_PASSAGE_WORDS:
            valid.append(index)
        before += size
    at_paragraphs = [i for i in valid if units[i][1] == "\n\n"]
    return at_paragraphs if len(at_paragraphs) >= 2 else valid


def passage_end(units: Sequence[tuple[str, str]], start: int, words: int) -> int:
    """The end (exclusive) of the passage starting at `start`: sentences until `words` words,
    then on to the paragraph's end if that adds at most half as many again."""
    end, used = start, 0
    while end < len(units) and used < words:
        used += len(units[end][0].split())
        end += 1
    extra, probe = 0, end
    while probe < len(units) and units[probe][1] == " ":
        extra += len(units[probe][0].split())
        probe += 1
    return probe if extra <= words / 2 else end


def split_window(earlier: str, context_words: int) -> tuple[str, str]:
    """(the story so far as quoted: about the last `context_words` words, from a sentence
    start, as `prompts.tail_words` cuts it; the text before that quote)."""
    context = tail_words(earlier, context_words)
    quoted = context[1:] if context.startswith("…") and not earlier.endswith(context) else context
    return context, earlier[:len(earlier) - len(quoted)].rstrip()


def document_request(story_so_far: str, controls: dict[str, str], notes: str = "",
                     direction: str = "", summary: str = "") -> StoryRequest:
    """The document-continuation request; optional parts left empty are not sent."""
    return StoryRequest(kind="document", controls=controls, context=story_so_far,
                        notes=notes.strip() or None, direction=direction.strip() or None,
                        summary=summary.strip() or None)


def document_pairs(story: Story, options: PairOptions,
                   count_tokens: CountTokens) -> list[dict[str, Any]]:
    """Document continuations cut from `story` (at most `options.document_windows`): the story
    so far up to a cut (its last window quoted), the next passage as the answer, and, each by
    its probability, notes from the part before the cut, a direction describing the passage and
    an extractive summary of what lies before the quoted window. Deterministic per story (seeded
    by its id, as augmentation is); a story too short to cut gives none."""
    rng = random.Random(f"{options.seed}:{story.id}:document")
    units = sentence_units(story.text)
    cuts = document_cuts(units)
    if not cuts or options.document_windows < 1:
        return []
    chosen = sorted(rng.sample(cuts, min(options.document_windows, len(cuts))))
    controls = {k: v for k, v in controls_of(story).items() if k != "length"}
    story_names = character_names(story.text, 8)
    title = str(story.meta.get("title") or "")
    premise = str(story.meta.get("premise") or "") or (
        derive_premise(story) if options.derive_premise else "")
    pairs = []
    for number, cut in enumerate(chosen):
        # Every draw is made whatever the outcome, so one option does not shift the others.
        window_words = rng.randint(min(80, options.document_context_words),
                                   options.document_context_words)
        want_notes, want_direction, want_summary, want_premise = (rng.random() for _ in range(4))
        variant = rng.randrange(len(DIRECTION_TEMPLATES))
        end = passage_end(units, cut, options.document_passage_words)
        earlier, passage = join_units(units[:cut]), join_units(units[cut:end])
        if count_tokens([passage])[0] > options.max_story_tokens:
            continue  # one enormous sentence: nothing sensible to cut
        context, before = split_window(earlier, window_words)
        summary = (extractive_summary(before, options.summary_words)
                   if want_summary < options.summary_probability and len(before.split()) >= 40
                   else "")
        notes = (notes_from(earlier, facts_from=before)
                 if want_notes < options.notes_probability else "")
        if notes and want_premise < 0.5:  # the studio puts a story's title and premise there
            notes = memory_notes(notes, premise, title)
        direction = (direction_from(passage, earlier, story_names, variant)
                     if want_direction < options.direction_probability else "")
        request = document_request(context, controls, notes, direction, summary)
        pairs.append(make_pair(story, f"{story.id}-doc{number}", "document", request, passage,
                               None, system_prompt=options.system_prompt))
    return pairs
