"""From per-story metrics to per-model numbers with bootstrap intervals, and tuned − base
differences paired by prompt. Pure: generation records in, a JSON-ready summary out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from storyteller.evaluate import metrics as m
from storyteller.evaluate.markers import MarkerScore
from storyteller.finetune.heldout import StoryNll, pooled_perplexity
from storyteller.stats import (Interval, bootstrap_diff, bootstrap_mean,
                                        bootstrap_paired_statistic, bootstrap_statistic, jackknife)
from storyteller.judge import hollow_reasons
from storyteller.styles import HOUSE_STYLES

Record = dict[str, Any]


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    group: str
    better: str | None  # "higher", "lower" or None (neither is better)
    # mean: of a per-story value; share: of a per-story true/false; corpus: a statistic of the
    # model's whole set of stories.
    kind: str = "mean"
    weak: bool = False  # a reference-overlap score: weak evidence for open-ended stories
    value: Callable[[Record], Any] | None = None


def _metric(name: str) -> Callable[[Record], Any]:
    return lambda record: record["metrics"].get(name)


def _stopped(record: Record) -> bool:
    return record["finish_reason"] == "stop"


def hollow_of(record: Record) -> list[str] | None:
    """Why the story satisfies a style emptily (storyteller.judge), [] when it does not; None
    where the text is not a whole story (a continuation window), as for the style check."""
    from storyteller.evaluate.adherence import style_text

    text = style_text(record)
    if text is None:
        return None
    return list(_hollow_cached(text, str(record["controls"].get("style") or "").strip().lower()))


@lru_cache(maxsize=8192)
def _hollow_cached(text: str, style: str) -> tuple[str, ...]:
    # Each story is asked several times (overall, per style, paired, by kind): judge it once.
    return tuple(hollow_reasons(text, style))


def _hollow(record: Record) -> bool | None:
    reasons = hollow_of(record)
    return None if reasons is None else bool(reasons)


def _distinct(n: int) -> Callable[[Sequence[Record]], float]:
    def statistic(records: Sequence[Record]) -> float:
        value = m.distinct_n((r["text"] for r in records), n)
        return float("nan") if value is None else value
    return statistic


METRICS: tuple[Metric, ...] = (
    Metric("distinct_1", "distinct-1", "diversity", "higher", "corpus"),
    Metric("distinct_2", "distinct-2", "diversity", "higher", "corpus"),
    Metric("distinct_3", "distinct-3", "diversity", "higher", "corpus"),
    Metric("self_bleu", "self-BLEU", "diversity", "lower"),
    Metric("seq_rep_4", "seq-rep-4", "diversity", "lower"),
    Metric("words", "words", "length", None),
    Metric("new_tokens", "new tokens", "length", None, value=lambda r: r["new_tokens"]),
    Metric("stop_rate", "stop rate (ended by itself)", "length", "higher", "share",
           value=_stopped),
    Metric("relevance", "prompt relevance (cosine)", "relevance", "higher"),
    Metric("genre_match", "genre adherence (tagger)", "adherence", "higher", "share"),
    Metric("genre_probability", "requested-genre probability", "adherence", "higher"),
    Metric("style_pass", "house style followed", "adherence", "higher", "share"),
    Metric("style_match", "other style adherence (tagger)", "adherence", "higher", "share"),
    Metric("hollow", "hollow stories (a check passed emptily)", "adherence", "lower", "share",
           value=_hollow),
    Metric("memorised_8gram_share", "8-grams found in training", "memorisation", "lower"),
    Metric("longest_copied_span", "longest copied span (words)", "memorisation", "lower"),
    Metric("rouge_l", "ROUGE-L vs reference (weak)", "reference", None, weak=True),
    Metric("bleu", "BLEU vs reference (weak)", "reference", None, weak=True),
    Metric("readability", "Flesch reading ease", "readability", None),
    # Document continuations only (evaluate.context_metrics); other prompts have no value.
    Metric("direction_followed", "direction followed (share of its names and words used)",
           "context", "higher"),
    Metric("notes_names_kept", "notes' names kept (of those the reference passage uses)",
           "context", "higher"),
    Metric("notes_names_recalled", "names only the notes remember, kept (not in the story "
           "so far)", "context", "higher"),
    Metric("invented_names", "invented names (share of the passage's names not in the prompt)",
           "context", "lower"),
)

# The metrics reported per kind of prompt (and per optional part of a document continuation).
BY_KIND = ("direction_followed", "notes_names_kept", "notes_names_recalled", "invented_names", "relevance", "words",
           "stop_rate")


def value_of(metric: Metric, record: Record) -> float | None:
    raw = (metric.value or _metric(metric.name))(record)
    if raw is None:
        return None
    return float(raw)


def _key(record: Record) -> tuple[str, int]:
    return record["prompt_id"], record["sample"]


def by_model(records: Sequence[Record]) -> dict[str, list[Record]]:
    """Records per model label, each list in (prompt, sample) order."""
    models: dict[str, list[Record]] = {}
    for record in records:
        models.setdefault(record["model"], []).append(record)
    return {name: sorted(rs, key=_key) for name, rs in models.items()}


def paired(tuned: Sequence[Record], base: Sequence[Record]) -> tuple[list[Record], list[Record]]:
    """The records of both models for the (prompt, sample)s both have, in the same order."""
    base_by_key = {_key(r): r for r in base}
    keep = [r for r in tuned if _key(r) in base_by_key]
    return keep, [base_by_key[_key(r)] for r in keep]


def summarise_metric(metric: Metric, records: Sequence[Record], seed: int,
                     resamples: int) -> Interval:
    if metric.kind == "corpus":
        return jackknife(list(records), _distinct(int(metric.name[-1])))
    return bootstrap_mean([value_of(metric, r) for r in records], seed, resamples)


def difference(metric: Metric, tuned: Sequence[Record], base: Sequence[Record], seed: int,
               resamples: int) -> Interval:
    a, b = paired(tuned, base)
    if metric.kind == "corpus":
        return jackknife(a, _distinct(int(metric.name[-1])), paired_with=b)
    return bootstrap_diff([value_of(metric, r) for r in a], [value_of(metric, r) for r in b],
                          seed, resamples)


def perplexity_interval(items: Sequence[StoryNll], seed: int, resamples: int) -> Interval:
    return bootstrap_statistic(list(items), pooled_perplexity, seed, resamples)


def perplexity_difference(tuned: Sequence[StoryNll], base: Sequence[StoryNll], seed: int,
                          resamples: int) -> Interval:
    base_by_id = {item.id: item for item in base}
    a = [item for item in tuned if item.id in base_by_id]
    return bootstrap_paired_statistic(a, [base_by_id[item.id] for item in a], pooled_perplexity,
                                      seed, resamples)


def house_styles(records: Sequence[Record], seed: int, resamples: int) -> dict[str, Interval]:
    """The share of stories that follow their requested house style, per style."""
    result = {}
    for style in HOUSE_STYLES:
        values = [r["metrics"].get("style_pass") for r in records
                  if r["controls"].get("style") == style]
        if values:
            result[style] = bootstrap_mean([float(v) for v in values if v is not None], seed, resamples)
    return result


def hollow_styles(records: Sequence[Record], seed: int, resamples: int) -> dict[str, Interval]:
    """The share of hollow stories (storyteller.judge) per requested house style."""
    result = {}
    for style in HOUSE_STYLES:
        values = [_hollow(r) for r in records if r["controls"].get("style") == style]
        values = [float(v) for v in values if v is not None]
        if values:
            result[style] = bootstrap_mean(values, seed, resamples)
    return result


def marker_row(markers: dict[str, list[MarkerScore]], primary: str, baseline: str | None,
               seed: int, resamples: int) -> dict[str, Any]:
    """Mean per-token log-probability of the house-style markers, per model and paired."""
    row: dict[str, Any] = {"label": "house-style marker log-probability per token "
                                    "(teacher-forced on the reference stories)",
                           "group": "adherence", "better": "higher", "weak": False, "values": {}}
    for name, items in markers.items():
        row["values"][name] = bootstrap_mean([m.per_token for m in items], seed, resamples).to_json()
    if baseline and markers.get(primary) and markers.get(baseline):
        base = {m.id: m for m in markers[baseline]}
        common = [m for m in markers[primary] if m.id in base]
        row["difference"] = bootstrap_diff([m.per_token for m in common],
                                           [base[m.id].per_token for m in common],
                                           seed, resamples).to_json()
    return row


def summarise(records: Sequence[Record], perplexity: dict[str, list[StoryNll]],
              primary: str, baseline: str | None, seed: int = 0,
              resamples: int = 2000,
              markers: dict[str, list[MarkerScore]] | None = None) -> dict[str, Any]:
    """Every metric per model, and primary − baseline with its paired interval."""
    models = by_model(records)
    table: dict[str, Any] = {}
    if any(perplexity.values()):
        row = {"label": "perplexity (test stories)", "group": "fit", "better": "lower",
               "weak": False, "values": {}}
        for name, items in perplexity.items():
            row["values"][name] = perplexity_interval(items, seed, resamples).to_json()
        if baseline and perplexity.get(primary) and perplexity.get(baseline):
            row["difference"] = perplexity_difference(perplexity[primary], perplexity[baseline],
                                                      seed, resamples).to_json()
        table["perplexity"] = row
    if markers and any(markers.values()):
        table["style_markers"] = marker_row(markers, primary, baseline, seed, resamples)
    for metric in METRICS:
        row = {"label": metric.label, "group": metric.group, "better": metric.better,
               "weak": metric.weak, "values": {}}
        for name, rs in models.items():
            row["values"][name] = summarise_metric(metric, rs, seed, resamples).to_json()
        if baseline and primary in models and baseline in models:
            row["difference"] = difference(metric, models[primary], models[baseline], seed,
                                           resamples).to_json()
        table[metric.name] = row
    styles: dict[str, Any] = {}
    for name, rs in models.items():
        for style, interval in house_styles(rs, seed, resamples).items():
            styles.setdefault(style, {})[name] = interval.to_json()
    if baseline and primary in models and baseline in models:
        a, b = paired(models[primary], models[baseline])
        for style in styles:
            pick = [i for i, r in enumerate(a) if r["controls"].get("style") == style]
            styles[style]["difference"] = bootstrap_diff(
                [value_of(METRICS_BY_NAME["style_pass"], a[i]) for i in pick],
                [value_of(METRICS_BY_NAME["style_pass"], b[i]) for i in pick],
                seed, resamples).to_json()
    hollow: dict[str, Any] = {}
    for name, rs in models.items():
        for style, interval in hollow_styles(rs, seed, resamples).items():
            hollow.setdefault(style, {})[name] = interval.to_json()
    if baseline and primary in models and baseline in models:
        a, b = paired(models[primary], models[baseline])
        for style in hollow:
            pick = [i for i, r in enumerate(a) if r["controls"].get("style") == style
                    and _hollow(r) is not None and _hollow(b[i]) is not None]
            hollow[style]["difference"] = bootstrap_diff(
                [float(_hollow(a[i])) for i in pick], [float(_hollow(b[i])) for i in pick],
                seed, resamples).to_json()
    return {"metrics": table, "house_styles": styles, "hollow_styles": hollow,
            "by_kind": by_kind(records, primary, baseline, seed, resamples),
            "findings": findings(table, primary, baseline)}


def by_kind(records: Sequence[Record], primary: str, baseline: str | None, seed: int,
            resamples: int) -> dict[str, Any]:
    """BY_KIND's metrics per prompt kind (a document continuation also under each optional
    part it carries), per model and paired: {kind: {metric: {values, difference}}}, only the
    metrics a kind has values for."""
    from storyteller.evaluate.context_metrics import variant_of

    groups: dict[str, list[Record]] = {}
    for record in records:
        for name in variant_of(record):
            groups.setdefault(name, []).append(record)
    result: dict[str, Any] = {}
    for name in sorted(groups):
        models = by_model(groups[name])
        rows: dict[str, Any] = {}
        for metric_name in BY_KIND:
            metric = METRICS_BY_NAME[metric_name]
            if all(value_of(metric, r) is None for r in groups[name]):
                continue
            row = {"label": metric.label, "better": metric.better,
                   "values": {model: summarise_metric(metric, rs, seed, resamples).to_json()
                              for model, rs in models.items()}}
            if baseline and primary in models and baseline in models:
                row["difference"] = difference(metric, models[primary], models[baseline], seed,
                                               resamples).to_json()
            rows[metric_name] = row
        result[name] = {"prompts": len({r["prompt_id"] for r in groups[name]}), "metrics": rows}
    return result


METRICS_BY_NAME = {metric.name: metric for metric in METRICS}


def findings(table: dict[str, Any], primary: str, baseline: str | None) -> list[str]:
    """One sentence per metric whose difference's 95% interval excludes zero."""
    if not baseline:
        return []
    sentences = []
    for name, row in table.items():
        diff = row.get("difference")
        if not diff or diff["low"] is None or diff["n"] == 0:
            continue
        if diff["low"] > 0 or diff["high"] < 0:
            direction = "higher" if diff["value"] > 0 else "lower"
            verdict = ""
            if row["better"]:
                verdict = " (better)" if direction == row["better"] else " (worse)"
            sentences.append(
                f"{row['label']}: {primary} is {direction} than {baseline}{verdict} by "
                f"{abs(diff['value']):.3g} (95% interval of the difference "
                f"{diff['low']:.3g} to {diff['high']:.3g}, n={diff['n']})")
    return sentences
