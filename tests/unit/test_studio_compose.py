"""The Write page's rules without a browser: controls offered per model, input limits, requests,
sampling, versions and branches, continuation, undo, and the studio's settings."""

from __future__ import annotations

import pytest

from storyteller.errors import ConfigError
from storyteller.client import ServedModel
from storyteller.prompts import CONTROL_SCHEMA, StoryRequest, render_user_message, story_request
from storyteller.studio import draft
from storyteller.studio.compose import (
    Advanced,
    check_inputs,
    model_controls,
    sampling_for,
    settings_json,
)
from storyteller.studio.config import (
    StudioConfig,
    environment_for,
    load_studio_config,
    with_environment,
)
from storyteller.studio.library import Generation

TRAINED = ServedModel("house", 2048, {
    "genres": ["fable", "mystery"], "styles": ["moral", "noir"],
    "controls": {"genre": ["mystery", "fable"], "style": ["noir", "moral"], "tone": ["wry"]},
    "header_fields": ["genre", "style", "tone"],
})


def test_controls_offer_what_the_model_was_trained_on_in_its_header_order():
    controls = model_controls(TRAINED)
    assert [c.name for c in controls] == ["genre", "style", "tone"]
    assert controls[0].options == ["fable", "mystery"] and controls[0].trained
    assert controls[2].options == ["wry"]


def test_controls_fall_back_on_the_schema_where_the_model_says_nothing():
    controls = {c.name: c for c in model_controls(ServedModel("plain"))}
    assert set(controls) == set(CONTROL_SCHEMA)
    assert controls["genre"].options == CONTROL_SCHEMA["genre"]["examples"]
    assert not controls["genre"].trained
    # Genres and styles listed only at the top level still count as trained.
    only_lists = ServedModel("m", None, {"genres": ["ghost story"], "styles": ["log"]})
    by_name = {c.name: c for c in model_controls(only_lists)}
    assert by_name["genre"].options == ["ghost story"] and by_name["genre"].trained
    assert not by_name["tone"].trained
    assert model_controls(None)[0].name == "genre"


def test_empty_and_over_long_inputs_are_refused_before_any_request():
    config = StudioConfig(max_premise_chars=50, max_title_chars=10)
    assert check_inputs("", "  ", config) == ["Write a premise or a title first."]
    assert check_inputs("A fox.", "", config) == []
    assert check_inputs("", "Title", config) == []
    long = check_inputs("x" * 51, "y" * 11, config)
    assert len(long) == 2 and "51 characters; the limit is 50" in long[0]
    assert "11 characters" in long[1]
    assert check_inputs("a\x00b", "", config)


def test_requests_use_the_premise_or_the_title_and_drop_empty_controls():
    request = story_request(" A fox lies. ", "The Fox", {"genre": "fable", "style": "", "tone": None})
    assert request == StoryRequest(kind="premise", controls={"genre": "fable"},
                                   premise="A fox lies.", title="The Fox")
    assert render_user_message(request).startswith("[ Genre: fable ]\n")
    assert story_request("", "The Fox", {}).kind == "title"


def test_sampling_takes_the_preset_then_the_advanced_panel_within_the_limits():
    config = StudioConfig(max_tokens=1000)
    balanced = sampling_for("balanced", Advanced(max_tokens=300), config)
    assert (balanced.temperature, balanced.top_p, balanced.max_tokens) == (0.8, 0.95, 300)
    own = sampling_for("focused", Advanced(temperature=1.3, min_p=0.05, seed=7, max_tokens=5000),
                       config, TRAINED)
    assert own.temperature == 1.3 and own.min_p == 0.05 and own.seed == 7
    assert own.repetition_penalty == 1.05  # the preset's, not overridden
    assert own.max_tokens == 1000
    short_context = ServedModel("m", 512)
    assert sampling_for("creative", Advanced(max_tokens=900), config, short_context).max_tokens == 256
    assert settings_json("creative", balanced)["preset"] == "creative"


def version(id_, parent=None, kind="write", text="", messages=({"role": "user", "content": "x"},)):
    return Generation(id=id_, story_id="s", parent_id=parent, kind=kind, text=text,
                      messages=list(messages) if kind != "edit" else [],
                      request={"kind": "premise", "premise": "p", "controls": {"genre": "fable"}},
                      settings={}, model="m", endpoint="e", finish_reason="stop",
                      created_at=id_, stars=None, comment="")


def test_regenerations_are_branches_and_continuations_grow_a_lineage():
    versions = [version("a", text="One."), version("b", kind="regenerate", text="Two."),
                version("c", parent="b", kind="continue", text="Two.\n\nThree."),
                version("d", parent="c", kind="edit", text="Two!\n\nThree.")]
    assert [v.id for v in draft.branches(versions, "b")] == ["a", "b"]
    assert [v.id for v in draft.lineage(versions, "d")] == ["b", "c", "d"]
    assert draft.branches(versions, "missing") == []
    # Regenerating an edited continuation asks the continuation's question again.
    assert draft.generating_request(versions, "d").id == "c"
    assert draft.regenerate_parent(versions, "c") == "b"


def test_continuation_quotes_the_end_of_the_story_and_counts_parts():
    versions = [version("a", text="x"), version("c", parent="a", kind="continue", text="x")]
    request = draft.request_from_json(versions[0].request)
    story = " ".join(f"Word{i}." for i in range(300))
    nxt = draft.continuation_request(request, story, versions, "c")
    assert nxt.kind == "continuation" and (nxt.part, nxt.parts) == (3, 4)
    assert nxt.context.endswith("Word299.") and len(nxt.context.split()) <= draft.CONTEXT_WORDS
    assert nxt.controls == {"genre": "fable"}
    assert draft.continuation_request(request, story, versions, "c", final=True).parts == 3
    titled = draft.continuation_request(StoryRequest(kind="title", title="Fog"), "x", [], None)
    assert "Fog" in titled.premise and "Premise:" in render_user_message(titled)
    assert draft.join_continuation("One.  \n", "\nTwo.") == "One.\n\nTwo."
    assert draft.join_continuation("", "Two.") == "Two."


def test_request_json_round_trips():
    request = StoryRequest(kind="premise", controls={"style": "noir"}, premise="p", title="t")
    assert draft.request_from_json(draft.request_to_json(request)) == request
    assert draft.request_from_json({"kind": "title", "title": "t", "unknown": 1}).title == "t"


def test_undo_walks_back_through_what_the_writer_saw():
    versions = [version("a"), version("b", kind="regenerate"), version("c", parent="b", kind="edit")]
    history = draft.History().moved(None, "a").moved("a", "b").moved("b", "c").moved("c", "c")
    assert history.past == ("a", "b")
    target, history = history.undo(versions, "c")
    assert target == "b"
    target, history = history.undo(versions, "b")
    assert target == "a" and history.past == ()
    # A story reopened from the library has no history: undo goes to the parent.
    assert draft.History().undo(versions, "c")[0] == "b"
    assert draft.History().undo(versions, "a")[0] is None
    assert draft.word_count("It's a dog-eared, well-worn book — truly.") == 6


def test_settings_come_from_the_file_then_the_environment(tmp_path):
    path = tmp_path / "studio.yaml"
    path.write_text("endpoint: http://file:1\nmodel: from-file\ntimeout: 30\n")
    env = {"STORYTELLER_MODEL": "from-env", "STORYTELLER_API_KEY": "k"}
    config = load_studio_config(path, env)
    assert (config.endpoint, config.model, config.api_key, config.timeout) == \
        ("http://file:1", "from-env", "k", 30.0)
    assert environment_for(config)["STORYTELLER_MODEL"] == "from-env"
    assert with_environment(config, {"STORYTELLER_ENDPOINT": "  "}).endpoint == "http://file:1"
    bad = tmp_path / "bad.yaml"
    bad.write_text("endpoint: x\nwidth: 3\ntimeout: -1\n")
    with pytest.raises(ConfigError) as error:
        load_studio_config(bad, {})
    text = str(error.value)
    assert "width" in text and "bad.yaml:2" in text


def test_the_shipped_studio_config_loads():
    from storyteller.studio.config import DEFAULT_CONFIG

    assert load_studio_config(DEFAULT_CONFIG, {}) == StudioConfig()


def test_alternatives_are_asked_only_where_the_engine_gives_them():
    from storyteller.client import ServedModel
    from storyteller.studio.compose import offers_alternatives

    assert offers_alternatives(ServedModel("m", 2048, {"capabilities": {"logprobs": True}}))
    assert not offers_alternatives(ServedModel("m", 2048, {"capabilities": {"logprobs": False}}))
    # Another OpenAI-compatible endpoint says nothing about it: it is asked.
    assert offers_alternatives(ServedModel("m", 2048, {}))
    assert not offers_alternatives(None)
