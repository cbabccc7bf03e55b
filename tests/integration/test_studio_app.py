"""Every studio page driven with Streamlit's AppTest against a real `storyteller serve` of the
tiny model on loopback: writing, continuing, branches, undo, editing, rating, the library, the
rater page; and the error cases (down, 401, timeout) against a misbehaving fake endpoint."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from storyteller.ratings.run import load_key
from storyteller.ratings.store import RatingsStore
from storyteller.prompts import StoryRequest
from storyteller.client import StoryClient, story_messages
from storyteller.sampling import Sampling
from storyteller.processes import free_port
from storyteller.studio.library import StoryLibrary
from storyteller.studio.rater import RatingsFolder
from tests.conftest import ROOT, run_cli
from tests.integration.fake_endpoint import FakeEndpoint
from tests.unit.test_ratings_fixture import MODELS, write_generations

pytestmark = pytest.mark.slow

ENTRY = str(ROOT / "app" / "studio.py")
PREMISE = "A lamp that only lights for honest people."


@pytest.fixture()
def library_path(tmp_path):
    return tmp_path / "library.sqlite"


def studio(monkeypatch, endpoint: str, library_path, page: str | None = None,
           **env: str) -> AppTest:
    monkeypatch.setenv("STORYTELLER_ENDPOINT", endpoint)
    monkeypatch.setenv("STORYTELLER_LIBRARY", str(library_path))
    for name in ("STORYTELLER_API_KEY", "STORYTELLER_MODEL", "STORYTELLER_RATINGS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(ENTRY, default_timeout=180)
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def shown_texts(at: AppTest) -> list[str]:
    """Everything the page shows as words (not widget values)."""
    kinds = ("text", "markdown", "caption", "warning", "error", "info", "success", "subheader")
    return [str(el.value) for kind in kinds for el in getattr(at, kind)] + \
        [str(el.value) for kind in ("warning", "caption", "markdown") for el in
         getattr(at.sidebar, kind)]


def by_label(widgets, label: str):
    return next(w for w in widgets if w.label == label)


# ------------------------------------------------------------------------------------- writing


def test_write_streams_a_story_and_keeps_every_version(tiny_endpoint, monkeypatch, library_path):
    url, model, _ = tiny_endpoint
    at = studio(monkeypatch, url, library_path)
    assert at.selectbox(key="model_name").value == model
    genre = at.selectbox(key="w_genre")
    assert "fable" in genre.options and genre.options[0] == "(any)"
    at.text_input(key="w_title").input("The Lamp")
    at.text_area(key="w_premise").input(PREMISE)
    genre.select("fable")
    at.selectbox(key="w_style").select("moral")
    at.number_input(key="w_max_tokens").set_value(24)
    at.number_input(key="w_seed").set_value(7)
    at.button(key="write").click().run()
    assert not at.exception, at.exception

    with StoryLibrary(library_path) as lib:
        [story] = lib.search()
        [first] = lib.generations(story.id)
    assert story.title == "The Lamp" and story.controls == {"genre": "fable", "style": "moral"}
    request = StoryRequest(kind="premise", controls={"genre": "fable", "style": "moral"},
                           premise=PREMISE, title="The Lamp")
    messages = story_messages(request)
    assert first.kind == "write" and first.messages == messages
    assert first.model == model and first.finish_reason in ("stop", "length")
    assert first.settings["preset"] == "balanced" and first.settings["max_tokens"] == 24
    assert first.settings["temperature"] == 0.8 and first.settings["seed"] == 7
    # What streamed into the studio is what the endpoint writes for that prompt and seed.
    direct = StoryClient(url).chat(model, messages,
                                   Sampling.from_preset("balanced", max_tokens=24, seed=7))
    assert first.text == direct.text and first.text.strip()
    assert first.text.strip() in [t.value.strip() for t in at.text]
    assert any("words" in c.value for c in at.caption)
    # The house style's rule, which the request carries, is shown under the controls.
    assert any(c.value.startswith('Style rule: End with a line of its own that starts "Moral: "')
               for c in at.caption)
    assert 'Style rule: End with a line' in messages[1]["content"]

    at.button(key="continue").click().run()
    at.button(key="regenerate").click().run()
    assert not at.exception, at.exception
    with StoryLibrary(library_path) as lib:
        first, grown, again = lib.generations(story.id)
        assert lib.story(story.id).current_id == again.id
    assert grown.kind == "continue" and grown.parent_id == first.id
    assert grown.text.startswith(first.text.rstrip()) and len(grown.text) > len(first.text)
    assert "The story so far ends with" in grown.messages[-1]["content"]
    # The regeneration re-asks the continuation's question, as a branch beside it.
    assert again.kind == "regenerate" and again.parent_id == first.id
    assert again.messages == grown.messages
    branch = at.radio[0]
    assert branch.label == "Version" and len(branch.options) == 2

    branch.set_value(grown.id).run()
    at.button(key="undo").click().run()
    with StoryLibrary(library_path) as lib:
        assert lib.story(story.id).current_id == again.id  # undo of the switch

    by_label(at.toggle, "Edit").set_value(True).run()
    at.text_area(key=f"edit_{again.id}").input("My own ending.")
    at.button(key="save_edit").click().run()
    feedback = at.feedback[0]
    feedback.set_value(4).run()
    by_label(at.text_input, "Comment").input("clear and short")
    by_label(at.button, "Save rating").click().run()
    assert not at.exception, at.exception
    with StoryLibrary(library_path) as lib:
        edit = lib.generations(story.id)[-1]
        assert edit.kind == "edit" and edit.text == "My own ending." and edit.parent_id == again.id
        assert (edit.stars, edit.comment) == (5, "clear and short")
    assert "My own ending." in [t.value for t in at.text]
    at.button(key="undo").click().run()
    with StoryLibrary(library_path) as lib:
        assert lib.story(story.id).current_id == again.id


def test_the_controls_follow_the_models_storyteller_json(tiny_endpoint, monkeypatch, library_path):
    url, model, model_dir = tiny_endpoint
    import json

    meta = json.loads((model_dir / "storyteller.json").read_text())
    at = studio(monkeypatch, url, library_path)
    assert at.selectbox(key="w_genre").options[1:] == sorted(meta["controls"]["genre"])
    assert at.selectbox(key="w_style").options[1:] == sorted(meta["controls"]["style"])
    assert at.segmented_control(key="w_preset").value == "balanced"


# ------------------------------------------------------------------------------------- errors


def test_refused_input_never_reaches_the_endpoint(monkeypatch, library_path):
    with FakeEndpoint("slow") as fake:
        at = studio(monkeypatch, fake.url, library_path)
        at.button(key="write").click().run()
        assert "Write a premise or a title first." in [e.value for e in at.error]
        at.text_area(key="w_premise").input("x" * 2001)
        at.button(key="write").click().run()
        assert any("2,001 characters; the limit is 2,000" in e.value for e in at.error)
        assert not at.exception and fake.chat_requests == 0
    with StoryLibrary(library_path) as lib:
        assert lib.stats()["stories"] == 0


def test_endpoint_down_gives_a_message_and_a_working_studio(monkeypatch, library_path):
    at = studio(monkeypatch, f"http://127.0.0.1:{free_port()}", library_path)
    assert any("Cannot reach the endpoint" in w.value for w in at.sidebar.warning)
    assert at.button(key="write").disabled
    at.switch_page("views/library.py").run()
    assert not at.exception and any("No stories yet" in i.value for i in at.info)


def test_unauthorized_and_revoked_keys_are_explained(monkeypatch, library_path):
    with FakeEndpoint("unauthorized") as fake:
        at = studio(monkeypatch, fake.url, library_path)
        assert any("needs an API key" in w.value for w in at.sidebar.warning)
        at.text_input(key="api_key_typed").input("wrong-key").run()
        assert any("refused the API key" in w.value for w in at.sidebar.warning)
        assert not at.exception
    with FakeEndpoint("revoked") as fake:
        at = studio(monkeypatch, fake.url, library_path)
        at.text_area(key="w_premise").input(PREMISE)
        at.button(key="write").click().run()
        assert any("needs an API key" in w.value for w in at.warning)
        assert not at.exception and fake.chat_requests >= 1
    with StoryLibrary(library_path) as lib:
        assert lib.stats()["stories"] == 0  # nothing half-made is kept


def test_a_timeout_is_a_message(monkeypatch, library_path, tmp_path):
    config = tmp_path / "studio.yaml"
    config.write_text("timeout: 1\n")
    with FakeEndpoint("slow", delay=4) as fake:
        at = studio(monkeypatch, fake.url, library_path, STORYTELLER_STUDIO_CONFIG=str(config))
        at.text_area(key="w_premise").input(PREMISE)
        at.button(key="write").click().run()
        assert any("No answer within 1 s" in w.value for w in at.warning)
        assert not at.exception


def test_the_api_key_is_never_shown(monkeypatch, library_path):
    secret = "sk-studio-secret-0042"
    with FakeEndpoint("unauthorized") as fake:
        at = studio(monkeypatch, fake.url, library_path, STORYTELLER_API_KEY=secret)
        for page in (None, "views/library.py", "views/rate.py"):
            if page:
                at.switch_page(page).run()
            assert all(secret not in text for text in shown_texts(at))
            assert all(secret not in str(w.value) for w in at.sidebar.text_input)


def test_model_text_is_shown_as_text_not_html(tiny_endpoint, monkeypatch, library_path):
    hostile = "<b>bold</b> <img src=x onerror=alert(1)> **not bold** [link](http://x)"
    with StoryLibrary(library_path) as lib:
        story = lib.create_story("<i>Title</i>", "p", {"genre": "fable"})
        lib.add_generation(story.id, kind="write", text=hostile, messages=[{"role": "user",
                                                                           "content": "p"}])
    at = studio(monkeypatch, tiny_endpoint[0], library_path, page="views/library.py")
    by_label(at.button, "Open").click().run()
    assert hostile in [t.value for t in at.text]
    assert all("<b>" not in m.value and "<img" not in m.value for m in at.markdown)
    assert "\\<i\\>Title\\</i\\>" in [s.value for s in at.subheader]


# ------------------------------------------------------------------------------------- library


def test_library_searches_opens_renames_deletes_and_exports(tiny_endpoint, monkeypatch,
                                                            library_path):
    with StoryLibrary(library_path) as lib:
        owl = lib.create_story("The Owl", "An owl keeps the time.", {"genre": "fable"})
        lib.add_generation(owl.id, kind="write", text="The owl hooted twelve times.",
                           messages=[{"role": "user", "content": "owl"}])
        fox = lib.create_story("Fog", "A detective in fog.", {"genre": "mystery"})
        rated = lib.add_generation(fox.id, kind="write", text="Fog rolled in over the docks.",
                                   messages=[{"role": "user", "content": "fog"}])
        lib.rate(rated.id, 5, "moody")
    at = studio(monkeypatch, tiny_endpoint[0], library_path, page="views/library.py")
    assert len([b for b in at.button if b.label == "Open"]) == 2
    at.text_input(key="l_query").input("docks").run()
    assert [b.key for b in at.button if b.label == "Open"] == [f"open_{fox.id}"]
    assert any("SFT dataset (1 story)" == d.label for d in at.download_button)
    at.text_input(key=f"title_{fox.id}").input("Fog on the Docks")
    at.button(key=f"rename_{fox.id}").click().run()
    at.checkbox(key=f"sure_{fox.id}").check().run()
    at.button(key=f"delete_{fox.id}").click().run()
    assert not at.exception
    with StoryLibrary(library_path) as lib:
        assert [s.title for s in lib.search()] == ["The Owl"]
    at.text_input(key="l_query").input("").run()
    at.button(key=f"open_{owl.id}").click().run()
    assert at.text_input(key="w_title").value == "The Owl"
    assert at.text_area(key="w_premise").value == "An owl keeps the time."
    assert "The owl hooted twelve times." in [t.value for t in at.text]


# ------------------------------------------------------------------------------------- rating


@pytest.fixture()
def study(tmp_path):
    source = write_generations(tmp_path / "eval")
    result = run_cli("ratings", "make", "--from", str(source), "--raters", "2", "--items", "6",
                     "--pairwise", "2")
    assert result.returncode == 0, result.stderr
    return source.parent / "ratings" if source.is_file() else source / "ratings"


def answer_current(at: AppTest) -> None:
    for radio in at.radio:
        radio.set_value(radio.options[-1] if radio.options[0] != "A" else "A")
    at.run()
    by_label(at.button, "Save and next").click().run()


def test_rater_page_shows_blinded_items_in_the_raters_order_and_resumes(
        tiny_endpoint, monkeypatch, library_path, study):
    folder = RatingsFolder(study)
    order = [i.id for i in folder.items("rater-02")] + [p.id for p in folder.pairs("rater-02")]
    folder.close()
    at = studio(monkeypatch, tiny_endpoint[0], library_path, page="views/rate.py",
                STORYTELLER_RATINGS=str(study))
    at.text_input(key="r_typed").input("rater-99").run()
    by_label(at.button, "Start").click().run()
    assert any("not a rater id" in e.value for e in at.error)
    at.text_input(key="r_typed").input("rater-02").run()
    by_label(at.button, "Start").click().run()
    assert any(f"id {order[0]}" in c.value for c in at.caption)
    # Blinded: nothing on the page says which model wrote the story.
    refs = [*MODELS.values(), *(f"model: {m}" for m in load_key(study / "key.json").models())]
    assert not any(ref in text for ref in refs for text in shown_texts(at))
    assert by_label(at.button, "Save and next").disabled  # nothing answered yet
    answer_current(at)
    answer_current(at)
    assert any(f"id {order[2]}" in c.value for c in at.caption)
    # A new session (the rater came back later) resumes at the first unanswered item.
    at = studio(monkeypatch, tiny_endpoint[0], library_path, page="views/rate.py",
                STORYTELLER_RATINGS=str(study))
    at.text_input(key="r_typed").input("rater-02").run()
    by_label(at.button, "Start").click().run()
    assert any(f"Item 3 of {len(order)}" in c.value for c in at.caption)
    for _ in range(len(order) - 2):
        answer_current(at)
    assert any("are rated" in s.value for s in at.success)
    assert not at.exception
    with RatingsStore(study / "ratings.sqlite") as store:
        answers = store.answers("rater-02")
        assert sorted(a.item for a in answers) == sorted(order)
        assert {a.source for a in answers} == {"studio"}
        assert all(s.score == 5 for s in store.scores("rater-02"))
    result = run_cli("ratings", "report", "--from", str(study))
    assert result.returncode == 0, result.stderr


def test_the_model_picker_says_which_run_the_model_came_from(monkeypatch, tiny_endpoint,
                                                             library_path, tmp_path):
    url, name, model_dir = tiny_endpoint
    root = model_dir.parent.parent  # tiny_model(root): root/runs/tiny and root/models/tiny
    config = tmp_path / "studio.yaml"
    config.write_text(f"runs: {root / 'runs'}\nmodels: {root / 'models'}\n")
    at = studio(monkeypatch, url, library_path, STORYTELLER_STUDIO_CONFIG=str(config))
    notes = [str(c.value) for c in at.sidebar.caption]
    origin = next((n for n in notes if n.startswith("From")), None)
    assert origin is not None, notes
    assert "runs" in origin and "3 steps" in origin and "verified" in origin
