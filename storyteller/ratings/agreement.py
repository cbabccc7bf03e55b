"""Agreement between raters (Krippendorff's alpha) and each rater's own reliability.

Alpha is computed per dimension over the regular story items, raters × items, with missing
cells allowed; ordinal by default, since a 1–5 scale is ordered but its steps need not be equal.
A rater is flagged, and left out of means and alpha, when they fail more than half of their
attention checks, or when the stories they saw twice got scores more than 1 point apart on
average (over every dimension of every repeat): either way their numbers cannot be trusted."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from storyteller.ratings.key import Key
from storyteller.ratings.scales import SCALE_MAX, SCALE_MIN

ATTENTION_FAIL_SHARE = 0.5  # flagged when the failed share is above this
REPEAT_GAP_LIMIT = 1.0  # flagged when repeats differ by more than this on average
# Krippendorff's guideline: ≥ 0.8 reliable, ≥ 0.667 enough for tentative conclusions.
ALPHA_RELIABLE, ALPHA_TENTATIVE = 0.8, 0.667


class Score(Protocol):
    rater: str
    item: str
    dimension: str
    score: int


def reliability_matrix(rows: Iterable[Score], dimension: str, raters: Sequence[str] | None = None,
                       items: Sequence[str] | None = None) -> tuple[np.ndarray, list[str], list[str]]:
    """Raters × items scores of one dimension, NaN where a rater gave none; restricted to (and
    ordered as) `raters` and `items` where given."""
    cells = {(r.rater, r.item): float(r.score) for r in rows if r.dimension == dimension}
    raters = list(raters) if raters is not None else sorted({rater for rater, _ in cells})
    items = list(items) if items is not None else sorted({item for _, item in cells})
    matrix = np.full((len(raters), len(items)), np.nan)
    row_of = {r: n for n, r in enumerate(raters)}
    col_of = {i: n for n, i in enumerate(items)}
    for (rater, item), score in cells.items():
        if rater in row_of and item in col_of:
            matrix[row_of[rater], col_of[item]] = score
    return matrix, raters, items


def pairable(matrix: np.ndarray) -> np.ndarray:
    """The columns (items) scored by two raters or more: the only ones alpha learns from."""
    return np.sum(~np.isnan(matrix), axis=0) >= 2


def alpha(matrix: np.ndarray, level: str = "ordinal",
          domain: Sequence[float] = tuple(range(SCALE_MIN, SCALE_MAX + 1))) -> float | None:
    """Krippendorff's alpha of a raters × items matrix; None where it is undefined (no item
    with two scores, or no variation at all to agree or disagree about)."""
    import krippendorff

    if matrix.size == 0:
        return None
    used = matrix[:, pairable(matrix)]
    values = used[~np.isnan(used)]
    if values.size == 0 or np.unique(values).size < 2:
        return None
    value = krippendorff.alpha(reliability_data=matrix, level_of_measurement=level,
                               value_domain=list(domain))
    return None if value is None or math.isnan(value) else float(value)


@dataclass(frozen=True)
class Alpha:
    dimension: str
    value: float | None
    items: int  # items with two scores or more
    raters: int

    def verdict(self) -> str:
        if self.value is None:
            return "undefined"
        if self.value >= ALPHA_RELIABLE:
            return "reliable"
        return "tentative" if self.value >= ALPHA_TENTATIVE else "low"


def alpha_by_dimension(rows: Sequence[Score], dimensions: Sequence[str], items: Sequence[str],
                       raters: Sequence[str], level: str = "ordinal") -> list[Alpha]:
    result = []
    for dimension in dimensions:
        matrix, _, _ = reliability_matrix(rows, dimension, raters, items)
        used = pairable(matrix)
        scored = int(np.sum(np.any(~np.isnan(matrix[:, used]), axis=1))) if used.any() else 0
        result.append(Alpha(dimension, alpha(matrix, level), int(used.sum()), scored))
    return result


@dataclass
class RaterCheck:
    """How one rater did on the attention checks and repeats, and whether they are flagged."""

    rater: str
    answered: int = 0
    checks: int = 0
    failed: list[str] = field(default_factory=list)
    repeats: int = 0
    repeat_gap: float | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return bool(self.reasons)

    def to_json(self) -> dict:
        return {"answered": self.answered, "attention_checks": self.checks,
                "attention_failed": self.failed,
                "repeats": self.repeats,
                "repeat_gap": None if self.repeat_gap is None else round(self.repeat_gap, 4),
                "flagged": self.flagged, "reasons": self.reasons}


def rater_checks(rows: Sequence[Score], key: Key) -> dict[str, RaterCheck]:
    """Each rater's attention checks and repeat consistency, flags with their reasons."""
    by_rater: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        by_rater[r.rater][r.item][r.dimension] = r.score
    result = {}
    for rater in sorted(by_rater):
        answers = by_rater[rater]
        check = RaterCheck(rater, answered=len(answers))
        for item in key.ids_of("attention"):
            expect = key.items[item]["expect"]
            score = answers.get(item, {}).get(expect["dimension"])
            if score is None:
                continue
            check.checks += 1
            if score > expect["max"]:
                check.failed.append(item)
        gaps = []
        for item in key.ids_of("repeat"):
            original = key.items[item]["repeat_of"]
            if item in answers and original in answers:
                check.repeats += 1
                shared = set(answers[item]) & set(answers[original])
                gaps += [abs(answers[item][d] - answers[original][d]) for d in sorted(shared)]
        check.repeat_gap = float(np.mean(gaps)) if gaps else None
        if check.checks and len(check.failed) > ATTENTION_FAIL_SHARE * check.checks:
            check.reasons.append(f"failed {len(check.failed)} of {check.checks} attention checks "
                                 f"({', '.join(check.failed)})")
        if check.repeat_gap is not None and check.repeat_gap > REPEAT_GAP_LIMIT:
            check.reasons.append(f"rated repeated stories {check.repeat_gap:.2f} points apart on "
                                 f"average (limit {REPEAT_GAP_LIMIT:g})")
        result[rater] = check
    return result
