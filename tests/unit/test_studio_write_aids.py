"""The writing aids the Write and Document pages share, without a browser: where a new part
starts in the story (what a version records as its answer and a branch replaces), what a
request sends (the banned lists, the words the model weighed), what a version keeps of its
answer, a branch's details, and when candidates wait to have one kept."""

from __future__ import annotations

import math
import sys

import pytest

from storyteller.client import Completion, ServedModel, TokenChoice
from storyteller.studio import draft
from storyteller.studio.config import StudioConfig
from storyteller.studio.library import StoryLibrary
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "app"))  # the studio's own modules, as Streamlit runs them

import story_choices  # noqa: E402
import story_requests  # noqa: E402


@pytest.fixture()
def lib(tmp_path):
    with StoryLibrary(tmp_path / "lib.sqlite") as library:
        yield library


@pytest.mark.parametrize("base, piece", [
    ("", " Once upon a time."),
    ("", "\n\nThe sea."),
    ("The first part.", " The second part."),
    ("The first part.\n\n", "\nThe second part."),
    ("The first part.", ""),
])
def test_a_new_part_is_found_where_it_was_joined(base, piece):
    whole, start = draft.continued(base, piece)
    if not base.strip():
        # A first draft is the story as the model wrote it, every character.
        assert (whole, start) == (piece, 0)
        return
    assert whole == draft.join_continuation(base, piece)
    assert whole[:start].rstrip() == base.rstrip()
    assert whole[start:] == piece.strip()


def test_a_first_drafts_branch_keeps_the_text_before_the_word():
    tokens = [[" The", math.log(0.9), [[" The", math.log(0.9)]]],
              [" old", math.log(0.5), [[" old", math.log(0.5)], [" young", math.log(0.4)]]],
              [" sailor", math.log(0.8), [[" sailor", math.log(0.8)]]]]
    word = draft.words_of(tokens)[1]
    prefix = draft.branch_prefix(tokens, word, " young")
    whole, start = draft.continued("", prefix + " woman sang.")
    assert (whole, start) == (" The young woman sang.", 0)
    # A continuation's branch: the story it grew from stays, the part is rewritten.
    whole, start = draft.continued("Part one.", prefix + " woman sang.")
    assert whole == "Part one.\n\nThe young woman sang." and whole[start:] == "The young woman sang."


def test_requests_send_every_banned_list_and_ask_for_alternatives_where_the_engine_gives_them(lib):
    lib.set_global_banned(["suddenly", "Elara"])
    config = StudioConfig(banned=["tapestry"])
    sent = story_requests.banned_to_send(config, lib, "elara\nshiver down her spine\n\n")
    assert sent == ["tapestry", "suddenly", "Elara", "shiver down her spine"]
    llama = ServedModel("tiny", storyteller={"capabilities": {"logprobs": True}})
    transformers = ServedModel("tiny", storyteller={"capabilities": {"logprobs": False}})
    assert story_requests.requested_extras(llama, sent) == {
        "logprobs": True, "top_logprobs": story_requests.TOP, "banned": sent}
    assert story_requests.requested_extras(transformers, sent) == {"banned": sent}
    assert story_requests.requested_extras(transformers, []) == {}


def test_a_version_keeps_its_answer_its_words_alternatives_and_the_banned_report():
    completion = Completion("The gull.", "stop", logprobs=[
        TokenChoice("The", -0.1, [("The", -0.1), ("A", -2.5)]), TokenChoice(" gull.", -0.3)],
        steering={"banned": {"words_biased": 2, "phrases_cut": 0, "retries": 0}})
    details = story_requests.answer_details("The gull.", 12, completion, candidates=3)
    assert details == {"answer": "The gull.", "inserted_at": 12, "candidates": 3,
                       "logprobs": [["The", -0.1, [["The", -0.1], ["A", -2.5]]],
                                    [" gull.", -0.3, []]],
                       "steering": {"banned": {"words_biased": 2, "phrases_cut": 0,
                                               "retries": 0}}}
    # Cut short (an error, Stop): the answer so far, nothing the endpoint did not send.
    assert story_requests.answer_details("The g", 0, None) == {
        "answer": "The g", "inserted_at": 0, "logprobs": [], "steering": {}}


def test_a_branch_records_the_chosen_word_and_the_tokens_before_it(lib):
    tokens = [[" The", math.log(0.9), [[" The", math.log(0.9)]]],
              [" old", math.log(0.5), [[" old", math.log(0.5)], [" young", math.log(0.4)]]],
              [" sailor", math.log(0.8), [[" sailor", math.log(0.8)]]]]
    story = lib.create_story("Sea", "A sailor.")
    first = lib.add_generation(story.id, kind="write", text=" The old sailor",
                               messages=[{"role": "user", "content": "go"}],
                               details={"answer": " The old sailor", "inserted_at": 0,
                                        "logprobs": tokens})
    word = draft.words_of(tokens)[1]
    final = Completion(" woman", "stop", logprobs=[TokenChoice(" woman", -0.2)])
    details = story_requests.branch_details(first, tokens, word, " young", " The young woman",
                                            0, final)
    assert details["answer"] == " The young woman" and details["inserted_at"] == 0
    assert details["alternative"] == {"word": "old", "chosen": "young"}
    assert [t[0] for t in details["logprobs"]] == [" The", " young", " woman"]
    assert details["logprobs"][1][1] == pytest.approx(math.log(0.4))
    assert "context" not in details  # a Write version sent no document context
    # The Document's branch replaces its answer in place and keeps the context it sent.
    doc = lib.add_generation(story.id, kind="continue", parent_id=first.id,
                             text="Before. The old sailor After.",
                             details={"answer": "The old sailor", "inserted_at": 8,
                                      "context": [{"name": "story", "tokens": 3, "cut": ""}]})
    whole, details = story_requests.branch_version(doc, tokens, word, " young",
                                                   "The young woman", final)
    assert whole == "Before. The young woman After."
    assert details["context"] == [{"name": "story", "tokens": 3, "cut": ""}]


def test_candidates_wait_while_more_than_one_of_them_is_left(lib):
    story = lib.create_story("Sea", "A sailor.")
    other = lib.create_story("Land", "A farmer.")
    made = [lib.add_generation(story.id, kind="write", text=f"Story {n}.",
                               make_current=n == 0) for n in range(3)]
    shown = {"story": story.id, "ids": [m.id for m in made], "before": None}
    versions = lib.generations(story.id)
    assert story_choices.pending(shown, lib.story(story.id), versions)
    assert not story_choices.pending(shown, lib.story(other.id), lib.generations(other.id))
    assert not story_choices.pending(None, lib.story(story.id), versions)
    # Candidates deleted from under the page (the Library page) leave nothing to choose.
    assert not story_choices.pending(shown, lib.story(story.id), versions[:1])
