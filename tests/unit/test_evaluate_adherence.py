"""Adherence: house-style checks on whole stories, genre by the tagger, relevance text."""

from __future__ import annotations

from storyteller.evaluate.adherence import adherence, style_text, train_tagger
from storyteller.prompts import task_of

FABLE = ("A crow found a piece of cheese and sat in a tree. A fox praised her voice until she "
         "sang, and the cheese fell.\n\nMoral: Beware of those who flatter you.")
LOG = "Log, day 1: We launched.\n\nLog, day 2: The engine hums.\n\nLog, day 4: We landed."


def pair(genre, style, story):
    return {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": story}],
            "controls": {"genre": genre, "style": style}}


def tagger():
    fables = [pair("fable", "moral", f"The fox and the crow and the cheese, tale {i}. "
                                     "The animals learned a lesson in the forest.") for i in range(6)]
    space = [pair("science fiction", "log", f"The starship crew checked the reactor, day {i}. "
                                             "Orbit, engines and the station hummed.") for i in range(6)]
    return train_tagger(fables + space)


def test_house_style_is_checked_on_the_whole_story():
    # An opening prompt's story starts in the prompt: the check sees opening + continuation.
    record = {"kind": "opening", "opening": "Log, day 1: We launched.",
              "text": "Log, day 2: The engine hums.\n\nLog, day 4: We landed."}
    assert style_text(record).startswith("Log, day 1:")
    assert style_text({"kind": "continuation", "text": LOG}) is None
    assert style_text({"kind": "premise", "text": LOG}) == LOG


def test_adherence_reports_house_styles_and_genre():
    model = tagger()
    texts = [FABLE, "The fox ran off with the cheese and the crow learned a lesson.",
             "The starship reactor hummed in orbit near the station."]
    controls = [{"genre": "fable", "style": "moral"}, {"genre": "fable", "style": "moral"},
                {"genre": "science fiction", "style": "log"}]
    results = adherence(model, texts, controls)
    assert results[0]["style_pass"] is True and results[0]["house_style"] == "moral"
    assert results[1]["style_pass"] is False
    assert "Moral" in results[1]["style_reason"]
    assert results[2]["style_pass"] is False
    assert [r["genre_match"] for r in results] == [True, True, True]
    assert results[2]["genre_probability"] > 0.5
    # A story not judged for its style (a continuation window) gets no verdict.
    skipped = adherence(model, [LOG], [{"genre": "science fiction", "style": "log"}], [None])
    assert "style_pass" not in skipped[0]


def test_task_of_drops_the_control_header():
    assert task_of("[ Genre: fable; Style: moral ]\nWrite a story about a crow.") == \
        "Write a story about a crow."
    assert task_of("Write a story about a crow.") == "Write a story about a crow."


def test_style_markers_are_found_in_the_reference_story():
    from storyteller.evaluate.markers import style_marker

    def test_pair(style, story, kind="premise"):
        return {"controls": {"style": style}, "kind": kind,
                "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": story}]}

    assert style_marker(test_pair("moral", FABLE)) == (FABLE.rpartition("\nMoral:")[0] + "\n", "Moral:")
    assert style_marker(test_pair("log", LOG)) == ("", "Log, day 1:")
    assert style_marker(test_pair("log", LOG, kind="opening")) is None  # the opening holds it
    refrain = "Row, row, the river runs.\n\nA boat.\n\nRow, row, the river runs.\n\nA bank.\n\n" \
              "Row, row, the river runs."
    before, marker = style_marker(test_pair("refrain", refrain))
    assert marker == "Row, row, the river runs." and before + marker == refrain
    assert style_marker(test_pair("noir", "I walk in.")) is None
