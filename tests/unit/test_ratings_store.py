"""RatingsStore: the API the import and the rater page share."""

from __future__ import annotations

import sqlite3

import pytest

from storyteller.ratings.store import PreferenceRow, RatingsStore, ScoreRow


def test_scores_and_preferences_round_trip_and_replace(tmp_path):
    with RatingsStore(tmp_path / "r.sqlite") as store:
        store.add_scores("rater-01", "it-aaaaaa", {"overall": 4, "fluency": 5}, "nice", "a.csv")
        store.add_preference("rater-01", "it-bbbbbb", "tie", source="a.csv")
        store.add_scores("rater-01", "it-aaaaaa", {"overall": 2}, source="app")  # replaces
        assert store.scores() == [ScoreRow("rater-01", "it-aaaaaa", "overall", 2)]
        assert store.preferences() == [PreferenceRow("rater-01", "it-bbbbbb", "tie")]
        answers = {a.item: a for a in store.answers("rater-01")}
        assert answers["it-aaaaaa"].source == "app" and answers["it-aaaaaa"].comment == ""
        assert store.answered("rater-01") == {"it-aaaaaa", "it-bbbbbb"}
        assert store.raters() == ["rater-01"]


def test_clear_by_kind_keeps_the_other_kind(tmp_path):
    with RatingsStore(tmp_path / "r.sqlite") as store:
        store.add_scores("r", "i1", {"overall": 3})
        store.add_scores("r", "i2", {"overall": 4})
        store.add_preference("r", "p1", "A")
        store.add_scores("other", "i1", {"overall": 5})
        assert store.clear("r", "scores") == 2
        assert store.scores("r") == [] and len(store.preferences("r")) == 1
        assert store.scores("other") == [ScoreRow("other", "i1", "overall", 5)]


def test_bad_values_are_refused_before_anything_is_written(tmp_path):
    with RatingsStore(tmp_path / "r.sqlite") as store:
        for bad in (0, 6, 3.5, True, "4"):
            with pytest.raises(ValueError):
                store.add_scores("r", "i1", {"overall": 4, "fluency": bad})
        with pytest.raises(ValueError):
            store.add_preference("r", "p1", "C")
        assert store.answers() == []


def test_a_transaction_is_all_or_nothing(tmp_path):
    with RatingsStore(tmp_path / "r.sqlite") as store:
        store.add_scores("r", "i0", {"overall": 1})
        with pytest.raises(RuntimeError), store.transaction():
            store.clear("r")
            store.add_scores("r", "i1", {"overall": 3})
            raise RuntimeError("stop")
        assert store.scores() == [ScoreRow("r", "i0", "overall", 1)]


def test_wal_mode_schema_and_a_second_connection_sees_writes(tmp_path):
    path = tmp_path / "r.sqlite"
    with RatingsStore(path) as store:
        store.add_scores("r", "i1", {"overall": 3})
        other = sqlite3.connect(path)
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in other.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"meta", "answers", "scores", "preferences"} <= tables
        assert other.execute("SELECT score FROM scores").fetchall() == [(3,)]
        with pytest.raises(sqlite3.IntegrityError):  # the schema itself refuses out-of-range
            other.execute("INSERT INTO scores VALUES ('r', 'i1', 'fluency', 9)")
        other.close()
    with RatingsStore(path) as again:  # reopening keeps the data and the schema version
        assert again.meta("schema_version") == "1" and len(again.scores()) == 1
