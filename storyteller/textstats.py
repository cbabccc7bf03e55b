"""Word counts of a story that both the judge (the foundation, used while training) and
evaluate's metrics need: words, n-grams, distinct-n and seq-rep-n. Pure functions of text.

Words are lower-cased runs of letters, digits and apostrophes; punctuation is not a word."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z0-9]+)*")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Iterable[str], n: int) -> float | None:
    """Unique n-grams over all n-grams of a set of stories (corpus-level distinct-n); None when
    the stories have no n-gram at all."""
    total, unique = 0, set()
    for text in texts:
        grams = ngrams(words(text), n)
        total += len(grams)
        unique.update(grams)
    return len(unique) / total if total else None


def seq_rep_n(text: str, n: int = 4) -> float | None:
    """The share of a story's n-grams that repeat an earlier n-gram of the same story
    (1 - unique / total; seq-rep-4 with n=4). None for a story shorter than n words."""
    grams = ngrams(words(text), n)
    return 1 - len(set(grams)) / len(grams) if grams else None
