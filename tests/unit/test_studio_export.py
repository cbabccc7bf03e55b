"""Stories out of the library as pure functions: Markdown and plain text for people, SFT and
preference JSONL for training, and what curate's record reader makes of those records."""

from __future__ import annotations

import json

from markdown_it import MarkdownIt

from storyteller.curate.sources.structured import map_record
from storyteller.studio.export import (
    file_stem,
    jsonl_bytes,
    preference_records,
    sft_records,
    story_markdown,
    story_text,
)
from storyteller.studio.library import Generation, Story

SYSTEM = {"role": "system", "content": "You are a storyteller."}
ASK = [SYSTEM, {"role": "user", "content": "[ Genre: fable ]\nWrite a story from this premise: "
                                           "A fox lies."}]
REQUEST = {"kind": "premise", "premise": "A fox lies.", "controls": {"genre": "fable"}}


def story(title="The Fox", premise="A fox lies.", controls=None, story_id="s-1") -> Story:
    return Story(story_id, title, premise, {"genre": "fable"} if controls is None else controls,
                 None, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")


def version(version_id, text, *, kind="write", parent=None, stars=None, messages=ASK,
            request=None, story_id="s-1", comment="") -> Generation:
    if kind == "edit":
        messages, request = [], {}
    return Generation(version_id, story_id, parent, kind, text, list(messages),
                      dict(REQUEST if request is None else request), {"preset": "balanced"},
                      "" if kind == "edit" else "quickstart", "http://127.0.0.1:8000",
                      None if kind == "edit" else "stop", "2026-01-01T00:00:00Z", stars, comment)


def continuation(version_id, text, parent, stars, kind="continue") -> Generation:
    """A next part, asked as the studio asks it: premise, the end of the story so far, part."""
    ask = [SYSTEM, {"role": "user", "content": "[ Genre: fable ]\nPremise: A fox lies.\n\nThe "
                                               "story so far ends with:\n\n…\n\nWrite part 2."}]
    return version(version_id, text, kind=kind, parent=parent, stars=stars, messages=ask,
                   request={"kind": "continuation", "premise": "the story so far",
                            "context": "…", "part": 2, "parts": 3,
                            "controls": {"genre": "fable", "tone": "wry"}})


# ---------------------------------------------------------------------------------- for people


def test_markdown_has_title_controls_premise_and_paragraphs():
    shown = story(controls={"style": "moral", "genre": "fable", "tone": ""})
    md = story_markdown(shown, "First paragraph\nwith a break.\n\n\n  Second.  \n")
    assert md == ("# The Fox\n\n*genre: fable · style: moral — Premise: A fox lies.*\n\n"
                  "First paragraph  \nwith a break.\n\nSecond.\n")
    assert story_markdown(story(title="", premise="", controls={}), "x") == \
        "# Untitled story\n\nx\n"


def test_markdown_keeps_lines_of_prose_from_becoming_markdown_blocks():
    text = ("# Not a heading\n> not a quote\n- not a list\n1984. That winter.\n2) also not\n\n"
            "* * *\n\nChapter One\n===\nThen\n---\n    four spaces\n```\nfence\n~~~\n"
            "| a | b |\n|---|---|\n[x]: http://example.com\n+ plus\n_ under\n\n"
            "<b>Bold</b> claims and *stars*.")
    md = story_markdown(story(), text)
    html = MarkdownIt("commonmark").enable("table").render(md)
    assert html.count("<h1>") == 1
    for block in ("<h2", "<blockquote", "<ul", "<ol", "<hr", "<pre", "<table", "<code"):
        assert block not in html, block
    assert 'href="http://example.com"' not in html and "[x]: http://example.com" in html
    for words in ("# Not a heading", "1984. That winter.", "* * *", "four spaces", "| a | b |"):
        assert words in html
    # Inline Markdown is kept as written; HTML is escaped, so no tag the model wrote renders.
    assert "&lt;b>Bold&lt;/b> claims and *stars*." in md


def test_plain_text_and_file_stems():
    assert story_text(story(), "\nOnce.\n\nTwice.\n\n") == "The Fox\n=======\n\nOnce.\n\nTwice.\n"
    assert story_text(story(title=" A\n  long  title "), "x") == "A long title\n============\n\nx\n"
    assert story_text(story(title=""), "x").startswith("Untitled story\n==============\n")
    assert file_stem("The *Fox*: A Tale!") == "the-fox-a-tale"
    assert file_stem("Café au lait, Señor") == "cafe-au-lait-senor"
    assert file_stem("¿?") == file_stem("") == "untitled-story"
    long = file_stem("word " * 40)
    assert len(long) <= 60 and not long.endswith("-")


# ------------------------------------------------------------------------------ SFT records


def test_sft_records_keep_well_rated_versions_with_their_prompt():
    shown = story(controls={"genre": "fable", "style": "moral"})
    good = version("g-good", "Good story.", stars=5, comment="yes",
                   request={**REQUEST, "controls": {"genre": "fable", "style": "moral"}})
    fine = version("g-fine", "Fine story.", kind="regenerate", stars=4)
    poor = version("g-poor", "Poor.", kind="regenerate", stars=3)
    rated = [(shown, good), (shown, fine), (shown, poor)]
    records = sft_records(rated)
    assert [r["id"] for r in records] == ["g-good", "g-fine"]
    assert records[0] == {
        "id": "g-good", "text": "Good story.", "title": "The Fox", "premise": "A fox lies.",
        "genre": "fable", "style": "moral",
        "messages": [*ASK, {"role": "assistant", "content": "Good story."}],
        "rating": 5, "comment": "yes", "model": "quickstart", "settings": {"preset": "balanced"},
        "version_kind": "write", "source": "storyteller-studio"}
    assert [r["id"] for r in sft_records(rated, min_stars=5)] == ["g-good"]
    assert len(sft_records(rated, min_stars=1)) == 3
    # Controls that are not set are left out, not written empty.
    assert "tone" not in records[0] and "pov" not in records[0]
    assert sft_records([(shown, version("g-empty", "  \n", stars=5))]) == []


def test_an_edit_is_trained_with_the_prompt_of_what_it_edited():
    shown = story()
    first = version("g-1", "Good story.", stars=2)
    edit = version("g-2", "Good story, edited.", kind="edit", parent="g-1", stars=5)
    again = version("g-3", "Good story, edited twice.", kind="edit", parent="g-2", stars=4)
    rated = [(shown, first), (shown, edit), (shown, again)]
    records = sft_records(rated)
    assert [r["id"] for r in records] == ["g-2", "g-3"]
    assert records[0]["messages"] == [*ASK, {"role": "assistant",
                                             "content": "Good story, edited."}]
    assert records[0]["version_kind"] == "edit" and records[0]["premise"] == "A fox lies."
    assert records[0]["genre"] == "fable"  # the story's controls: an edit has no request
    # Without the version it edited at hand, an edit has no prompt and is left out ...
    assert sft_records([(shown, edit)]) == []
    # ... unless `versions` brings it (the library's every version of the story).
    assert [r["id"] for r in sft_records([(shown, edit)], versions=[first])] == ["g-2"]


def test_a_continuation_answers_with_its_new_part_only():
    shown = story()
    first = version("g-1", "Part one.", stars=3)
    grown = continuation("g-2", "Part one.\n\nPart two.", "g-1", 5)
    edited = version("g-3", "Part one.\n\nPart two, better.", kind="edit", parent="g-2", stars=4)
    rewritten = version("g-4", "Part ONE.\n\nPart two.", kind="edit", parent="g-2", stars=5)
    rated = [(shown, first), (shown, grown), (shown, edited), (shown, rewritten)]
    records = {r["id"]: r for r in sft_records(rated)}
    assert records["g-2"]["messages"][-1]["content"] == "Part two."
    assert records["g-2"]["text"] == "Part one.\n\nPart two."  # curate reads the whole story
    assert records["g-3"]["messages"][-1]["content"] == "Part two, better."
    assert records["g-3"]["messages"][:-1] == grown.messages
    # An edit that changed the story before the new part: which part answers is unknown.
    assert "g-4" not in records
    # The continuation's premise is the story's, never the request's stand-in.
    assert records["g-2"]["premise"] == "A fox lies." and records["g-2"]["tone"] == "wry"
    # Without the version it grew from, a continuation's new part cannot be told.
    assert sft_records([(shown, grown)]) == []


def test_curate_reads_the_fields_where_they_belong():
    untagged = story(controls={})
    records = sft_records([(untagged, version("g-1", "A story.", stars=5, request={}))])
    meta = map_record(records[0], {}, "feedback.jsonl", 1, None).meta
    # `kind` would have been read as the genre ("write").
    assert meta == {"id": "g-1", "title": "The Fox", "premise": "A fox lies."}
    pairs = preference_records([(untagged, version("g-1", "Best.", stars=5)),
                                (untagged, version("g-2", "Worse.", kind="regenerate", stars=1))])
    raw = map_record(pairs[0], {}, "prefs.jsonl", 1, None)
    assert raw.text == "Best." and raw.meta["premise"] == "A fox lies."
    no_premise = preference_records([
        (story(premise="", controls={}), version("g-1", "Best.", stars=5, request={})),
        (story(premise="", controls={}), version("g-2", "Worse.", stars=1, request={}))])
    assert no_premise[0]["premise"] is None and isinstance(no_premise[0]["prompt"], list)
    assert "premise" not in map_record(no_premise[0], {}, "prefs.jsonl", 1, None).meta


# ----------------------------------------------------------------------- preference records


def test_preference_pairs_come_from_versions_of_one_request():
    shown = story(title="")
    a = version("g-a", "A.", stars=2)
    b = version("g-b", "B.", kind="regenerate", stars=5)
    c = version("g-c", "C.", kind="regenerate", stars=2)
    d = version("g-d", "D.", kind="regenerate", stars=None)
    other_prompt = continuation("g-e", "A.\n\nMore.", "g-a", 1)
    records = preference_records([(shown, a), (shown, b), (shown, c), (shown, d),
                                  (shown, other_prompt)])
    # a and c tie (no pair); the unrated one and the other request's version pair with nothing.
    assert [(r["chosen"], r["rejected"]) for r in records] == [("B.", "A."), ("B.", "C.")]
    record = records[0]
    assert record["id"] == "g-b>g-a" and record["prompt"] == ASK
    assert (record["chosen_rating"], record["rejected_rating"]) == (5, 2)
    assert record["text"] == "B." and record["genre"] == "fable"
    assert record["premise"] == "A fox lies." and "title" not in record
    assert record["source"] == "storyteller-studio"


def test_pairs_never_cross_stories_and_continuations_compare_new_parts():
    one, two = story(story_id="s-1"), story(story_id="s-2")
    records = preference_records([(one, version("g-1", "One.", stars=5)),
                                  (two, version("g-2", "Two.", stars=1, story_id="s-2"))])
    assert records == []
    base = version("g-0", "Start.")
    better = continuation("g-1", "Start.\n\nGood end.", "g-0", 5)
    worse = continuation("g-2", "Start.\n\nBad end.", "g-0", 2, kind="regenerate")
    [record] = preference_records([(one, better), (one, worse)], versions=[base])
    assert (record["chosen"], record["rejected"]) == ("Good end.", "Bad end.")
    assert record["text"] == "Start.\n\nGood end."
    # The writer's edit of a version, rated higher, is preferred to what the model wrote.
    edit = version("g-3", "Start.\n\nGood end, mended.", kind="edit", parent="g-1", stars=5)
    pairs = preference_records([(one, better), (one, worse), (one, edit)], versions=[base])
    assert {(r["chosen"], r["rejected"]) for r in pairs} == {
        ("Good end.", "Bad end."), ("Good end, mended.", "Bad end.")}


def test_jsonl_bytes_round_trip():
    records = [{"id": "g-1", "text": "Línea uno\n\n“quoted” — done", "messages": []},
               {"id": "g-2", "text": "two"}]
    data = jsonl_bytes(records)
    assert data.endswith(b"\n") and data.count(b"\n") == 2
    assert "“quoted”".encode() in data  # UTF-8, not \u escapes
    assert [json.loads(line) for line in data.decode("utf-8").splitlines()] == records
    assert jsonl_bytes([]) == b""


def test_markdown_export_renders_no_html_the_model_wrote():
    from storyteller.studio.library import Story

    story = Story("s-1", "<i>Odd</i> & Co", "p <script>", {}, None, "", "")
    md = story_markdown(story, "<b>Bold</b> & <img src=x onerror=alert(1)>")
    assert md.startswith("# &lt;i>Odd&lt;/i> &amp; Co\n")
    assert "&lt;b>Bold&lt;/b> &amp; &lt;img src=x" in md and "<" not in md


# ------------------------------------------------------------- judgements, edits and thumbs


def test_star_pairs_say_where_their_judgement_came_from():
    shown = story()
    records = preference_records([(shown, version("g-a", "A.", stars=2)),
                                  (shown, version("g-b", "B.", kind="regenerate", stars=5))])
    assert [r["judgement"] for r in records] == ["studio stars"]


def test_the_writers_last_edit_is_chosen_over_what_the_model_wrote():
    from storyteller.studio.export import edit_records

    shown = story()
    written = version("g-1", "The fox lied.")
    first_edit = version("g-2", "The fox lied twice.", kind="edit", parent="g-1")
    last_edit = version("g-3", "The fox lied, and was caught.", kind="edit", parent="g-2")
    untouched = version("g-4", "Another try.", kind="regenerate")
    spaces = version("g-5", "Another   try.\n", kind="edit", parent="g-4")
    [record] = edit_records({"s-1": shown}, [written, first_edit, last_edit, untouched, spaces])
    # Only the chain's last edit counts, against the model's version it started from; an
    # edit that changed only whitespace says nothing.
    assert record["id"] == "g-3>g-1" and record["judgement"] == "writer edit"
    assert (record["chosen"], record["rejected"]) == ("The fox lied, and was caught.",
                                                      "The fox lied.")
    assert record["prompt"] == ASK and record["genre"] == "fable"
    assert record["premise"] == "A fox lies." and record["model"] == "quickstart"


def test_an_edit_pairs_only_where_it_changed_the_continuations_new_part():
    from storyteller.studio.export import edit_records

    shown = story()
    base = version("g-0", "Start.")
    grown = continuation("g-1", "Start.\n\nThe end.", "g-0", None)
    mended = version("g-2", "Start.\n\nThe better end.", kind="edit", parent="g-1")
    before = version("g-3", "START.\n\nThe end.", kind="edit", parent="g-1")
    grown_again = continuation("g-4", "Start.\n\nAnother end.", "g-0", None, kind="regenerate")
    orphan = version("g-5", "Typed by hand.", kind="edit", parent=None)
    records = edit_records({"s-1": shown}, [base, grown, mended, before, grown_again, orphan])
    assert [(r["chosen"], r["rejected"]) for r in records] == [("The better end.", "The end.")]
    assert records[0]["prompt"] == grown.messages and records[0]["tone"] == "wry"


def test_kto_records_label_stars_and_carry_no_story_to_learn_from():
    from storyteller.studio.export import kto_records

    shown = story()
    rated = [(shown, version(f"g-{stars}", f"Story {stars}.", kind="regenerate", stars=stars))
             for stars in (1, 2, 3, 4, 5)]
    records = kto_records(rated)
    assert [(r["id"], r["label"]) for r in records] == [
        ("g-1", False), ("g-2", False), ("g-4", True), ("g-5", True)]
    assert records[0]["completion"] == "Story 1." and records[0]["prompt"] == ASK
    assert all(r["judgement"] == "studio stars" and "text" not in r for r in records)
    # A bad story is no story for the fine-tuning curate: it finds no text and rejects it.
    rejected = map_record(records[0], {}, "thumbs.jsonl", 1, None)
    assert (rejected.reason, rejected.line) == ("missing_text", 1)


def test_unique_records_keep_the_first_of_an_id():
    from storyteller.studio.export import unique_records

    stars = [{"id": "g-2>g-1", "judgement": "studio stars"}]
    edits = [{"id": "g-2>g-1", "judgement": "writer edit"}, {"id": "g-3>g-1"}]
    assert unique_records(stars, edits) == [stars[0], edits[1]]
