"""What the ratings say: means per model with intervals, differences, pairwise win rates,
agreement, flagged raters and how human scores follow the automatic metrics. Pure.

Means are over items, each item first averaged over the raters who are kept: the bootstrap then
resamples stories, which is the uncertainty that matters (another draw of prompts), and a rater
who rated more items does not weigh more. Differences are paired by prompt where both models
answered it."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import mean
from typing import Any

from storyteller.ratings.agreement import (
    Alpha,
    RaterCheck,
    alpha_by_dimension,
    rater_checks,
)
from storyteller.ratings.key import Key
from storyteller.ratings.store import PreferenceRow, ScoreRow
from storyteller.stats import Interval, bootstrap_diff, bootstrap_mean

OUTCOME = {"A": 1.0, "B": 0.0, "tie": 0.5}  # for the model on side A
MIN_CORRELATION_N = 3


@dataclass(frozen=True)
class WinRate:
    model: str
    other: str
    rate: Interval  # of `model` over `other`, ties counted half, over pair items
    wins: int
    ties: int
    losses: int


@dataclass(frozen=True)
class Correlation:
    metric: str
    dimension: str
    rho: float | None
    p: float | None
    n: int


@dataclass
class Summary:
    models: list[str]
    reference: str | None
    raters: dict[str, RaterCheck]
    included: list[str]
    means: dict[str, dict[str, Interval]]
    differences: dict[str, dict[str, Interval]]  # "tuned - base" → dimension → interval
    win_rates: list[WinRate]
    alphas: list[Alpha]
    correlations: list[Correlation]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def flagged(self) -> dict[str, RaterCheck]:
        return {r: c for r, c in self.raters.items() if c.flagged}

    def to_json(self) -> dict[str, Any]:
        return {
            "models": self.models, "reference": self.reference, "counts": self.counts,
            "raters": {r: c.to_json() for r, c in self.raters.items()},
            "included_raters": self.included, "flagged_raters": sorted(self.flagged),
            "means": {m: {d: i.to_json() for d, i in dims.items()} for m, dims in self.means.items()},
            "differences": {name: {d: i.to_json() for d, i in dims.items()}
                            for name, dims in self.differences.items()},
            "pairwise": [{"model": w.model, "other": w.other, "win_rate": w.rate.to_json(),
                          "wins": w.wins, "ties": w.ties, "losses": w.losses}
                         for w in self.win_rates],
            "alpha": {a.dimension: {"value": None if a.value is None else round(a.value, 6),
                                    "items": a.items, "raters": a.raters, "verdict": a.verdict()}
                      for a in self.alphas},
            "correlations": [{"metric": c.metric, "dimension": c.dimension,
                              "rho": None if c.rho is None else round(c.rho, 6),
                              "p": None if c.p is None else round(c.p, 6), "n": c.n}
                             for c in self.correlations],
        }


def reference_model(models: Sequence[str]) -> str | None:
    """The model differences are taken against: `base` where there is one, else the first."""
    if len(models) < 2:
        return None
    return "base" if "base" in models else min(models)


def item_means(rows: Sequence[ScoreRow], raters: set[str]) -> dict[str, dict[str, float]]:
    """item → dimension → mean score over `raters`."""
    collected: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.rater in raters:
            collected[r.item][r.dimension].append(r.score)
    return {i: {d: mean(v) for d, v in dims.items()} for i, dims in collected.items()}


def _by_prompt(key: Key, items: Sequence[str], per_item: dict[str, dict[str, float]],
               model: str, dimension: str) -> dict[str, float]:
    found: dict[str, list[float]] = defaultdict(list)
    for item in items:
        info = key.items[item]
        if info.get("model") == model and dimension in per_item.get(item, {}):
            found[info["prompt_id"]].append(per_item[item][dimension])
    return {p: mean(v) for p, v in found.items()}


def _difference(key, items, per_item, model, reference, dimension, seed) -> Interval:
    ours = _by_prompt(key, items, per_item, model, dimension)
    theirs = _by_prompt(key, items, per_item, reference, dimension)
    shared = sorted(set(ours) & set(theirs))
    if len(shared) >= 2:
        return bootstrap_diff([ours[p] for p in shared], [theirs[p] for p in shared], seed=seed)
    return bootstrap_diff(list(ours.values()), list(theirs.values()), seed=seed, paired=False)


def win_rates(key: Key, prefs: Sequence[PreferenceRow], raters: set[str], reference: str | None,
              seed: int) -> list[WinRate]:
    """Per model pair: how often the first model's story was preferred (ties half), with an
    interval over pair items; the reference model is always the second of its pairs."""
    per_item: dict[str, list[float]] = defaultdict(list)
    tallies: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    items_of: dict[tuple[str, str], list[str]] = defaultdict(list)
    for p in prefs:
        if p.rater not in raters or p.item not in key.pairs:
            continue
        a, b = key.pairs[p.item]["a"]["model"], key.pairs[p.item]["b"]["model"]
        first, second = (b, a) if a == reference or (b != reference and b < a) else (a, b)
        outcome = OUTCOME[p.choice] if first == a else 1.0 - OUTCOME[p.choice]
        per_item[p.item].append(outcome)
        if p.item not in items_of[(first, second)]:
            items_of[(first, second)].append(p.item)
        tallies[(first, second)][0 if outcome == 1 else 1 if outcome == 0.5 else 2] += 1
    result = []
    for (first, second), items in sorted(items_of.items()):
        rate = bootstrap_mean([mean(per_item[i]) for i in items], seed=seed)
        wins, ties, losses = tallies[(first, second)]
        result.append(WinRate(first, second, rate, wins, ties, losses))
    return result


def _numeric(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and not math.isnan(float(value)):
        return float(value)
    return None


def correlations(key: Key, items: Sequence[str], per_item: dict[str, dict[str, float]],
                 dimensions: Sequence[str]) -> list[Correlation]:
    """Spearman's rho between each automatic metric and each human dimension, per story."""
    from scipy.stats import spearmanr

    metrics = sorted({m for i in items for m in (key.items[i].get("metrics") or {})})
    result = []
    for metric in metrics:
        for dimension in dimensions:
            pairs = [(_numeric((key.items[i].get("metrics") or {}).get(metric)),
                      per_item.get(i, {}).get(dimension)) for i in items]
            pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
            xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
            if len(pairs) < MIN_CORRELATION_N or len(set(xs)) < 2 or len(set(ys)) < 2:
                result.append(Correlation(metric, dimension, None, None, len(pairs)))
                continue
            rho, p = spearmanr(xs, ys)
            result.append(Correlation(metric, dimension, float(rho), float(p), len(pairs)))
    return result


def summarise(key: Key, scores: Sequence[ScoreRow], prefs: Sequence[PreferenceRow],
              seed: int | None = None) -> Summary:
    seed = int(key.raw.get("seed", 0)) if seed is None else seed
    checks = rater_checks(scores, key)
    everyone = sorted({r.rater for r in scores} | {p.rater for p in prefs})
    included = [r for r in everyone if not (r in checks and checks[r].flagged)]
    kept = set(included)
    stories = key.ids_of("story")
    per_item = item_means(scores, kept)
    models = key.models()
    dims = list(key.dimensions)
    means = {m: {d: bootstrap_mean([per_item[i][d] for i in stories
                                    if key.items[i].get("model") == m and d in per_item.get(i, {})],
                                   seed=seed) for d in dims} for m in models}
    reference = reference_model(models)
    differences = {}
    for model in models:
        if reference is not None and model != reference:
            differences[f"{model} - {reference}"] = {
                d: _difference(key, stories, per_item, model, reference, d, seed) for d in dims}
    kept_scores = [r for r in scores if r.rater in kept]
    counts = {"raters": len(everyone), "included_raters": len(included),
              "score_rows": len({(r.rater, r.item) for r in scores}),
              "preferences": len(prefs), "story_items": len(stories),
              "story_items_rated": sum(1 for i in stories if i in per_item)}
    return Summary(models, reference, checks, included, means, differences,
                   win_rates(key, prefs, kept, reference, seed),
                   alpha_by_dimension(kept_scores, dims, stories, included),
                   correlations(key, stories, per_item, dims), counts)
