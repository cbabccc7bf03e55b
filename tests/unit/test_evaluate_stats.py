"""Bootstrap intervals and the per-model summary."""

from __future__ import annotations

import pytest

from storyteller.evaluate.aggregate import findings, paired, summarise
from storyteller.finetune.heldout import StoryNll, pooled_perplexity
from storyteller.stats import (bootstrap_diff, bootstrap_mean, bootstrap_paired_statistic,
                                        bootstrap_statistic)


def test_mean_interval_contains_the_mean_and_is_reproducible():
    values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    a = bootstrap_mean(values, seed=3)
    assert a.value == 5.5 and a.low < 5.5 < a.high and a.n == 10
    assert a == bootstrap_mean(values, seed=3)
    # The interval of a mean of 10 values with sd ~3 is roughly ±1.9.
    assert 3 < a.high - a.low < 5


def test_constant_values_give_a_point_interval_and_missing_values_are_dropped():
    interval = bootstrap_mean([1.0, None, 1.0, float("nan")])
    assert (interval.value, interval.low, interval.high, interval.n) == (1.0, 1.0, 1.0, 2)
    assert bootstrap_mean([]).n == 0


def test_paired_difference_sees_a_consistent_small_gain():
    base = [float(i) for i in range(20)]
    tuned = [b + 0.5 for b in base]
    diff = bootstrap_diff(tuned, base)
    assert diff.value == pytest.approx(0.5) and diff.low == pytest.approx(0.5)
    assert diff.excludes_zero()
    # Unpaired, the between-prompt spread swamps the same gain.
    assert not bootstrap_diff(tuned, base, paired=False).excludes_zero()


def test_statistic_intervals():
    items = [StoryNll("a", 10.0, 5), StoryNll("b", 30.0, 10), StoryNll("c", 2.0, 5)]
    assert pooled_perplexity(items) == pytest.approx(2.718281828 ** (42 / 20))
    interval = bootstrap_statistic(items, pooled_perplexity, resamples=300)
    assert interval.low <= interval.value <= interval.high
    same = bootstrap_paired_statistic(items, items, pooled_perplexity, resamples=300)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)


def record(model, prompt, text, style=None, passed=None, stop=True):
    controls = {"genre": "fable"} | ({"style": style} if style else {})
    metrics = {"words": len(text.split()), "style_pass": passed, "relevance": 0.5}
    return {"id": f"{model}-{prompt}", "model": model, "prompt_id": prompt, "sample": 0,
            "controls": controls, "text": text, "reference": "ref",
            "finish_reason": "stop" if stop else "length", "new_tokens": 10, "metrics": metrics}


def test_summary_pairs_by_prompt_and_reports_house_styles():
    records = []
    for i in range(12):
        records.append(record("tuned", f"p{i:02d}", f"story {i} of the fox", "moral", passed=i < 9))
        records.append(record("base", f"p{i:02d}", f"tale {i} of a hen", "moral", passed=False,
                              stop=i % 2 == 0))
    records.append(record("tuned", "only-tuned", "extra story", "moral", passed=True))
    summary = summarise(records, {}, "tuned", "base", resamples=500)
    styles = summary["house_styles"]["moral"]
    assert styles["tuned"]["value"] == pytest.approx(10 / 13)
    assert styles["base"]["value"] == 0.0
    # The difference uses only the 12 prompts both models answered: 9/12.
    assert styles["difference"]["value"] == pytest.approx(0.75) and styles["difference"]["n"] == 12
    assert styles["difference"]["low"] > 0
    assert summary["metrics"]["stop_rate"]["values"]["base"]["value"] == pytest.approx(0.5)
    assert any(f.startswith("house style followed: tuned is higher than base (better)")
               for f in summary["findings"])


def test_paired_keeps_common_prompts_in_order():
    a = [record("tuned", p, "x") for p in ("p1", "p2", "p3")]
    b = [record("base", p, "y") for p in ("p3", "p1")]
    left, right = paired(a, b)
    assert [r["prompt_id"] for r in left] == ["p1", "p3"] == [r["prompt_id"] for r in right]


def test_findings_only_for_intervals_excluding_zero():
    table = {"x": {"label": "x", "better": "higher",
                   "difference": {"value": 0.1, "low": -0.1, "high": 0.3, "n": 5}},
             "y": {"label": "y", "better": "lower",
                   "difference": {"value": 0.2, "low": 0.1, "high": 0.3, "n": 5}}}
    assert findings(table, "tuned", "base") == [
        "y: tuned is higher than base (worse) by 0.2 (95% interval of the difference 0.1 to 0.3, n=5)"]


def test_jackknife_of_a_mean_matches_its_standard_error():
    from storyteller.stats import jackknife

    values = [1.0, 2.0, 4.0, 7.0]
    interval = jackknife(values, lambda xs: sum(xs) / len(xs))
    # For the mean the jackknife standard error is the usual s / sqrt(n): s = 2.6458, n = 4.
    assert interval.value == 3.5
    assert interval.high - interval.value == pytest.approx(1.96 * 2.6457513 / 2, rel=1e-6)
    same = jackknife(values, lambda xs: sum(xs) / len(xs), paired_with=values)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)


def test_distinct_interval_is_centred_on_the_corpus_value():
    texts = [f"story {i} the fox " + "ran " * (i % 4 + 1) + f"over the hill {i % 3}" for i in range(12)]
    records = [record("tuned", f"p{i:02d}", t) for i, t in enumerate(texts)]
    summary = summarise(records, {}, "tuned", None, resamples=200)
    cell = summary["metrics"]["distinct_2"]["values"]["tuned"]
    assert cell["low"] < cell["value"] < cell["high"]


def test_report_cells_without_an_interval_show_the_value():
    """A metric measured on one story only has a value and no interval; the report says so
    rather than failing."""
    from storyteller.evaluate.report import fmt, fmt_diff

    assert fmt({"value": 0.5, "low": None, "high": None}) == "0.500 [no interval]"
    assert fmt_diff({"value": -0.25, "low": None, "high": None}, "higher") == \
        "-0.250 [no interval]"
    assert fmt({"value": 0.5, "low": 0.4, "high": 0.6}) == "0.500 [0.400, 0.600]"
    assert fmt(None) == fmt({"value": None}) == "n/a"
