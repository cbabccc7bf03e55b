"""Document continuations, end to end without a model: the renderer's document kind, curate's
document pairs (notes, direction, summary taken from the stories themselves), the studio's
context within a token budget, and train = serve for the new kind with the real tokenizer."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from storyteller.curate.memory import (direction_from, direction_terms, document_pairs,
                                       extractive_summary, notes_from, notes_names, realised)
from storyteller.curate.pairs import PairOptions, Story, build_pairs, character_names
from storyteller.finetune.data import IGNORE, tokenize_pair
from storyteller.models import load_tokenizer
from storyteller.prompts import (StoryRequest, render_messages, render_user_message,
                                 summary_messages)
from storyteller.studio.context import approximate_tokens, build_context, rolling_summary

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("smollm2-135m")


@pytest.fixture(scope="module")
def count_real(tokenizer):
    def count(texts):
        return [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    return count


def starter_stories(limit: int = 40) -> list[Story]:
    stories = []
    for path in sorted((ROOT / "corpora/starter").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            sid = f"{path.stem}-{len(stories)}"
            stories.append(Story(id=sid, group=sid, text=row["text"], source={"file": path.name},
                                 meta={k: row.get(k) for k in ("title", "premise", "genre")},
                                 words=len(row["text"].split()), tokens=700))
    return stories[:: max(1, len(stories) // limit)][:limit]


def words(texts):
    return [len(t.split()) for t in texts]


ALL_PARTS = PairOptions(kinds=("document",), notes_probability=1, direction_probability=1,
                        summary_probability=1, document_context_words=150)


# --- the renderer -------------------------------------------------------------------------------

def test_document_message_has_its_labelled_sections_in_reading_order():
    request = StoryRequest(kind="document", controls={"genre": "fable"}, context="The fox ran.",
                           notes="Characters: Fox.", summary="Earlier, the fox hid.",
                           direction="The fox meets the crow.")
    assert render_user_message(request) == (
        "[ Genre: fable ]\nContinue this story from where it stops.\n\n"
        "Notes:\nCharacters: Fox.\n\n"
        "Earlier in the story (summary):\nEarlier, the fox hid.\n\n"
        "The story so far:\nThe fox ran.\n\n"
        "What happens next:\nThe fox meets the crow.")
    bare = render_user_message(StoryRequest(kind="document", context="The fox ran."))
    assert bare == "Continue this story from where it stops.\n\nThe story so far:\nThe fox ran."
    with pytest.raises(ValueError, match="story so far"):
        render_user_message(StoryRequest(kind="document", notes="n"))


def test_old_kinds_render_as_before_with_the_new_fields_unset():
    # The exact text the premise and continuation kinds rendered before document kinds existed.
    premise = StoryRequest(controls={"genre": "fable", "tone": "warm"}, premise="A fox learns.")
    assert render_user_message(premise) == \
        "[ Genre: fable; Tone: warm ]\nWrite a story from this premise: A fox learns."
    part = StoryRequest(kind="continuation", premise="P", context="C", part=2, parts=3)
    assert render_user_message(part) == \
        "Premise: P\n\nThe story so far ends with:\n\nC\n\nWrite the next part (part 2 of 3)."


def test_the_model_summary_request_goes_through_the_renderer():
    messages = summary_messages("Mira found the key. Jonas waited.", words=40)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[1]["content"].startswith("Summarise this part of a story in at most 40 words.")
    assert messages[1]["content"].endswith("Mira found the key. Jonas waited.")


# --- curate's memory ----------------------------------------------------------------------------

def test_document_pairs_are_deterministic_per_story_and_seed():
    story = starter_stories(1)[0]
    first = build_pairs(story, PairOptions(kinds=("document",)), words)
    again = build_pairs(story, PairOptions(kinds=("document",)), words)
    other = build_pairs(story, PairOptions(kinds=("document",), seed=7), words)
    assert first == again and first
    assert [p["messages"] for p in first] != [p["messages"] for p in other]
    assert {p["group"] for p in first} == {story.group} and {p["kind"] for p in first} == {"document"}


def test_a_document_pair_quotes_the_story_up_to_the_cut_and_answers_with_what_follows():
    for story in starter_stories(12):
        for pair in document_pairs(story, ALL_PARTS, words):
            request, answer = pair["request"], pair["messages"][-1]["content"]
            flat = " ".join(story.text.split())
            context = " ".join(request["context"].lstrip("…").split())
            assert context + " " + " ".join(answer.split()) in flat
            assert 20 <= len(answer.split()) <= ALL_PARTS.document_passage_words * 1.5 + 40
            if request["summary"]:
                # The summary is the story's own sentences from before the quoted window.
                before = flat[:flat.index(context)]
                for sentence in re.split(r"(?<=[.!?”\"])\s+", request["summary"]):
                    assert " ".join(sentence.split()) in before


def test_notes_name_the_characters_before_the_cut_and_quote_facts_about_them():
    story = next(s for s in starter_stories() if len(character_names(s.text)) >= 2)
    cut = len(story.text) // 2
    notes = notes_from(story.text[:cut])
    names = notes_names(notes)
    assert names and all(name in story.text[:cut] for name in names)
    for fact in notes.splitlines()[1:]:
        assert fact in story.text[:cut] and any(name in fact for name in names)


def test_a_direction_describes_the_passage_without_copying_it():
    for story in starter_stories(20):
        for pair in document_pairs(story, ALL_PARTS, words):
            direction = pair["request"]["direction"]
            if not direction:
                continue
            passage = " ".join(pair["messages"][-1]["content"].split())
            ws = direction.rstrip(".").split()
            # No five words of the direction in a row come from the passage.
            assert not any(" ".join(ws[i:i + 5]) in passage for i in range(len(ws) - 4))
            assert all(realised(direction_terms(direction), passage))


def test_optional_parts_follow_their_probabilities():
    stories = starter_stories(40)
    none = [p for s in stories for p in document_pairs(
        s, PairOptions(kinds=("document",), notes_probability=0, direction_probability=0,
                       summary_probability=0), words)]
    assert none and all(not (p["request"]["notes"] or p["request"]["direction"]
                             or p["request"]["summary"]) for p in none)
    some = [p for s in stories for p in document_pairs(s, PairOptions(kinds=("document",)), words)]
    with_notes = sum(bool(p["request"]["notes"]) for p in some) / len(some)
    assert 0.3 < with_notes < 0.9


def test_a_story_too_short_to_cut_gives_no_document_pair():
    text = "Mira found the key. She did not tell Jonas.\n\nJonas laughed."
    story = Story(id="s", group="s", text=text, source={}, meta={}, words=12, tokens=15)
    assert document_pairs(story, ALL_PARTS, words) == []


def test_the_extractive_summary_keeps_names_and_fits_its_length():
    story = max(starter_stories(), key=lambda s: s.words)
    summary = extractive_summary(story.text, 80)
    assert len(summary.split()) <= 80
    names = character_names(story.text, 4)
    assert names and all(name in summary for name in names[:2])
    assert extractive_summary("Short text.", 80) == "Short text."
    assert extractive_summary("", 80) == ""


# --- the studio's context -----------------------------------------------------------------------

def holmes() -> str:
    path = Path("/work/shared/corpora/gutenberg/pg1661_adventures_of_sherlock_holmes.txt")
    if path.exists():
        return path.read_text(encoding="utf-8")
    return "\n\n".join(s.text for s in starter_stories(132))


def test_context_fits_the_budget_and_summarises_what_fell_out(count_real):
    document = holmes()[30000:90000]
    context = build_context(document, notes="Holmes: a detective.\nWatson: his friend.",
                            direction="Holmes explains the case.", controls={"genre": "mystery"},
                            budget_tokens=1000, count_tokens=count_real)
    names = [p.name for p in context.parts]
    assert names == ["system", "controls", "notes", "summary", "story so far", "direction"]
    assert context.tokens <= 1000
    assert context.dropped_words > 5000
    story = context.parts[names.index("story so far")]
    assert f"{context.dropped_words:,} words left out" in story.cut
    assert " ".join(context.request.context.lstrip("…").split()) in " ".join(document.split())
    messages = render_messages(context.request)
    sent = count_real([messages[0]["content"], messages[1]["content"]])
    assert sum(sent) <= 1000 + 10  # the joins between parts add a token or two


def test_a_short_document_is_sent_whole():
    context = build_context("The fox ran.", budget_tokens=500)
    assert context.request.context == "The fox ran." and context.dropped_words == 0
    assert [p.name for p in context.parts] == ["system", "controls", "story so far"]
    assert context.request.summary is None and context.notices == []


def test_notes_longer_than_the_context_are_cut_with_a_message_not_a_crash():
    notes = "\n".join(f"Character {i}: a person with a long history worth many words." for i in range(200))
    context = build_context("The fox ran into the wood and did not come back.", notes=notes,
                            budget_tokens=600)
    part = next(p for p in context.parts if p.name == "notes")
    assert context.tokens <= 600
    assert "left out" in part.cut and context.notices
    assert "Shorten the notes" in context.notices[0]
    assert context.request.context.startswith("The fox ran")


def test_a_huge_document_is_quick_and_a_tiny_budget_is_refused():
    document = holmes() * 3  # some 300,000 words
    started = time.perf_counter()
    context = build_context(document, budget_tokens=2000)
    assert time.perf_counter() - started < 10
    assert context.dropped_words > 250_000 and context.tokens <= 2000
    with pytest.raises(ValueError, match="empty"):
        build_context("   \n", budget_tokens=500)
    with pytest.raises(ValueError, match="budget"):
        build_context("The fox ran.", budget_tokens=40)


def test_a_summary_from_the_studio_is_used_as_given():
    document = holmes()[30000:60000]
    context = build_context(document, budget_tokens=800, summary="Holmes took the case.")
    assert context.request.summary == "Holmes took the case."
    assert rolling_summary(document, 50) == extractive_summary(document, 50)


def test_approximate_tokens_is_within_ten_percent_of_the_real_tokenizer(count_real):
    texts = [s.text for s in starter_stories(30)]
    text = holmes()
    texts += [text[i:i + 2000] for i in range(50000, 250000, 20000)]
    for estimate, real in zip(approximate_tokens(texts), count_real(texts)):
        assert abs(estimate - real) <= 0.1 * real


# --- train = serve ------------------------------------------------------------------------------

def test_what_the_studio_sends_tokenizes_as_the_curated_pair_trained(tokenizer, count_real):
    """For each curated document pair whose window is the whole story so far, the studio's
    request for the same document, notes and direction renders the same user message, and the
    prompt ids training masked are the ids of what the studio sends."""
    from storyteller.prompts import prompt_ids

    checked = 0
    options = PairOptions(kinds=("document",), notes_probability=1, direction_probability=1,
                          document_context_words=600)
    for story in starter_stories(40):
        for pair in document_pairs(story, options, count_real):
            request = pair["request"]
            flat = " ".join(story.text.split())
            if request["summary"] or not flat.startswith(" ".join(request["context"].split())):
                continue
            context = build_context(request["context"], notes=request["notes"] or "",
                                    direction=request["direction"] or "",
                                    controls=pair["controls"], budget_tokens=4000,
                                    count_tokens=count_real)
            sent = render_messages(context.request)
            assert sent == pair["messages"][:-1]
            example = tokenize_pair(pair, tokenizer, 4096)
            masked = sum(1 for label in example.labels if label == IGNORE)
            assert prompt_ids(tokenizer, sent) == list(example.input_ids[:masked])
            checked += 1
    assert checked >= 3
