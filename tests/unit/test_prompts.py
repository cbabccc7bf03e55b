import pytest

from storyteller.prompts import (HEADER_FIELDS, PHRASINGS, StoryRequest, length_bucket,
                                 parse_header, render_header, render_messages, render_user_message,
                                 task_of)
from storyteller.styles import HOUSE_STYLES, STYLE_RULES


def test_header_renders_known_controls_in_schema_order():
    header = render_header({"style": "moral", "genre": "fable", "tone": "warm", "colour": "red"})
    assert header == "[ Genre: fable; Style: moral; Tone: warm ]"


def test_header_follows_a_given_order_and_skips_empty_values():
    assert render_header({"genre": "fable", "tone": "", "pov": "first"}, ["pov", "genre", "tone"]) \
        == "[ POV: first; Genre: fable ]"
    assert render_header({}) == ""


def test_header_values_cannot_break_the_header():
    header = render_header({"genre": "fable; Style: x ]\nmore"})
    assert parse_header(header) == {"genre": "fable Style: x more"}


def test_parse_header_inverts_render_header():
    controls = {"genre": "science fiction", "style": "log", "tone": "wry", "audience": "adult",
                "pov": "first", "length": "short"}
    assert parse_header(render_header(controls)) == controls


def test_user_message_has_header_then_task():
    request = StoryRequest(kind="premise", controls={"genre": "fable"}, premise="A fox learns.")
    assert render_user_message(request) == \
        "[ Genre: fable ]\nWrite a story from this premise: A fox learns."


def test_every_phrasing_renders_and_they_differ():
    request = dict(controls={"genre": "mystery"}, premise="P", title="T", opening="O", context="C",
                   part=2, parts=3)
    for kind in ("premise", "title", "opening", "continuation"):
        texts = {render_user_message(StoryRequest(kind=kind, phrasing=i, **request))
                 for i in range(len(PHRASINGS[kind]))}
        assert len(texts) == len(PHRASINGS[kind])


def test_first_window_needs_only_the_premise():
    text = render_user_message(StoryRequest(kind="continuation", premise="P", part=1, parts=3))
    assert "part 1 of 3" in text


def test_request_without_its_material_is_refused():
    with pytest.raises(ValueError, match="title"):
        render_user_message(StoryRequest(kind="title"))


def test_messages_with_and_without_the_story():
    request = StoryRequest(kind="title", title="The Salt Lantern")
    messages = render_messages(request, "Once.")
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert messages[-1]["content"] == "Once."
    assert [m["role"] for m in render_messages(request, system_prompt=None)] == ["user"]


@pytest.mark.parametrize("words,bucket", [(0, "flash"), (249, "flash"), (250, "short"),
                                          (600, "medium"), (5000, "long")])
def test_length_buckets(words, bucket):
    assert length_bucket(words) == bucket


def test_schema_lists_the_header_fields():
    assert HEADER_FIELDS[:2] == ("genre", "style")


def test_a_house_style_states_its_rule_under_the_header():
    request = StoryRequest(controls={"genre": "fable", "style": "moral"}, premise="A fox learns.")
    header, rule, task = render_user_message(request).split("\n")
    assert header == "[ Genre: fable; Style: moral ]"
    assert rule.startswith('Style rule: End with a line of its own that starts "Moral: "')
    assert task == "Write a story from this premise: A fox learns."


def test_other_styles_have_no_rule_line():
    request = StoryRequest(controls={"genre": "romance", "style": "lyrical"}, premise="P")
    assert render_user_message(request) == "[ Genre: romance; Style: lyrical ]\n" \
        "Write a story from this premise: P"


def test_every_house_style_has_a_rule():
    assert set(STYLE_RULES) == set(HOUSE_STYLES)


@pytest.mark.parametrize("controls", [{}, {"genre": "fable"}, {"genre": "fable", "style": "moral"}])
def test_task_of_strips_the_header_and_the_rule(controls):
    request = StoryRequest(kind="opening", controls=controls, opening="Line one.\nLine two.")
    assert task_of(render_user_message(request)) == \
        "Continue this story from where its opening ends:\n\nLine one.\nLine two."
