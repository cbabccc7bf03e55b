"""RatingsStore: every answer a rater gave, in one SQLite file (DIR/ratings.sqlite).

`storyteller ratings import` and the app's rater page both write through this class, so an
answer means the same wherever it came from. One answer per (rater, item): writing it again
replaces it, which is what makes re-importing a corrected sheet safe. WAL journaling lets the
report read while a rater page writes; each write is one transaction.

Schema (see SCHEMA): `answers` (rater, item, kind, comment, source, recorded_at) holds one row
per answer; `scores` (rater, item, dimension, score) and `preferences` (rater, item, choice)
hold its content and go with it when it is replaced or cleared."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from storyteller.database import Database
from storyteller.ratings.scales import PAIR_CHOICES, SCALE_MAX, SCALE_MIN

SCHEMA_VERSION = "1"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS answers (
    rater       TEXT NOT NULL,
    item        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('scores', 'preference')),
    comment     TEXT NOT NULL DEFAULT '',
    source      TEXT NOT NULL DEFAULT '',
    recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (rater, item)
);
CREATE TABLE IF NOT EXISTS scores (
    rater     TEXT NOT NULL,
    item      TEXT NOT NULL,
    dimension TEXT NOT NULL,
    score     INTEGER NOT NULL CHECK (score BETWEEN {SCALE_MIN} AND {SCALE_MAX}),
    PRIMARY KEY (rater, item, dimension),
    FOREIGN KEY (rater, item) REFERENCES answers (rater, item) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS preferences (
    rater  TEXT NOT NULL,
    item   TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('A', 'B', 'tie')),
    PRIMARY KEY (rater, item),
    FOREIGN KEY (rater, item) REFERENCES answers (rater, item) ON DELETE CASCADE
);
"""

KINDS = ("scores", "preference")


@dataclass(frozen=True)
class ScoreRow:
    rater: str
    item: str
    dimension: str
    score: int


@dataclass(frozen=True)
class PreferenceRow:
    rater: str
    item: str
    choice: str


@dataclass(frozen=True)
class Answer:
    rater: str
    item: str
    kind: str
    comment: str
    source: str
    recorded_at: str


class RatingsStore(Database):
    """The ratings database. Use as a context manager, or call close().

    store = RatingsStore(Path("out/ratings/ratings.sqlite"))
    store.add_scores("rater-01", "it-7f3a2c", {"fluency": 4, "overall": 3}, comment="", source="app")
    store.add_preference("rater-01", "it-0b91de", "A", source="app")
    store.scores()  # [ScoreRow(rater, item, dimension, score), ...]

    Several writes that belong together go in `with store.transaction():` (all or nothing).
    One instance may be shared between threads; each call holds a lock."""

    def __init__(self, path: Path | str):
        super().__init__(path, SCHEMA, SCHEMA_VERSION)

    # ------------------------------------------------------------------------------- writing

    def _answer(self, rater: str, item: str, kind: str, comment: str, source: str) -> None:
        if not rater or not item:
            raise ValueError("an answer needs a rater and an item id")
        self._db.execute("DELETE FROM answers WHERE rater = ? AND item = ?", (rater, item))
        self._db.execute("INSERT INTO answers (rater, item, kind, comment, source) "
                         "VALUES (?, ?, ?, ?, ?)", (rater, item, kind, comment or "", source or ""))

    def add_scores(self, rater: str, item_id: str, scores: Mapping[str, int], comment: str = "",
                   source: str = "") -> None:
        """Record (or replace) `rater`'s scores for a story item: {dimension: whole 1–5}.
        Dimensions the request did not ask for are simply left out."""
        for dimension, score in scores.items():
            if isinstance(score, bool) or not isinstance(score, int) \
                    or not SCALE_MIN <= score <= SCALE_MAX:
                raise ValueError(f"{dimension}: {score!r} is not a whole number "
                                 f"{SCALE_MIN}–{SCALE_MAX}")
        with self.transaction():
            self._answer(rater, item_id, "scores", comment, source)
            self._db.executemany("INSERT INTO scores VALUES (?, ?, ?, ?)",
                                 [(rater, item_id, d, s) for d, s in sorted(scores.items())])

    def add_preference(self, rater: str, item_id: str, choice: str, comment: str = "",
                       source: str = "") -> None:
        """Record (or replace) `rater`'s choice for a pair item: "A", "B" or "tie"."""
        if choice not in PAIR_CHOICES:
            raise ValueError(f"{choice!r} is not one of {', '.join(PAIR_CHOICES)}")
        with self.transaction():
            self._answer(rater, item_id, "preference", comment, source)
            self._db.execute("INSERT INTO preferences VALUES (?, ?, ?)", (rater, item_id, choice))

    def clear(self, rater: str, kind: str | None = None) -> int:
        """Remove `rater`'s answers (of one kind: scores | preference); how many went."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        with self.transaction():
            sql, args = "DELETE FROM answers WHERE rater = ?", [rater]
            if kind:
                sql, args = sql + " AND kind = ?", args + [kind]
            return self._db.execute(sql, args).rowcount

    # ------------------------------------------------------------------------------- reading

    def scores(self, rater: str | None = None) -> list[ScoreRow]:
        sql = "SELECT rater, item, dimension, score FROM scores"
        rows = self._db.execute(sql + (" WHERE rater = ?" if rater else "") +
                                " ORDER BY rater, item, dimension", (rater,) if rater else ())
        return [ScoreRow(*row) for row in rows]

    def preferences(self, rater: str | None = None) -> list[PreferenceRow]:
        sql = "SELECT rater, item, choice FROM preferences"
        rows = self._db.execute(sql + (" WHERE rater = ?" if rater else "") +
                                " ORDER BY rater, item", (rater,) if rater else ())
        return [PreferenceRow(*row) for row in rows]

    def answers(self, rater: str | None = None) -> list[Answer]:
        sql = "SELECT rater, item, kind, comment, source, recorded_at FROM answers"
        rows = self._db.execute(sql + (" WHERE rater = ?" if rater else "") +
                                " ORDER BY rater, item", (rater,) if rater else ())
        return [Answer(*row) for row in rows]

    def answered(self, rater: str) -> set[str]:
        """The item ids `rater` has answered (a rater page shows what is left)."""
        rows = self._db.execute("SELECT item FROM answers WHERE rater = ?", (rater,))
        return {row[0] for row in rows}

    def raters(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT DISTINCT rater FROM answers ORDER BY 1")]
