"""Automatic story metrics: pure functions of texts.

Words are lower-cased runs of letters, digits and apostrophes; punctuation is not a word. Every
function here is checked against hand-computed examples in tests/unit/test_evaluate_metrics.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

# Counted in the foundation, where the story judge needs them while training; still metrics here.
from storyteller.textstats import distinct_n, ngrams, seq_rep_n, words  # noqa: F401

_SENTENCE = re.compile(r"[^.!?]+(?:[.!?]+[\"'”’)]*|$)")


@lru_cache(maxsize=1)
def _bleu():
    from sacrebleu.metrics import BLEU

    # effective_order: a short story with no 4-gram match still gets a score from lower orders.
    return BLEU(effective_order=True)


def bleu(hypothesis: str, references: Sequence[str]) -> float:
    """Sentence BLEU (0-100, sacrebleu's 13a tokenisation) of one text against references."""
    return float(_bleu().sentence_score(hypothesis, list(references)).score)


def self_bleu(texts: Sequence[str]) -> float | None:
    """Mean BLEU of each story against all the others: high when the stories resemble each other
    (low diversity across prompts)."""
    if len(texts) < 2:
        return None
    scores = [bleu(text, [other for j, other in enumerate(texts) if j != i])
              for i, text in enumerate(texts)]
    return sum(scores) / len(scores)


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F-measure (longest common subsequence of words), 0-1."""
    return float(_rouge().score(reference, hypothesis)["rougeL"].fmeasure)


def ngram_index(texts: Iterable[str], n: int = 8) -> set[tuple[str, ...]]:
    """Every word n-gram of `texts`: the training stories, for memorisation."""
    index: set[tuple[str, ...]] = set()
    for text in texts:
        index.update(ngrams(words(text), n))
    return index


def memorisation(text: str, index: set[tuple[str, ...]], n: int = 8) -> tuple[float | None, int]:
    """(share of the story's n-grams found in the training stories, longest copied span in
    words). The span is the longest run of consecutive n-grams all found in training: a run of
    r n-grams covers r + n - 1 words."""
    grams = ngrams(words(text), n)
    if not grams:
        return None, 0
    hits = [gram in index for gram in grams]
    longest = run = 0
    for hit in hits:
        run = run + 1 if hit else 0
        longest = max(longest, run)
    return sum(hits) / len(hits), (longest + n - 1 if longest else 0)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.findall(" ".join(text.split())) if words(s)]


@lru_cache(maxsize=1)
def _hyphenator():
    import pyphen

    return pyphen.Pyphen(lang="en_US")


def syllables(word: str) -> int:
    """Syllables of a word, counted as its hyphenation pieces (dictionary-based, offline)."""
    return max(1, len(_hyphenator().positions(word)) + 1)


def flesch_reading_ease(text: str) -> float | None:
    """206.835 - 1.015 x words per sentence - 84.6 x syllables per word (higher = easier;
    children's stories score about 80-100)."""
    tokens = words(text)
    count = len(sentences(text))
    if not tokens or not count:
        return None
    syllable_count = sum(syllables(word) for word in tokens)
    return 206.835 - 1.015 * len(tokens) / count - 84.6 * syllable_count / len(tokens)


def text_metrics(text: str, reference: str | None, index: set[tuple[str, ...]],
                 n: int = 8) -> dict[str, float | int | None]:
    """The per-story metrics that need nothing but text."""
    share, span = memorisation(text, index, n)
    return {
        "words": len(words(text)),
        "sentences": len(sentences(text)),
        "distinct_1": distinct_n([text], 1),
        "distinct_2": distinct_n([text], 2),
        "distinct_3": distinct_n([text], 3),
        "seq_rep_4": seq_rep_n(text, 4),
        "memorised_8gram_share": share,
        "longest_copied_span": span,
        "readability": flesch_reading_ease(text),
        "rouge_l": rouge_l(text, reference) if reference else None,
        "bleu": bleu(text, [reference]) if reference else None,
    }
