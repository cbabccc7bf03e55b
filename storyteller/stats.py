"""Bootstrap intervals: every number in a report comes with its uncertainty.

Percentile bootstrap over the items (prompts, stories or rated items) with a fixed seed, so a
report is reproducible. Differences between two models are paired where the items are shared (the
same prompts), which is what makes a small test split still informative."""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Sequence

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A statistic with its bootstrap interval and the number of items behind it."""

    value: float
    low: float
    high: float
    n: int

    def excludes_zero(self) -> bool:
        return self.n > 0 and (self.low > 0 or self.high < 0)

    def to_json(self) -> dict:
        return {"value": _num(self.value), "low": _num(self.low), "high": _num(self.high),
                "n": self.n}

    def text(self, digits: int = 3) -> str:
        if self.n == 0 or math.isnan(self.value):
            return "n/a"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) else round(float(x), 6)


NAN = Interval(float("nan"), float("nan"), float("nan"), 0)


def _clean(values: Sequence[float | None]) -> np.ndarray:
    return np.array([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)


def _percentiles(samples: np.ndarray) -> tuple[float, float]:
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_mean(values: Sequence[float | None], seed: int = 0,
                   resamples: int = RESAMPLES) -> Interval:
    """The mean of `values` (None / NaN dropped) with a percentile bootstrap interval."""
    data = _clean(values)
    if data.size == 0:
        return NAN
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, data.size, size=(resamples, data.size))
    low, high = _percentiles(data[picks].mean(axis=1))
    return Interval(float(data.mean()), low, high, int(data.size))


def bootstrap_diff(tuned: Sequence[float | None], base: Sequence[float | None], seed: int = 0,
                   resamples: int = RESAMPLES, paired: bool = True) -> Interval:
    """mean(tuned) - mean(base) with a bootstrap interval. Paired: items i of both lists belong
    together (same prompt) and are resampled together; pairs with a missing side are dropped."""
    rng = np.random.default_rng(seed)
    if paired:
        if len(tuned) != len(base):
            raise ValueError("paired bootstrap needs lists of the same length")
        keep = [(a, b) for a, b in zip(tuned, base) if a is not None and b is not None
                and not math.isnan(a) and not math.isnan(b)]
        if not keep:
            return NAN
        diffs = np.array([a - b for a, b in keep], dtype=np.float64)
        picks = rng.integers(0, diffs.size, size=(resamples, diffs.size))
        low, high = _percentiles(diffs[picks].mean(axis=1))
        return Interval(float(diffs.mean()), low, high, int(diffs.size))
    a, b = _clean(tuned), _clean(base)
    if a.size == 0 or b.size == 0:
        return NAN
    sa = a[rng.integers(0, a.size, size=(resamples, a.size))].mean(axis=1)
    sb = b[rng.integers(0, b.size, size=(resamples, b.size))].mean(axis=1)
    low, high = _percentiles(sa - sb)
    return Interval(float(a.mean() - b.mean()), low, high, int(min(a.size, b.size)))


def bootstrap_statistic(items: Sequence, statistic, seed: int = 0,
                        resamples: int = RESAMPLES) -> Interval:
    """Any statistic of a list of items (e.g. a corpus-level score) with a bootstrap interval."""
    if not items:
        return NAN
    rng = np.random.default_rng(seed)
    value = float(statistic(list(items)))
    samples = []
    for _ in range(resamples):
        picks = rng.integers(0, len(items), size=len(items))
        samples.append(float(statistic([items[i] for i in picks])))
    low, high = _percentiles(np.array(samples))
    return Interval(value, low, high, len(items))


def bootstrap_paired_statistic(tuned: Sequence, base: Sequence, statistic, seed: int = 0,
                               resamples: int = RESAMPLES) -> Interval:
    """statistic(tuned) - statistic(base) for a corpus-level statistic (e.g. distinct-n), with
    the same items (prompts) drawn for both sides in each resample."""
    if len(tuned) != len(base):
        raise ValueError("paired bootstrap needs lists of the same length")
    if not tuned:
        return NAN
    rng = np.random.default_rng(seed)
    value = float(statistic(list(tuned))) - float(statistic(list(base)))
    samples = []
    for _ in range(resamples):
        picks = rng.integers(0, len(tuned), size=len(tuned))
        samples.append(float(statistic([tuned[i] for i in picks]))
                       - float(statistic([base[i] for i in picks])))
    low, high = _percentiles(np.array(samples))
    return Interval(value, low, high, len(tuned))


def jackknife(items: Sequence, statistic, paired_with: Sequence | None = None) -> Interval:
    """A corpus-level statistic (or its difference from the same statistic on `paired_with`,
    item i of both belonging together) with a jackknife 95% interval: value ± 1.96 standard
    errors from the leave-one-out values.

    Used for statistics that depend on how many items there are, such as distinct-n: a
    bootstrap resample repeats some stories, and a story counted twice looks like repetition,
    which biases every resample downwards (or, with repeats removed, upwards through the smaller
    corpus). Leaving one story out changes the size by one story only."""
    n = len(items)
    if paired_with is not None and len(paired_with) != n:
        raise ValueError("paired jackknife needs lists of the same length")
    if n == 0:
        return NAN

    def value_of(keep: Sequence[int]) -> float:
        value = float(statistic([items[i] for i in keep]))
        if paired_with is not None:
            value -= float(statistic([paired_with[i] for i in keep]))
        return value

    value = value_of(range(n))
    if n < 2:
        return Interval(value, float("nan"), float("nan"), n)
    leave_one_out = np.array([value_of([j for j in range(n) if j != i]) for i in range(n)])
    error = math.sqrt((n - 1) / n * float(((leave_one_out - leave_one_out.mean()) ** 2).sum()))
    return Interval(value, value - 1.96 * error, value + 1.96 * error, n)
