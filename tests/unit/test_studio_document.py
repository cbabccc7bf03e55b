"""Document mode's pure parts: where the model writes (the marker), who wrote what (from the
version lineage), word alternatives, and the checks on notes, banned lists and candidates."""

from __future__ import annotations

import math

import pytest

from storyteller.studio import draft
from storyteller.studio.compose import (
    banned_for,
    candidate_count,
    check_document,
    check_memory,
    context_budget,
    notes_problem,
    parse_banned,
)
from storyteller.studio.config import StudioConfig
from storyteller.studio.library import StoryLibrary


@pytest.fixture()
def lib(tmp_path):
    with StoryLibrary(tmp_path / "lib.sqlite") as library:
        yield library


def test_the_marker_says_where_the_model_writes():
    split = draft.split_at_marker("She opened the door. [Continue Here] Then the rain stopped.")
    assert split.marked and split.before == "She opened the door. "
    assert split.after == " Then the rain stopped."
    text, start = draft.insert_continuation(split, "A cat walked in.")
    assert text == "She opened the door. A cat walked in. Then the rain stopped."
    assert text[start:].startswith("A cat walked in.")
    unmarked = draft.split_at_marker("The end of part one.\n")
    assert not unmarked.marked and unmarked.after == ""
    text, start = draft.insert_continuation(unmarked, "Part two began.")
    assert text == "The end of part one.\nPart two began." and start == len("The end of part one.\n")
    with pytest.raises(ValueError, match="2 \\[continue here\\] marks"):
        draft.split_at_marker("a [continue here] b [continue here] c")


def test_a_continuation_glued_mid_sentence_gets_a_space():
    text, start = draft.insert_continuation(draft.split_at_marker("He said"), "nothing.")
    assert text == "He said nothing." and text[start:] == "nothing."
    text, _ = draft.insert_continuation(draft.split_at_marker("He said"), " nothing.")
    assert text == "He said nothing."


def test_authorship_follows_the_lineage(lib):
    story = lib.create_story("Doc", mode="document")
    pasted = lib.add_generation(story.id, kind="edit", text="I wrote this opening.")
    grown = lib.add_generation(story.id, kind="continue", parent_id=pasted.id,
                               text="I wrote this opening. The model wrote this.")
    edited = lib.add_generation(story.id, kind="edit", parent_id=grown.id,
                                text="I wrote this opening. The model wrote that, I say.")
    spans = draft.authorship(lib.generations(story.id), edited.id)
    assert "".join(s.text for s in spans) == edited.text
    # The model's words the writer kept stay the model's; the word the writer changed, and
    # what they added, are theirs.
    assert spans == [draft.Span("writer", "I wrote this opening."),
                     draft.Span("ai", " The model wrote "), draft.Span("writer", "that, I say"),
                     draft.Span("ai", ".")]
    # An earlier version's authorship is its own lineage's.
    assert draft.authorship(lib.generations(story.id), grown.id) == [
        draft.Span("writer", "I wrote this opening."), draft.Span("ai", " The model wrote this.")]
    # A story written from a premise is the model's from the first word.
    written = lib.create_story("P")
    first = lib.add_generation(written.id, kind="write", text="Once upon a time.")
    assert draft.authorship(lib.generations(written.id), first.id) == [
        draft.Span("ai", "Once upon a time.")]


def test_authorship_of_a_long_story_is_quick(lib):
    import time

    story = lib.create_story("Long", mode="document")
    body = " ".join(f"word{n}" for n in range(200_000))
    pasted = lib.add_generation(story.id, kind="edit", text=body)
    grown = lib.add_generation(story.id, kind="continue", parent_id=pasted.id,
                               text=body + " and the model went on.")
    began = time.monotonic()
    spans = draft.authorship(lib.generations(story.id), grown.id)
    assert time.monotonic() - began < 2.0
    assert spans[-1] == draft.Span("ai", " and the model went on.") and len(spans) == 2


TOKENS = [(" The", math.log(0.6), [(" The", math.log(0.6)), (" A", math.log(0.3))]),
          (" old", math.log(0.5), [(" old", math.log(0.5)), (" young", math.log(0.4))]),
          (" sail", math.log(0.9), [(" sail", math.log(0.9))]),
          ("or", math.log(0.99), [("or", math.log(0.99))]),
          (".", math.log(0.8), [(".", math.log(0.8)), ("!", math.log(0.1))]),
          ("\n", math.log(0.5), [("\n", math.log(0.5))]),
          ("He", math.log(0.4), [("He", math.log(0.4)), ("She", math.log(0.35))])]


def test_words_group_tokens_and_carry_the_first_tokens_alternatives():
    words = draft.words_of(TOKENS)
    assert [w.text for w in words] == [" The", " old", " sailor.", "\n", "He"]
    assert words[1].alternatives[1][0] == " young"
    assert words[1].alternatives[1][1] == pytest.approx(0.4)
    assert words[4].start == len(" The old sailor.\n")
    assert draft.branch_prefix(TOKENS, words[1], " young") == " The young"
    assert draft.branch_prefix(TOKENS, words[4], "She") == " The old sailor.\nShe"


def test_banned_lists_are_checked_and_merged():
    phrases, problems = parse_banned("shiver down her spine\n\n  Elara \nelara\n")
    assert phrases == ["shiver down her spine", "Elara"] and problems == []
    _, problems = parse_banned("x" * 101)
    assert "101 characters" in problems[0] and "100" in problems[0]
    _, problems = parse_banned("\n".join(f"w{n}" for n in range(501)))
    assert "501 phrases" in problems[0]
    assert banned_for(["a", "B"], ["b", "c"], []) == ["a", "B", "c"]


def test_candidates_are_capped_with_a_note():
    config = StudioConfig()
    assert candidate_count(3, config) == (3, "")
    count, note = candidate_count(50, config)
    assert count == 4 and "50 candidates" in note and "4 at most" in note
    assert candidate_count(0, config)[0] == 1
    assert candidate_count("many", config)[0] == 1


def test_memory_and_document_limits_name_the_number():
    config = StudioConfig(max_notes_chars=10, max_direction_chars=5, max_document_words=3)
    problems = check_memory("a" * 11, "b" * 6, config)
    assert "11 characters" in problems[0] and "6 characters" in problems[1]
    assert check_memory("ok", "go", config) == []
    assert "4 words" in check_document("one two three four", config)[0]
    assert "empty" in check_document("  ", config)[0]
    assert check_document("one two", config) == []


def test_the_budget_and_notes_that_crowd_out_the_story():
    from storyteller.client import ServedModel

    assert context_budget(ServedModel("m", 8192), 600) == 8192 - 600 - 64
    assert context_budget(None, 600) == 2048 - 600 - 64

    class Part:
        def __init__(self, name, tokens, cut=""):
            self.name, self.tokens, self.cut = name, tokens, cut

    assert notes_problem([Part("notes", 100), Part("story so far", 900)], 1000) == ""
    message = notes_problem([Part("notes", 900, "the last 300 words of the notes")], 1000)
    assert "900 of the 1,000 tokens" in message and "Shorten the notes" in message


def test_a_library_from_before_memory_and_picks_opens_and_keeps_its_stories(tmp_path):
    import sqlite3
    from contextlib import closing

    path = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(path)) as db:  # schema 1, as the studio wrote it before
        db.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '1');
            CREATE TABLE stories (id TEXT PRIMARY KEY, title TEXT NOT NULL DEFAULT '',
                premise TEXT NOT NULL DEFAULT '', controls TEXT NOT NULL DEFAULT '{}',
                current_id TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
            CREATE TABLE generations (id TEXT PRIMARY KEY, story_id TEXT NOT NULL, parent_id TEXT,
                kind TEXT NOT NULL, text TEXT NOT NULL DEFAULT '', messages TEXT NOT NULL
                DEFAULT '[]', request TEXT NOT NULL DEFAULT '{}', settings TEXT NOT NULL DEFAULT
                '{}', model TEXT NOT NULL DEFAULT '', endpoint TEXT NOT NULL DEFAULT '',
                finish_reason TEXT, created_at TEXT NOT NULL, stars INTEGER, comment TEXT NOT
                NULL DEFAULT '');
            INSERT INTO stories VALUES ('s-1', 'Old', 'a premise', '{"genre": "fable"}', 'g-1',
                '2025-01-01', '2025-01-01');
            INSERT INTO generations VALUES ('g-1', 's-1', NULL, 'write', 'Once.', '[]', '{}', '{}',
                'm', 'e', 'stop', '2025-01-01', 4, 'good');
        """)
        db.commit()
    with StoryLibrary(path) as lib:
        story = lib.story("s-1")
        assert (story.title, story.controls, story.notes, story.banned, story.mode) == \
            ("Old", {"genre": "fable"}, "", [], "premise")
        assert lib.generation("g-1").details == {} and lib.generation("g-1").stars == 4
        lib.set_memory("s-1", notes="Mira is 34.", banned=["grey", "Grey", " a  shiver "])
        assert lib.story("s-1").banned == ["grey", "a shiver"]
        assert lib.meta("schema_version") == "2"
    with StoryLibrary(path) as lib:  # opening again changes nothing
        assert lib.story("s-1").notes == "Mira is 34."


def test_a_kept_candidate_is_chosen_over_each_other_one(lib):
    from storyteller.studio.export import pick_records

    story = lib.create_story("Doc", mode="document")
    pasted = lib.add_generation(story.id, kind="edit", text="The start.")
    prompt = [{"role": "system", "content": "s"}, {"role": "user", "content": "go on"}]
    made = [lib.add_generation(story.id, kind="continue", parent_id=pasted.id,
                               text=f"The start. Answer {n}.", messages=prompt,
                               details={"answer": f"Answer {n}.", "inserted_at": 11},
                               make_current=False) for n in range(3)]
    assert lib.story(story.id).current_id == pasted.id  # candidates wait to be kept
    lib.record_pick(story.id, made[1].id, [made[0].id, made[2].id])
    assert lib.story(story.id).current_id == made[1].id
    records = pick_records(lib.picks(), {story.id: lib.story(story.id)},
                           lib.generations(story.id))
    assert [(r["chosen"], r["rejected"]) for r in records] == [("Answer 1.", "Answer 0."),
                                                              ("Answer 1.", "Answer 2.")]
    assert all(r["prompt"] == prompt and r["judgement"] == "studio pick" for r in records)
    with pytest.raises(ValueError, match="not a version"):
        lib.record_pick(story.id, "g-elsewhere", [made[0].id])


def test_html_and_json_exports_keep_who_wrote_what(lib):
    import json

    from storyteller.studio.export import story_html, story_json

    story = lib.create_story("A <b>title</b>", mode="document")
    pasted = lib.add_generation(story.id, kind="edit", text="Mine <i>here</i>.")
    grown = lib.add_generation(story.id, kind="continue", parent_id=pasted.id,
                               text="Mine <i>here</i>. The model's & more.")
    spans = draft.authorship(lib.generations(story.id), grown.id)
    page = story_html(lib.story(story.id), spans)
    assert '<span class="ai"> The model&#x27;s &amp; more.</span>' in page
    assert "Mine &lt;i&gt;here&lt;/i&gt;." in page and "<b>title</b>" not in page
    data = json.loads(story_json(lib.story(story.id), spans, grown))
    assert data["spans"] == [{"by": "writer", "text": "Mine <i>here</i>."},
                             {"by": "ai", "text": " The model's & more."}]
    assert data["text"] == grown.text and data["version"] == grown.id
