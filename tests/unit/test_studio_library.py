"""The story library on real SQLite files: versions and branches, streaming updates, ratings,
search, deletion, reopening, and two threads at once. Its exports: test_studio_export.py."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing

import pytest

from storyteller.studio.library import StoryLibrary, default_library_path

ASK = [{"role": "system", "content": "s"}, {"role": "user", "content": "[ Genre: fable ]\nfox"}]


@pytest.fixture()
def lib(tmp_path):
    with StoryLibrary(tmp_path / "lib.sqlite") as library:
        yield library


def test_versions_branches_and_the_current_one(lib, tmp_path):
    story = lib.create_story("The Fox", "A fox lies.", {"genre": "fable"})
    first = lib.add_generation(story.id, kind="write", text="One.", messages=ASK,
                               request={"kind": "premise"}, settings={"preset": "balanced"},
                               model="m", endpoint="http://e", finish_reason="stop")
    again = lib.add_generation(story.id, kind="regenerate", text="Two.", messages=ASK)
    grown = lib.add_generation(story.id, kind="continue", text="Two.\n\nThree.",
                               parent_id=again.id)
    assert lib.story(story.id).current_id == grown.id
    assert lib.current_text(story.id) == "Two.\n\nThree."
    assert [g.id for g in lib.generations(story.id)] == [first.id, again.id, grown.id]
    assert lib.generation(first.id).messages == ASK
    assert lib.generation(first.id).settings == {"preset": "balanced"}
    lib.set_current(story.id, first.id)
    assert lib.current_text(story.id) == "One."
    other = lib.create_story("Other")
    with pytest.raises(ValueError, match="not a version of story"):
        lib.set_current(other.id, first.id)
    with pytest.raises(ValueError):
        lib.add_generation(other.id, kind="continue", text="x", parent_id=first.id)
    with pytest.raises(ValueError, match="kind"):
        lib.add_generation(story.id, kind="poem", text="x")
    with pytest.raises(KeyError, match="no story"):
        lib.story("s-missing")


def test_streaming_updates_rating_renaming(lib):
    story = lib.create_story("T")
    version = lib.add_generation(story.id, kind="write", text="", messages=ASK)
    lib.update_text(version.id, "Half")
    assert lib.generation(version.id).finish_reason is None
    lib.update_text(version.id, "Half a story.", "stopped")
    assert lib.generation(version.id).text == "Half a story."
    assert lib.generation(version.id).finish_reason == "stopped"
    lib.rate(version.id, 4, "nice")
    assert (lib.generation(version.id).stars, lib.generation(version.id).comment) == (4, "nice")
    for bad in (0, 6, 2.5, True, "5"):
        with pytest.raises(ValueError):
            lib.rate(version.id, bad)
    lib.rate(version.id, None)
    assert lib.generation(version.id).stars is None
    lib.rename(story.id, "New title")
    lib.set_premise(story.id, "p", {"style": "noir"})
    assert (lib.story(story.id).title, lib.story(story.id).controls) == ("New title",
                                                                         {"style": "noir"})


def test_search_matches_titles_premises_and_text_all_words(lib):
    a = lib.create_story("Lighthouse", "A keeper and a fox.")
    lib.add_generation(a.id, kind="write", text="The lamp went out at 100% dark.")
    b = lib.create_story("Fog", "A detective.")
    lib.add_generation(b.id, kind="write", text="The FOX ran into the fog_bank.")
    assert {s.id for s in lib.search("fox")} == {a.id, b.id}
    assert [s.id for s in lib.search("FOX detective")] == [b.id]
    assert [s.id for s in lib.search("100%")] == [a.id]
    assert lib.search("100%%") == [] and lib.search("1_0") == []
    assert [s.id for s in lib.search("fog_")] == [s.id for s in lib.search("g_b")] == [b.id]
    assert [s.id for s in lib.search()] == [b.id, a.id]  # newest first
    lib.rename(a.id, "Lighthouse!")
    assert lib.search()[0].id == a.id


def test_delete_takes_every_version_and_reopening_keeps_the_rest(tmp_path):
    path = tmp_path / "nested" / "lib.sqlite"
    with StoryLibrary(path) as lib:
        gone = lib.create_story("Gone")
        lib.add_generation(gone.id, kind="write", text="x")
        kept = lib.create_story("Kept")
        version = lib.add_generation(kept.id, kind="write", text="y")
        lib.rate(version.id, 5)
        lib.delete(gone.id)
        assert lib.stats() == {"stories": 1, "generations": 1, "rated": 1}
    with StoryLibrary(path) as lib:
        assert [s.title for s in lib.search()] == ["Kept"]
        [(story, rated)] = lib.rated(min_stars=5)
        assert story.id == kept.id and rated.id == version.id
        assert lib.rated(min_stars=6) == []


def test_two_threads_share_one_library(lib):
    story = lib.create_story("Busy")

    def add(n):
        for i in range(20):
            lib.add_generation(story.id, kind="write", text=f"{n}-{i}")

    threads = [threading.Thread(target=add, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(lib.generations(story.id)) == 40


def test_two_threads_with_their_own_connections_to_one_file(tmp_path):
    """The studio's sessions each open the file: WAL lets one read while another writes."""
    path = tmp_path / "lib.sqlite"
    with StoryLibrary(path) as first:
        story = first.create_story("Shared")
    errors = []

    def work(n):
        try:
            with StoryLibrary(path) as mine:
                for i in range(15):
                    made = mine.add_generation(story.id, kind="write", text=f"{n}-{i}")
                    mine.update_text(made.id, f"{n}-{i} and more", "stop")
                    mine.rate(made.id, 1 + i % 5)
                    mine.search(str(n))
        except (sqlite3.Error, KeyError, ValueError) as error:  # a thread's error is lost
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with StoryLibrary(path) as lib:
        assert lib.stats() == {"stories": 1, "generations": 30, "rated": 30}
        assert all(v.text.endswith("and more") for v in lib.generations(story.id))


def test_regenerations_are_siblings_and_text_is_kept_verbatim(lib):
    story = lib.create_story("Branches")
    first = lib.add_generation(story.id, kind="write", text="One.", messages=ASK)
    grown = lib.add_generation(story.id, kind="continue", text="One.\n\nTwo.",
                               parent_id=first.id, messages=ASK)
    redo = lib.add_generation(story.id, kind="regenerate", text="One.\n\nTwo again.",
                              parent_id=grown.parent_id, messages=ASK)
    assert [v.id for v in lib.generations(story.id) if v.parent_id == first.id] == \
        [grown.id, redo.id]
    hostile = "<b>bold</b> & <script>x</script> **not bold** 100% it's \"quoted\"\n\n  spaced  "
    edit = lib.add_generation(story.id, kind="edit", text=hostile, parent_id=redo.id)
    assert lib.generation(edit.id).text == hostile == lib.current_text(story.id)
    assert (edit.messages, edit.request, edit.settings, edit.model, edit.finish_reason) == \
        ([], {}, {}, "", None)
    assert edit.id.startswith("g-") and len(edit.id) == 12 and story.id.startswith("s-")
    assert edit.created_at.endswith("Z") and "T" in edit.created_at
    with pytest.raises(KeyError, match="no version"):
        lib.update_text("g-missing", "x")
    with pytest.raises(KeyError, match="no version"):
        lib.rate("g-missing", 3)
    with pytest.raises(KeyError, match="no story"):
        lib.add_generation("s-missing", kind="write", text="x")


def test_rated_versions_oldest_first_and_the_schema_version(lib, tmp_path):
    story = lib.create_story("Rated")
    versions = [lib.add_generation(story.id, kind="write", text=str(n)) for n in range(4)]
    for stars, made in zip((5, 2, 4, None), versions, strict=True):
        lib.rate(made.id, stars)
    assert [v.stars for _, v in lib.rated()] == [5, 2, 4]
    assert [v.stars for _, v in lib.rated(min_stars=4)] == [5, 4]
    assert all(s == lib.story(story.id) for s, _ in lib.rated())
    with closing(sqlite3.connect(tmp_path / "lib.sqlite")) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == \
            ("2",)
        # JSON columns are JSON text, readable by any SQLite client.
        assert db.execute("SELECT typeof(messages), messages FROM generations LIMIT 1"
                          ).fetchone() == ("text", "[]")


def test_default_path_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("STORYTELLER_LIBRARY", str(tmp_path / "x.sqlite"))
    assert default_library_path() == tmp_path / "x.sqlite"
    monkeypatch.delenv("STORYTELLER_LIBRARY")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_library_path() == tmp_path / "storyteller" / "library.sqlite"
