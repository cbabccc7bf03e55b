"""Over-used phrases: what a model writes far more often than human stories do.

Pure functions compare the word and n-gram (1 to 4 words) rates of stories a model wrote with
those of human stories (the training stories) and, for single words, with `wordfreq`'s
frequencies of English at large (a small corpus has never seen most words, so its rate alone
would call any rare word over-used). A phrase is listed when it is several times more frequent
in the model's stories than in both references, occurs often enough and in enough different
stories to be a habit rather than one story's subject.

`overused_phrases()` is the list shipped with the package (storyteller/data/overused.json),
measured by bench/overused.py on the embedded default model's stories against the starter
corpus; the studio offers it as a one-click banned list.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from typing import Callable, Iterable, Sequence

WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
SIZES = (1, 2, 3, 4)
# Rates are per this many n-grams, so ratios and the table read in ordinary numbers.
PER = 10_000


@dataclass(frozen=True)
class Overuse:
    phrase: str
    n: int  # words in the phrase
    model_count: int  # occurrences in the model's stories
    stories: int  # model stories it occurs in
    human_count: int  # occurrences in the human stories
    ratio: float  # model rate / reference rate (the larger reference for single words)
    reference: str  # "corpus" or "wordfreq": the reference the ratio was taken against

    def as_json(self) -> dict:
        return {**asdict(self), "ratio": round(self.ratio, 2)}


def words(text: str) -> list[str]:
    """Lower-case words (letters and inner apostrophes; curly apostrophes made straight)."""
    return WORD.findall(text.lower().replace("\u2019", "'"))


def ngrams(tokens: Sequence[str], n: int) -> list[str]:
    return [" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def counts(texts: Iterable[str], n: int) -> tuple[Counter, Counter, int]:
    """(occurrences, stories containing it, total n-grams) of every n-gram in `texts`."""
    total, seen, where = 0, Counter(), Counter()
    for text in texts:
        grams = ngrams(words(text), n)
        total += len(grams)
        seen.update(grams)
        where.update(set(grams))
    return seen, where, total


def wordfreq_rate(word: str) -> float:
    """`word`'s share of running English text per PER words (0 where wordfreq does not know it)."""
    from wordfreq import word_frequency

    return word_frequency(word, "en") * PER


def compare(model_texts: Sequence[str], human_texts: Sequence[str], *,
            sizes: Sequence[int] = SIZES, min_count: int = 5, min_stories: int = 3,
            min_ratio: float = 3.0, smoothing: float = 1.0,
            word_rate: Callable[[str], float] | None = wordfreq_rate) -> list[Overuse]:
    """Every n-gram of `sizes` words that `model_texts` use at least `min_ratio` times as
    often as `human_texts` (and, for single words, as `word_rate` says English does), at least
    `min_count` times in at least `min_stories` stories; most over-used first.

    A phrase the human stories never use gets `smoothing` occurrences there (add-one), so its
    ratio is finite and grows with how often the model uses it. A shorter phrase inside a longer
    listed one that accounts for most of its uses is dropped: the longer one says it better."""
    found: list[Overuse] = []
    for n in sizes:
        model, model_where, model_total = counts(model_texts, n)
        human, _, human_total = counts(human_texts, n)
        if not model_total:
            continue
        for phrase, count in model.items():
            if count < min_count or model_where[phrase] < min_stories:
                continue
            rate = count / model_total * PER
            reference, source = (human[phrase] + smoothing) / max(human_total, 1) * PER, "corpus"
            if n == 1 and word_rate is not None and word_rate(phrase) > reference:
                reference, source = word_rate(phrase), "wordfreq"
            ratio = rate / reference
            if ratio >= min_ratio:
                found.append(Overuse(phrase, n, count, model_where[phrase], human[phrase],
                                     ratio, source))
    return drop_contained(sorted(found, key=lambda o: (-o.ratio, -o.model_count, o.phrase)))


def drop_contained(found: list[Overuse], share: float = 0.8) -> list[Overuse]:
    """`found` without the phrases whose uses are mostly (`share`) inside a longer listed one."""
    kept = []
    for item in found:
        inside = [o for o in found if o.n > item.n and f" {item.phrase} " in f" {o.phrase} "]
        if any(o.model_count >= share * item.model_count for o in inside):
            continue
        kept.append(item)
    return kept


def data_file():
    return resources.files("storyteller") / "data" / "overused.json"


@lru_cache(maxsize=1)
def load_overused() -> dict:
    """The shipped measurement: model, date, machine, reference and every phrase's numbers."""
    return json.loads(data_file().read_text(encoding="utf-8"))


def overused_phrases() -> list[str]:
    """The built-in banned list: the phrases the embedded default model over-uses, most
    over-used first."""
    return [entry["phrase"] for entry in load_overused()["phrases"]]
