"""The story library on real SQLite files, and its exports (Markdown, text, SFT and preference
JSONL) as pure functions."""

from __future__ import annotations

import json
import threading

import pytest

from storyteller.studio.export import (
    file_stem,
    jsonl_bytes,
    preference_records,
    sft_records,
    story_markdown,
    story_text,
)
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
    assert lib.search("100%%") == [] and [s.id for s in lib.search("fog_")] == [b.id] and lib.search("g_b")
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


def test_default_path_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("STORYTELLER_LIBRARY", str(tmp_path / "x.sqlite"))
    assert default_library_path() == tmp_path / "x.sqlite"
    monkeypatch.delenv("STORYTELLER_LIBRARY")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_library_path() == tmp_path / "storyteller" / "library.sqlite"


# --------------------------------------------------------------------------------- exports


def test_markdown_and_text(lib):
    story = lib.create_story("The *Fox*", "A fox lies.", {"genre": "fable", "style": "moral"})
    text = "First paragraph\nwith a break.\n\n\nSecond."
    md = story_markdown(story, text)
    assert md.startswith("# The *Fox*\n\n*genre: fable · style: moral — Premise: A fox lies.*")
    assert "First paragraph  \nwith a break.\n\nSecond." in md
    plain = story_text(story, text)
    assert plain.startswith("The *Fox*\n=========\n\nFirst paragraph")
    assert story_text(lib.create_story(), "x").startswith("Untitled story\n")
    assert file_stem("The *Fox*: A Tale!") == "the-fox-a-tale"
    assert file_stem("¿?") == "untitled-story"


def test_sft_records_keep_well_rated_versions_with_their_prompt(lib):
    story = lib.create_story("Fox", "A fox lies.", {"genre": "fable", "style": "moral"})
    good = lib.add_generation(story.id, kind="write", text="Good story.", messages=ASK,
                              request={"kind": "premise", "premise": "A fox lies.",
                                       "controls": {"genre": "fable", "style": "moral"}},
                              model="m")
    poor = lib.add_generation(story.id, kind="regenerate", text="Poor.", messages=ASK)
    edit = lib.add_generation(story.id, kind="edit", text="Good story, edited.",
                              parent_id=good.id)
    lib.rate(good.id, 5, "yes")
    lib.rate(poor.id, 2)
    lib.rate(edit.id, 4)
    rated = lib.rated()
    records = sft_records(rated, 4, lib.generations(story.id))
    assert [r["id"] for r in records] == [good.id, edit.id]
    first = records[0]
    assert first["text"] == "Good story." and first["genre"] == "fable" and first["style"] == "moral"
    assert first["messages"] == [*ASK, {"role": "assistant", "content": "Good story."}]
    assert first["rating"] == 5 and first["premise"] == "A fox lies."
    # The edit is trained on with the prompt of what it edited.
    assert records[1]["messages"][:-1] == ASK and records[1]["kind"] == "edit"
    # Without the edited version at hand, an edit has no prompt and is left out.
    assert sft_records([(s, g) for s, g in rated if g.id == edit.id], 4) == []
    assert sft_records(rated, 5, lib.generations(story.id))[0]["id"] == good.id


def test_preference_pairs_come_from_versions_of_one_request(lib):
    story = lib.create_story("", "", {"genre": "fable"})
    a = lib.add_generation(story.id, kind="write", text="A.", messages=ASK)
    b = lib.add_generation(story.id, kind="regenerate", text="B.", messages=ASK)
    c = lib.add_generation(story.id, kind="regenerate", text="C.", messages=ASK)
    other = lib.add_generation(story.id, kind="continue", text="A. More.", parent_id=a.id,
                               messages=[{"role": "user", "content": "continue"}])
    lib.rate(a.id, 2)
    lib.rate(b.id, 5)
    lib.rate(c.id, 2)
    lib.rate(other.id, 1)
    records = preference_records(lib.rated())
    assert {(r["chosen"], r["rejected"]) for r in records} == {("B.", "A."), ("B.", "C.")}
    record = records[0]
    assert record["prompt"] == ASK and record["text"] == record["chosen"]
    assert record["chosen_rating"] == 5 and record["rejected_rating"] == 2
    assert "premise" in record and record["premise"] is None and record["genre"] == "fable"
    lines = jsonl_bytes(records).decode().splitlines()
    assert [json.loads(line) for line in lines] == records
