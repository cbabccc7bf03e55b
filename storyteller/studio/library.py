"""StoryLibrary: every story written in the studio and every version of it, in one SQLite file.

A story is a title, a premise and controls, with the writer's memory for it (notes, a
direction for what happens next, phrases it must never use) and how it is written (from a
premise, or as a document the writer pastes and edits); its versions (generations) each hold
the WHOLE text of that version, with the exact messages sent, the request, the sampling
settings, the model and endpoint, how it finished, the writer's stars and comment, and
`details` (what the endpoint reported: the banned-phrase report, each token's alternatives).
When the writer keeps one of several candidates, the pick is recorded (`picks`): the kept
version chosen over each other. Text is stored verbatim: showing it safely is the UI's job.

A library written before notes, direction, banned lists, details and picks existed is brought
up to date when opened (columns added with their empty defaults; nothing is rewritten). WAL
journaling and one lock let the studio's sessions share a file. The records read back (Story,
Generation, Pick) are storyteller.studio.library_records."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from storyteller.database import Database
from storyteller.errors import InputError
# Generation, Story, Pick and clean_phrases are imported from here too (export, compose, draft).
from storyteller.studio.library_records import (GENERATION_COLUMNS, STORY_COLUMNS, Generation,
                                                Pick, Story, clean_phrases, generation_from_row,
                                                story_from_row)

SCHEMA_VERSION = "2"
MODES = ("premise", "document")
KINDS = ("write", "continue", "regenerate", "edit")

SCHEMA = """
CREATE TABLE IF NOT EXISTS stories (
    id         TEXT PRIMARY KEY,
    title      TEXT NOT NULL DEFAULT '',
    premise    TEXT NOT NULL DEFAULT '',
    controls   TEXT NOT NULL DEFAULT '{}',
    current_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    notes      TEXT NOT NULL DEFAULT '',
    direction  TEXT NOT NULL DEFAULT '',
    banned     TEXT NOT NULL DEFAULT '[]',
    mode       TEXT NOT NULL DEFAULT 'premise'
);
CREATE TABLE IF NOT EXISTS generations (
    id            TEXT PRIMARY KEY,
    story_id      TEXT NOT NULL REFERENCES stories (id) ON DELETE CASCADE,
    parent_id     TEXT,
    kind          TEXT NOT NULL,
    text          TEXT NOT NULL DEFAULT '',
    messages      TEXT NOT NULL DEFAULT '[]',
    request       TEXT NOT NULL DEFAULT '{}',
    settings      TEXT NOT NULL DEFAULT '{}',
    model         TEXT NOT NULL DEFAULT '',
    endpoint      TEXT NOT NULL DEFAULT '',
    finish_reason TEXT,
    created_at    TEXT NOT NULL,
    stars         INTEGER CHECK (stars IS NULL OR stars BETWEEN 1 AND 5),
    comment       TEXT NOT NULL DEFAULT '',
    details       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS generations_story ON generations (story_id, created_at);
CREATE TABLE IF NOT EXISTS picks (
    story_id    TEXT NOT NULL REFERENCES stories (id) ON DELETE CASCADE,
    chosen_id   TEXT NOT NULL,
    rejected_id TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (chosen_id, rejected_id)
)
"""

# Columns added since schema 1: (table, column, declaration). Opening an older library adds
# them; SQLite appends added columns, which is also where the CREATE statements above put them.
ADDED_COLUMNS = (
    ("stories", "notes", "TEXT NOT NULL DEFAULT ''"),
    ("stories", "direction", "TEXT NOT NULL DEFAULT ''"),
    ("stories", "banned", "TEXT NOT NULL DEFAULT '[]'"),
    ("stories", "mode", "TEXT NOT NULL DEFAULT 'premise'"),
    ("generations", "details", "TEXT NOT NULL DEFAULT '{}'"),
)
# The writer's own global banned list lives in the library's meta table under this key.
GLOBAL_BANNED = "banned"


def default_library_path() -> Path:
    """$STORYTELLER_LIBRARY, else the user's data folder."""
    given = os.environ.get("STORYTELLER_LIBRARY", "").strip()
    if given:
        return Path(given).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "storyteller" / "library.sqlite"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(5)}"


class StoryLibrary(Database):
    """The library file. Use as a context manager, or call close(); one instance may be
    shared between threads (each call holds a lock)."""

    def __init__(self, path: Path | str):
        super().__init__(path, SCHEMA, SCHEMA_VERSION)
        self._migrate()

    def _migrate(self) -> None:
        """Bring a library from an older schema up to this one: add what is missing."""
        with self.transaction():
            for table, column, declaration in ADDED_COLUMNS:
                have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                             (SCHEMA_VERSION,))

    # ----------------------------------------------------------------------------- writing

    def create_story(self, title: str = "", premise: str = "",
                     controls: Mapping[str, str] | None = None, *, mode: str = "premise",
                     notes: str = "", direction: str = "",
                     banned: Sequence[str] = ()) -> Story:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        story_id, now = _new_id("s"), _now()
        with self.transaction():
            self._db.execute(
                "INSERT INTO stories (id, title, premise, controls, current_id, created_at, "
                "updated_at, notes, direction, banned, mode) "
                "VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?)",
                (story_id, title, premise, json.dumps(dict(controls or {})), now, now, notes,
                 direction, json.dumps(clean_phrases(banned)), mode))
        return self.story(story_id)

    def set_memory(self, story_id: str, *, notes: str | None = None,
                   direction: str | None = None, banned: Sequence[str] | None = None) -> None:
        """The story's notes, direction and banned list (None leaves one as it is)."""
        changes = {"notes": notes, "direction": direction,
                   "banned": None if banned is None else json.dumps(clean_phrases(banned))}
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return
        with self.transaction():
            self.story(story_id)
            sets = ", ".join(f"{column} = ?" for column in changes)
            self._db.execute(f"UPDATE stories SET {sets}, updated_at = ? WHERE id = ?",
                             (*changes.values(), _now(), story_id))

    def global_banned(self) -> list[str]:
        """The writer's banned list for every story (the Write pages' global list)."""
        return json.loads(self.meta(GLOBAL_BANNED) or "[]")

    def set_global_banned(self, phrases: Sequence[str]) -> None:
        self.set_meta(GLOBAL_BANNED, json.dumps(clean_phrases(phrases)))

    def record_pick(self, story_id: str, chosen_id: str, rejected_ids: Sequence[str]) -> None:
        """The writer kept `chosen_id` out of candidates: it becomes the current version, and
        it is recorded as preferred over each of `rejected_ids`."""
        now = _now()
        with self.transaction():
            for generation_id in (chosen_id, *rejected_ids):
                self._owned(story_id, generation_id)
            for rejected in rejected_ids:
                if rejected != chosen_id:
                    self._db.execute("INSERT OR REPLACE INTO picks VALUES (?, ?, ?, ?)",
                                     (story_id, chosen_id, rejected, now))
            self._db.execute("UPDATE stories SET current_id = ?, updated_at = ? WHERE id = ?",
                             (chosen_id, now, story_id))

    def set_details(self, generation_id: str, details: Mapping[str, Any]) -> None:
        """Merge `details` into what a version records about how it was made."""
        with self.transaction():
            merged = {**self.generation(generation_id).details, **dict(details)}
            self._db.execute("UPDATE generations SET details = ? WHERE id = ?",
                             (json.dumps(merged), generation_id))

    def add_generation(self, story_id: str, *, kind: str, text: str,
                       parent_id: str | None = None, messages: Sequence[dict] = (),
                       request: Mapping[str, Any] | None = None,
                       settings: Mapping[str, Any] | None = None, model: str = "",
                       endpoint: str = "", finish_reason: str | None = None,
                       details: Mapping[str, Any] | None = None,
                       make_current: bool = True) -> Generation:
        """A new version of the story, which becomes its current one (unless `make_current`
        is False: a candidate shown beside others until the writer keeps one)."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        generation_id, now = _new_id("g"), _now()
        with self.transaction():
            self.story(story_id)  # KeyError for an unknown story
            if parent_id is not None:
                self._owned(story_id, parent_id)
            self._db.execute(
                f"INSERT INTO generations ({GENERATION_COLUMNS}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, '', ?)",
                (generation_id, story_id, parent_id, kind, text, json.dumps(list(messages)),
                 json.dumps(dict(request or {})), json.dumps(dict(settings or {})), model,
                 endpoint, finish_reason, now, json.dumps(dict(details or {}))))
            if make_current:
                self._db.execute("UPDATE stories SET current_id = ?, updated_at = ? "
                                 "WHERE id = ?", (generation_id, now, story_id))
        return self.generation(generation_id)

    def update_text(self, generation_id: str, text: str, finish_reason: str | None = None) -> None:
        """The text of a version as it streams in (and how it finished, once it has)."""
        with self.transaction():
            done = self._db.execute("UPDATE generations SET text = ?, finish_reason = ? "
                                    "WHERE id = ?", (text, finish_reason, generation_id))
            if not done.rowcount:
                raise KeyError(f"no version {generation_id!r} in the library")
            self._db.execute("UPDATE stories SET updated_at = ? WHERE id = "
                             "(SELECT story_id FROM generations WHERE id = ?)",
                             (_now(), generation_id))

    def _owned(self, story_id: str, generation_id: str) -> None:
        row = self._db.execute("SELECT story_id FROM generations WHERE id = ?",
                               (generation_id,)).fetchone()
        if row is None or row[0] != story_id:
            raise ValueError(f"version {generation_id!r} is not a version of story {story_id!r}")

    def set_current(self, story_id: str, generation_id: str) -> None:
        with self.transaction():
            self._owned(story_id, generation_id)
            self._db.execute("UPDATE stories SET current_id = ?, updated_at = ? WHERE id = ?",
                             (generation_id, _now(), story_id))

    def rename(self, story_id: str, title: str) -> None:
        with self.transaction():
            self._db.execute("UPDATE stories SET title = ?, updated_at = ? WHERE id = ?",
                             (title, _now(), story_id))

    def set_premise(self, story_id: str, premise: str, controls: Mapping[str, str]) -> None:
        with self.transaction():
            self._db.execute("UPDATE stories SET premise = ?, controls = ?, updated_at = ? "
                             "WHERE id = ?",
                             (premise, json.dumps(dict(controls)), _now(), story_id))

    def rate(self, generation_id: str, stars: int | None, comment: str = "") -> None:
        if stars is not None and (isinstance(stars, bool) or not isinstance(stars, int)
                                  or not 1 <= stars <= 5):
            raise ValueError(f"stars must be a whole number 1–5 or None, not {stars!r}")
        with self.transaction():
            done = self._db.execute("UPDATE generations SET stars = ?, comment = ? WHERE id = ?",
                                    (stars, comment or "", generation_id))
            if not done.rowcount:
                raise KeyError(f"no version {generation_id!r} in the library")

    def delete(self, story_id: str) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM stories WHERE id = ?", (story_id,))

    # ----------------------------------------------------------------------------- reading

    def story(self, story_id: str) -> Story:
        rows = self._read(f"SELECT {STORY_COLUMNS} FROM stories WHERE id = ?", (story_id,))
        if not rows:
            raise KeyError(f"no story {story_id!r} in the library")
        return story_from_row(rows[0])

    def generations(self, story_id: str) -> list[Generation]:
        rows = self._read(f"SELECT {GENERATION_COLUMNS} FROM generations WHERE story_id = ? "
                          "ORDER BY created_at, rowid", (story_id,))
        return [generation_from_row(row) for row in rows]

    def generation(self, generation_id: str) -> Generation:
        rows = self._read(f"SELECT {GENERATION_COLUMNS} FROM generations WHERE id = ?",
                          (generation_id,))
        if not rows:
            raise KeyError(f"no version {generation_id!r} in the library")
        return generation_from_row(rows[0])

    def current_text(self, story_id: str) -> str:
        rows = self._read("SELECT g.text FROM stories s JOIN generations g ON g.id = s.current_id "
                          "WHERE s.id = ?", (story_id,))
        return rows[0][0] if rows else ""

    def search(self, query: str = "", limit: int = 200) -> list[Story]:
        """Newest first; every word of `query` in the title, the premise or some version."""
        sql = f"SELECT {STORY_COLUMNS} FROM stories s"
        conditions, args = [], []
        for word in query.split():
            pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conditions.append("(s.title LIKE ? ESCAPE '\\' OR s.premise LIKE ? ESCAPE '\\' OR "
                              "EXISTS (SELECT 1 FROM generations g WHERE g.story_id = s.id "
                              "AND g.text LIKE ? ESCAPE '\\'))")
            args += [pattern] * 3
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        rows = self._read(sql + " ORDER BY updated_at DESC, rowid DESC LIMIT ?", (*args, limit))
        return [story_from_row(row) for row in rows]

    def rated(self, min_stars: int | None = None) -> list[tuple[Story, Generation]]:
        rows = self._read(f"SELECT {GENERATION_COLUMNS} FROM generations "
                          "WHERE stars IS NOT NULL AND stars >= ? ORDER BY created_at, rowid",
                          (min_stars or 1,))
        stories: dict[str, Story] = {}
        pairs = []
        for row in rows:
            generation = generation_from_row(row)
            if generation.story_id not in stories:
                stories[generation.story_id] = self.story(generation.story_id)
            pairs.append((stories[generation.story_id], generation))
        return pairs

    def picks(self, story_id: str | None = None) -> list[Pick]:
        """The writer's picks among candidates (of one story, or all), oldest first."""
        where, args = ("WHERE story_id = ?", (story_id,)) if story_id else ("", ())
        rows = self._read(f"SELECT story_id, chosen_id, rejected_id, created_at FROM picks "
                          f"{where} ORDER BY created_at, rowid", args)
        return [Pick(*row) for row in rows]

    def stats(self) -> dict[str, int]:
        stories, generations, rated = self._read(
            "SELECT (SELECT COUNT(*) FROM stories), (SELECT COUNT(*) FROM generations), "
            "(SELECT COUNT(*) FROM generations WHERE stars IS NOT NULL)")[0]
        return {"stories": stories, "generations": generations, "rated": rated}


def existing_library(path: Path | None = None) -> Path:
    """The library file to read, checked: opening any other file would add the library's
    tables to it, and these commands only read."""
    path = (path or default_library_path()).expanduser()
    if not path.is_file():
        raise InputError.at(str(path), "no story library here",
                            "write a story in the studio first (storyteller app), or pass "
                            "--library FILE")
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                               "AND name = 'stories'").fetchone()
    except sqlite3.DatabaseError as error:
        found, why = None, str(error)
    else:
        why = "it has no stories table"
    if not found:
        raise InputError.at(str(path), f"not a story library ({why})",
                            "pass the library file the studio writes (its Library page shows "
                            "where), e.g. --library ~/.local/share/storyteller/library.sqlite")
    return path
