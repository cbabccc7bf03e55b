"""Choosing what raters see: balance, blinding ids, checks, repeats, pairs and orders."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from storyteller.errors import InputError
from storyteller.ratings.checks import (
    counts_for,
    paragraphs,
    shuffle_sentences,
)
from storyteller.ratings.generations import parse_generation, parse_lines
from storyteller.ratings.items import build_plan, choose_stories
from tests.unit.test_ratings_fixture import generations


@pytest.fixture(scope="module")
def gens():
    return [parse_generation(r) for r in generations()]


def test_every_rater_rates_the_same_items_in_their_own_order(gens):
    plan = build_plan(gens, raters=3, seed=5)
    orders = [plan.orders[r]["ratings"] for r in plan.raters]
    assert all(sorted(o) == sorted(i.id for i in plan.items) for o in orders)
    assert len({tuple(o) for o in orders}) == 3
    assert len({tuple(plan.orders[r]["pairs"]) for r in plan.raters}) > 1


def test_items_are_balanced_across_models_and_genres(gens):
    plan = build_plan(gens, raters=2, items=12, seed=1)
    stories = [i for i in plan.items if i.type == "story"]
    assert len(stories) == 12
    assert Counter(i.info["model"] for i in stories) == {"tuned": 6, "base": 6}
    assert Counter(i.info["genre"] for i in stories) == {"fable": 4, "mystery": 4,
                                                         "science fiction": 4}
    # both models' stories of a prompt are chosen together, so differences pair by prompt
    by_prompt = Counter(i.info["prompt_id"] for i in stories)
    assert set(by_prompt.values()) == {2}


def test_item_ids_are_opaque_and_stable_for_a_seed(gens):
    a, b = build_plan(gens, 2, seed=3), build_plan(gens, 2, seed=3)
    assert [i.id for i in a.items] == [i.id for i in b.items]
    assert a.key() == b.key()
    ids = [i.id for i in a.items] + [p.id for p in a.pairs]
    assert all(re.fullmatch(r"it-[0-9a-f]{6}", i) for i in ids) and len(set(ids)) == len(ids)
    other = build_plan(gens, 2, seed=4)
    assert not set(ids) & {i.id for i in other.items}
    labels = {g.id for g in gens} | {g.model for g in gens} | {g.prompt_id for g in gens}
    assert not any(label in i for i in ids for label in labels)


def test_about_a_tenth_of_rows_are_attention_checks_with_expectations(gens):
    plan = build_plan(gens, raters=2, seed=2)
    types = Counter(i.type for i in plan.items)
    assert types["story"] == 24 and types["repeat"] >= 2
    share = types["attention"] / len(plan.items)
    assert 0.07 <= share <= 0.15
    checks = [i for i in plan.items if i.type == "attention"]
    assert {c.info["check"] for c in checks} == {"shuffled", "off_genre"}
    for check in checks:
        expect = check.info["expect"]
        assert expect["max"] == 2
        if check.info["check"] == "shuffled":
            assert expect["dimension"] == "coherence"
            source = next(g for g in gens if g.id == check.info["story_from"])
            original = [s for p in paragraphs(source.reference) for s in p]
            shown = [s for p in paragraphs(check.story) for s in p]
            assert sorted(shown) == sorted(original) and shown != original
        else:
            assert expect["dimension"] == "genre"
            asked = next(g for g in gens if g.id == check.info["prompt_from"])
            told = next(g for g in gens if g.id == check.info["story_from"])
            assert check.prompt == asked.prompt and asked.genre != told.genre
            assert check.story == told.reference.strip()


def test_repeats_show_a_rated_story_again_under_another_id_and_apart(gens):
    plan = build_plan(gens, raters=3, seed=9)
    by_id = {i.id: i for i in plan.items}
    repeats = [i for i in plan.items if i.type == "repeat"]
    assert repeats
    for repeat in repeats:
        original = by_id[repeat.info["repeat_of"]]
        assert original.type == "story" and repeat.id != original.id
        assert (repeat.prompt, repeat.story) == (original.prompt, original.story)
        for rater in plan.raters:
            order = plan.orders[rater]["ratings"]
            assert abs(order.index(repeat.id) - order.index(original.id)) >= 2


def test_pairs_are_counterbalanced_and_same_prompt(gens):
    plan = build_plan(gens, raters=2, pairwise=8, seed=11)
    assert len(plan.pairs) == 8
    tuned_on_a = sum(p.info["a"]["model"] == "tuned" for p in plan.pairs)
    assert tuned_on_a == 4
    by_id = {g.id: g for g in gens}
    for pair in plan.pairs:
        a, b = by_id[pair.info["a"]["generation"]], by_id[pair.info["b"]["generation"]]
        assert a.prompt_id == b.prompt_id and a.model != b.model
        assert (pair.story_a, pair.story_b, pair.prompt) == (a.text, b.text, a.prompt)


def test_one_model_means_no_pairs_and_asking_for_them_is_an_error(gens):
    only = [g for g in gens if g.model == "tuned"]
    plan = build_plan(only, raters=2, seed=0)
    assert plan.pairs == [] and {i.info.get("model") for i in plan.items if i.type == "story"} == {"tuned"}
    with pytest.raises(InputError, match="pairs need two models"):
        build_plan(only, raters=2, pairwise=3)


def test_bad_counts_are_reported_together(gens):
    with pytest.raises(InputError) as caught:
        build_plan(gens, raters=0, items=0, pairwise=-1)
    assert [p.where for p in caught.value.problems] == ["--raters", "--items", "--pairwise"]


def test_more_items_than_prompts_takes_further_samples_last(gens):
    extra = [parse_generation({**r, "id": r["id"][:-1] + "1", "sample": 1}) for r in generations()]
    chosen = choose_stories(gens + extra, 30, random.Random(0))
    assert len(chosen) == 30
    first = {(g.prompt_id, g.model) for g in chosen[:24]}
    assert len(first) == 24  # every prompt and model once before any second sample
    assert {(g.prompt_id, g.model) for g in chosen[24:]} <= first
    assert len({g.id for g in chosen}) == 30
    assert {g.sample for g in chosen[:24]} == {0, 1}  # which sample comes first is seeded


def test_shuffle_needs_enough_sentences_and_moves_every_one():
    rng = random.Random(0)
    assert shuffle_sentences("One. Two. Three.", rng) is None
    text = "Ann woke. She ran outside.\n\nThe dog barked! Was it late? Then the rain came."
    out = shuffle_sentences(text, rng)
    assert out is not None and out.count("\n\n") == 1
    shown = [s for p in paragraphs(out) for s in p]
    original = [s for p in paragraphs(text) for s in p]
    assert sorted(shown) == sorted(original)
    assert all(a != b for a, b in zip(shown, original))


def test_counts_scale_with_the_number_of_stories():
    assert counts_for(0) == (0, 0)
    checks, repeats = counts_for(40)
    assert 0.08 <= checks / (40 + repeats + checks) <= 0.13 and 2 <= repeats <= 4


def test_bad_generation_lines_are_located():
    lines = ['{"id": "a", "model": "m", "prompt_id": "p", "prompt": "x", "text": "y"}',
             "not json", '{"id": "b", "model": "m", "prompt_id": "p", "prompt": "x"}',
             '{"id": "a", "model": "m", "prompt_id": "p", "prompt": "x", "text": "y"}']
    with pytest.raises(InputError) as caught:
        parse_lines(lines, "out/generations.jsonl")
    found = [(p.where, p.message) for p in caught.value.problems]
    assert found[0][0] == "out/generations.jsonl:2" and "not valid JSON" in found[0][1]
    assert found[1] == ("out/generations.jsonl:3",
                        'field "text" is missing or not a non-empty string')
    assert found[2] == ("out/generations.jsonl:4", 'id "a" appears twice')
