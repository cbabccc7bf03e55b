"""Krippendorff's alpha against published values, and the rater checks that flag raters."""

from __future__ import annotations

import math

import numpy as np
import pytest

from storyteller.ratings.agreement import (
    alpha,
    alpha_by_dimension,
    rater_checks,
    reliability_matrix,
)
from storyteller.ratings.items import KEY_FORMAT
from storyteller.ratings.key import Key
from storyteller.ratings.store import RatingsStore, ScoreRow

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: four observers,
# twelve units, values 1–5, missing values (None).
K2011 = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}
K2011_ALPHA = {"nominal": 0.743, "ordinal": 0.815, "interval": 0.849, "ratio": 0.797}


@pytest.fixture
def k2011_rows(tmp_path):
    """The published data written through the store and read back, as the report reads it."""
    with RatingsStore(tmp_path / "ratings.sqlite") as store:
        for rater, values in K2011.items():
            for unit, value in enumerate(values, start=1):
                if value is not None:
                    store.add_scores(rater, f"u{unit:02d}", {"coherence": value}, source="test")
        return store.scores()


def test_reliability_matrix_puts_store_rows_in_rater_by_unit_cells(k2011_rows):
    matrix, raters, units = reliability_matrix(k2011_rows, "coherence")
    assert raters == ["A", "B", "C", "D"]
    assert units == [f"u{n:02d}" for n in range(1, 13)]
    assert matrix.shape == (4, 12)
    assert np.isnan(matrix[0, 9]) and matrix[1, 9] == 5 and matrix[3, 5] == 4
    assert int(np.sum(~np.isnan(matrix))) == sum(v is not None for vs in K2011.values() for v in vs)


@pytest.mark.parametrize("level", sorted(K2011_ALPHA))
def test_alpha_reproduces_krippendorff_2011(k2011_rows, level):
    matrix, _, _ = reliability_matrix(k2011_rows, "coherence")
    assert round(alpha(matrix, level), 3) == K2011_ALPHA[level]


def test_alpha_by_dimension_counts_pairable_units_and_raters(k2011_rows):
    units = [f"u{n:02d}" for n in range(1, 13)]
    (result,) = alpha_by_dimension(k2011_rows, ["coherence"], units, ["A", "B", "C", "D"])
    assert round(result.value, 3) == 0.815
    assert result.items == 11  # unit 12 has one value only
    assert result.raters == 4
    assert result.verdict() == "reliable"


def test_perfect_agreement_is_one_and_no_variation_is_undefined():
    same = np.array([[1, 2, 3, 4, 5, 3], [1, 2, 3, 4, 5, 3], [1, 2, 3, 4, 5, np.nan]])
    assert alpha(same) == pytest.approx(1.0)
    assert alpha(np.array([[3.0, 3.0], [3.0, 3.0]])) is None
    assert alpha(np.array([[1.0, np.nan], [np.nan, 2.0]])) is None  # no unit rated twice


def test_disagreement_lowers_alpha_below_chance_level():
    opposite = np.array([[1, 5, 1, 5, 2, 4], [5, 1, 5, 1, 4, 2]], dtype=float)
    value = alpha(opposite)
    assert value is not None and value < 0


def _key(items: dict) -> Key:
    return Key.from_json({"format": KEY_FORMAT, "raters": ["r1", "r2"], "scale": [1, 5],
                          "dimensions": ["coherence", "genre", "overall"], "items": items})


CHECK_KEY = {
    "s1": {"type": "story", "model": "tuned", "prompt_id": "p1"},
    "s2": {"type": "story", "model": "base", "prompt_id": "p1"},
    "rep": {"type": "repeat", "model": "tuned", "prompt_id": "p1", "repeat_of": "s1"},
    "c1": {"type": "attention", "check": "shuffled",
           "expect": {"dimension": "coherence", "max": 2}},
    "c2": {"type": "attention", "check": "off_genre", "expect": {"dimension": "genre", "max": 2}},
    "c3": {"type": "attention", "check": "shuffled",
           "expect": {"dimension": "coherence", "max": 2}},
}


def _rows(rater: str, scores: dict[str, dict[str, int]]) -> list[ScoreRow]:
    return [ScoreRow(rater, item, d, s) for item, dims in scores.items() for d, s in dims.items()]


def test_rater_failing_more_than_half_the_checks_is_flagged_and_half_is_not():
    key = _key(CHECK_KEY)
    careless = _rows("r1", {"c1": {"coherence": 5}, "c2": {"genre": 4}, "c3": {"coherence": 2}})
    borderline = _rows("r2", {"c1": {"coherence": 3}, "c2": {"genre": 1}})  # 1 of 2: not > half
    checks = rater_checks(careless + borderline, key)
    assert checks["r1"].flagged and checks["r1"].failed == ["c1", "c2"]
    assert "failed 2 of 3 attention checks" in checks["r1"].reasons[0]
    assert not checks["r2"].flagged and checks["r2"].checks == 2


def test_inconsistent_repeats_flag_a_rater():
    key = _key(CHECK_KEY)
    steady = _rows("r1", {"s1": {"coherence": 4, "overall": 4}, "rep": {"coherence": 5, "overall": 4}})
    erratic = _rows("r2", {"s1": {"coherence": 1, "overall": 5}, "rep": {"coherence": 4, "overall": 2}})
    checks = rater_checks(steady + erratic, key)
    assert checks["r1"].repeat_gap == pytest.approx(0.5) and not checks["r1"].flagged
    assert checks["r2"].repeat_gap == pytest.approx(3.0) and checks["r2"].flagged
    assert "3.00 points apart" in checks["r2"].reasons[0]
    assert math.isclose(checks["r2"].to_json()["repeat_gap"], 3.0)
