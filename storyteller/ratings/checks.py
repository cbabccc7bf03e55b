"""Attention checks and repeats: rows that test the rater rather than the models.

Two kinds of check look like ordinary rows: a human story with its sentences shuffled (any
attentive reader rates its coherence 2 or lower) and a request for one genre answered by a
human story of another genre (genre 2 or lower). They use the held-out human stories, not model
output, so that what they expect is certain: a shuffled model story might have been incoherent
anyway. Repeats show a rated story a second time under another item id, for consistency."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from storyteller.ratings.generations import Generation

MIN_SENTENCES = 4
EXPECT_MAX = 2  # a passed check scores its dimension at most this

CHECK_KINDS: dict[str, str] = {"shuffled": "coherence", "off_genre": "genre"}

# A sentence ends at . ! ? (or …), possibly followed by closing quotes or brackets.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")


def paragraphs(text: str) -> list[list[str]]:
    """The text's paragraphs, each a list of sentences (a heuristic split, good enough here)."""
    result = []
    for block in re.split(r"\n\s*\n", text.strip()):
        block = " ".join(block.split())
        if not block:
            continue
        sentences, start = [], 0
        for match in _SENTENCE_END.finditer(block):
            end = match.start() + len(match.group(0).rstrip())
            sentences.append(block[start:end].strip())
            start = match.end()
        sentences.append(block[start:].strip())
        result.append([s for s in sentences if s])
    return result


def _violations(order: Sequence[int]) -> int:
    """Sentences left in place or still followed by their original successor."""
    fixed = sum(1 for i, j in enumerate(order) if i == j)
    adjacent = sum(1 for a, b in itertools.pairwise(order) if b == a + 1)
    return fixed + adjacent


def shuffle_sentences(text: str, rng: random.Random, tries: int = 200) -> str | None:
    """The text with its sentences in a scrambled order and its paragraph sizes kept; None when
    it has too few sentences for a scramble to be obvious."""
    paras = paragraphs(text)
    sentences = [s for p in paras for s in p]
    if len(sentences) < MIN_SENTENCES:
        return None
    best: list[int] | None = None
    for _ in range(tries):
        order = list(range(len(sentences)))
        rng.shuffle(order)
        if best is None or _violations(order) < _violations(best):
            best = order
        if _violations(best) == 0:
            break
    assert best is not None
    scrambled = [sentences[i] for i in best]
    out, at = [], 0
    for para in paras:
        out.append(" ".join(scrambled[at:at + len(para)]))
        at += len(para)
    return "\n\n".join(out)


def human_or_generated(gen: Generation) -> tuple[str, str]:
    """(story, field): the held-out human story where there is one, else the generated text."""
    return (gen.reference.strip(), "reference") if gen.reference.strip() else (gen.text, "text")


@dataclass(frozen=True)
class Check:
    """One attention check: the request of `prompt_from`, a story made from `story_from`."""

    kind: str  # shuffled | off_genre
    prompt_from: Generation
    story_from: Generation
    story: str
    story_field: str  # reference | text: which story of `story_from` was used

    @property
    def dimension(self) -> str:
        return CHECK_KINDS[self.kind]


def _candidates(gens: Sequence[Generation], used_prompts: set[str],
                rng: random.Random) -> list[Generation]:
    """One generation per prompt: prompts not rated as items first (their requests are new to
    the rater), each group in seeded order."""
    first: dict[str, Generation] = {}
    for gen in sorted(gens, key=lambda g: g.id):
        first.setdefault(gen.prompt_id, gen)
    fresh = [g for p, g in first.items() if p not in used_prompts]
    seen = [g for p, g in first.items() if p in used_prompts]
    rng.shuffle(fresh)
    rng.shuffle(seen)
    return fresh + seen


def make_checks(gens: Sequence[Generation], rated_prompts: set[str], count: int,
                rng: random.Random) -> list[Check]:
    """Up to `count` checks, alternating shuffled and off-genre (off-genre needs two genres);
    each prompt serves at most one check."""
    pool = _candidates(gens, rated_prompts, rng)
    used: set[str] = set()
    checks: list[Check] = []
    genres = {g.genre for g in pool if g.genre}
    kinds = ["shuffled", "off_genre"] if len(genres) >= 2 else ["shuffled"]
    for n in range(count):
        wanted = kinds[n % len(kinds)]
        check = _off_genre(pool, used) if wanted == "off_genre" else None
        check = check or _shuffled(pool, used, rng)
        if check is None:
            break
        used.update({check.prompt_from.prompt_id, check.story_from.prompt_id})
        checks.append(check)
    return checks


def _shuffled(pool: Sequence[Generation], used: set[str], rng: random.Random) -> Check | None:
    for gen in pool:
        if gen.prompt_id in used:
            continue
        text, source = human_or_generated(gen)
        story = shuffle_sentences(text, rng)
        if story is not None:
            return Check("shuffled", gen, gen, story, source)
    return None


def _off_genre(pool: Sequence[Generation], used: set[str]) -> Check | None:
    for asked in pool:
        if asked.prompt_id in used or not asked.genre:
            continue
        for other in pool:
            if (other.prompt_id not in used and other.prompt_id != asked.prompt_id
                    and other.genre and other.genre != asked.genre):
                return Check("off_genre", asked, other, *human_or_generated(other))
    return None


def counts_for(stories: int) -> tuple[int, int]:
    """(attention checks, repeats) for `stories` rated stories: a few repeats, and checks about
    a tenth of all rows of the sheet."""
    if stories <= 0:
        return 0, 0
    repeats = min(stories, max(1 if stories < 10 else 2, round(stories / 12)))
    checks = max(2, round((stories + repeats) / 9))
    return checks, repeats
