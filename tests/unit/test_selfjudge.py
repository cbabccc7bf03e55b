"""`storyteller pairs`' pure part: pair choice from fixed judgements, prompt selection, seeds and
the preference record."""

from __future__ import annotations

import hashlib
import json

import pytest

from storyteller.selfjudge.pairs import (Judged, choose_pairs, distinct_prompts, preference_record,
                                        prompt_group, sample_seed, scaled_limit, select_prompts)
from storyteller.selfjudge.report import markdown, style_rows


def judged(*scores, hollow=()):
    return [Judged(i, f"story {i}", s, i in hollow) for i, s in enumerate(scores)]


def test_best_against_worst_when_the_margin_is_met():
    choice = choose_pairs(judged(0.6, 1.0, 0.32, 0.76), min_margin=0.1)
    assert [(c.sample, r.sample) for c, r in choice.pairs] == [(1, 2)] and choice.reason == ""


def test_more_pairs_per_prompt_take_the_clearly_worse_ones_worst_first():
    choice = choose_pairs(judged(0.6, 1.0, 0.32, 0.95), min_margin=0.1, per_prompt=3)
    assert [(c.sample, r.sample) for c, r in choice.pairs] == [(1, 2), (1, 0)]  # not 0.95
    capped = choose_pairs(judged(0.6, 1.0, 0.32, 0.5), min_margin=0.1, per_prompt=2)
    assert [r.sample for _, r in capped.pairs] == [2, 3]


def test_ties_give_no_pair_and_equal_scores_go_to_the_lower_sample():
    assert choose_pairs(judged(0.44, 0.44, 0.5), min_margin=0.1) == choose_pairs(
        judged(0.44, 0.44, 0.5), min_margin=0.1)
    assert choose_pairs(judged(0.44, 0.44, 0.5), min_margin=0.1).reason == "tied"
    choice = choose_pairs(judged(1.0, 0.3, 1.0, 0.3), min_margin=0.1)
    assert [(c.sample, r.sample) for c, r in choice.pairs] == [(0, 1)]
    # Exactly the margin is enough (scores are rounded floats).
    assert choose_pairs(judged(0.52, 0.42), min_margin=0.1).pairs


def test_a_hollow_story_is_never_chosen():
    assert choose_pairs(judged(0.15, 0.05, hollow=(0, 1)), min_margin=0.1).reason == \
        "best is hollow"
    choice = choose_pairs(judged(0.15, 0.6, hollow=(0,)), min_margin=0.1)
    assert [(c.sample, r.sample) for c, r in choice.pairs] == [(1, 0)]
    assert choose_pairs([], 0.1).reason == "no samples"


def pair(pid, style=None, genre="fable", kind="premise", user=None):
    controls = {"genre": genre} | ({"style": style} if style else {})
    return {"id": pid, "kind": kind, "controls": controls,
            "messages": [{"role": "system", "content": "You write stories."},
                         {"role": "user", "content": user or f"Write about {pid}."},
                         {"role": "assistant", "content": "A story."}]}


def test_prompt_selection_puts_house_styles_first_spread_over_styles():
    pairs = ([pair(f"m{i}", "moral") for i in range(6)] + [pair(f"r{i}", "refrain") for i in range(2)]
             + [pair(f"l{i}", "log") for i in range(3)]
             + [pair(f"p{i}", "plain", genre=g) for i, g in enumerate(["a", "b", "a", "b"])])
    chosen = select_prompts(pairs, limit=8, plain_share=0.25)
    assert [p["id"] for p in chosen] == ["l0", "m0", "r0", "l1", "m1", "r1", "p0", "p1"]
    everything = select_prompts(pairs, limit=0, plain_share=0.25)
    assert len(everything) == 11 + 3  # every house-style prompt; plain ones up to a quarter
    assert [p["id"] for p in everything[-3:]] == ["p0", "p1", "p2"]
    # Without house-style prompts, plain ones are all there is; few plain ones leave room.
    assert len(select_prompts(pairs[-4:], 0, 0.25)) == 4
    assert len(select_prompts(pairs[6:8] + pairs[-1:], limit=3, plain_share=0.9)) == 3
    assert select_prompts([], 5, 0.25) == []


def test_distinct_prompts_keep_kinds_and_drop_repeated_requests():
    pairs = [pair("a", "moral"), pair("b", "moral", user="Write about a."),
             pair("c", kind="continuation"), pair("d", kind="title")]
    assert [p["id"] for p in distinct_prompts(pairs, ["premise", "title"])] == ["a", "d"]


def test_seeds_groups_and_limits():
    assert sample_seed(0, "x", 1) == int.from_bytes(
        hashlib.sha256(b"0:x:1").digest()[:4], "little")
    assert len({sample_seed(0, "x", s) for s in range(4)}) == 4
    prompt = pair("a")["messages"][:-1]
    expected = hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()[:16]
    assert prompt_group(prompt) == f"p-{expected}"
    assert scaled_limit(0, 5, 20) == 0 and scaled_limit(10, 5, 20) == 3
    assert scaled_limit(10, 1, 200) == 1 and scaled_limit(10, 0, 20) == 0


def test_preference_record_matches_the_contract():
    source = pair("fable-01-premise", "moral")
    record = preference_record(source, Judged(2, "Good.", 1.0, False),
                               Judged(0, "Bad.", 0.32, False), 0,
                               {"file": "data/x/train.jsonl", "line": 7})
    assert record == {
        "id": "fable-01-premise-pref0", "group": prompt_group(source["messages"][:-1]),
        "kind": "pair", "prompt": source["messages"][:-1],
        "chosen": [{"role": "assistant", "content": "Good."}],
        "rejected": [{"role": "assistant", "content": "Bad."}],
        "controls": {"genre": "fable", "style": "moral"},
        "source": {"file": "data/x/train.jsonl", "line": 7},
        "judgement": "style check", "scores": {"chosen": 1.0, "rejected": 0.32}}


def test_report_counts_per_style():
    def sample(key, style, passed, hollow=()):
        return {"key": key, "judgement": {"style": style, "style_passed": passed,
                                          "hollow": list(hollow)}}

    samples = [sample("train/a#0", "moral", True), sample("train/a#1", "moral", False,
                                                          ["moral after 7 words of story"]),
               sample("train/b#0", None, None), sample("train/b#1", None, None)]
    outcomes = [{"prompt_id": "a", "split": "train", "style": "moral", "pairs": 1, "reason": "",
                 "scores": [1.0, 0.1]},
                {"prompt_id": "b", "split": "train", "style": None, "pairs": 0,
                 "reason": "tied", "scores": [0.44, 0.44]}]
    rows = style_rows(samples, outcomes)
    assert rows[0] == {"style": "moral", "samples": 2, "passed": 1, "hollow": 1, "prompts": 1,
                       "pairs": 1, "tied": 0, "best_hollow": 0}
    assert rows[1]["style"] == "(no house style)" and rows[1]["tied"] == 1
    summary = {"model": "m", "data": "d", "samples_per_prompt": 2, "preset": "story",
               "max_tokens": 9, "seed": 0, "engine": "transformers", "min_margin": 0.1,
               "pairs_per_prompt": 1, "prompts": {"train": 2, "val": 0},
               "pairs": {"train": 1, "val": 0}}
    text = markdown(summary, samples, outcomes)
    assert "| moral | 2 | 50% (1) | 1 | 1 | 1 | 0 | 0 |" in text
    assert "- `b` (train, (no house style)): scores 0.44, 0.44" in text
    assert "`train/a#1`: moral after 7 words of story" in text


@pytest.mark.parametrize("key,value,message", [
    ("generation.samples", "1", "at least 2"), ("min_margin", "0", "above 0"),
    ("plain_share", "1", "[0, 1)"), ("pairs_per_prompt", "0", "at least 1")])
def test_config_rejects_values_that_cannot_make_pairs(key, value, message):
    from storyteller.config import load_config
    from storyteller.errors import ConfigError
    from storyteller.selfjudge.config import PairsConfig

    with pytest.raises(ConfigError, match=f"--set {key}: .*{message}".replace("[", r"\[")
                       .replace(")", r"\)")):
        load_config(PairsConfig, None, [f"{key}={value}"])


def test_the_curated_story_is_a_candidate_and_wins_where_no_sample_keeps_the_style():
    from storyteller.judge import judge_story
    from storyteller.selfjudge.config import PairsConfig
    from storyteller.selfjudge.run import REFERENCE, build, reference_story
    from tests.integration.finetune_data import starter_stories

    story = next(s for s in starter_stories() if s.get("style") == "refrain")
    pair = {"id": "tale-premise", "kind": "premise", "controls": {"style": "refrain"},
            "messages": [{"role": "user", "content": "Write a bedtime tale."},
                         {"role": "assistant", "content": story["text"]}]}
    reference = reference_story(pair)
    assert reference.sample == REFERENCE and reference.score == 1.0 and not reference.hollow
    # four samples that all fail the refrain alike: without the reference they tie
    failing = "The fox walked home through the wet grass and slept until the morning came. " * 8

    def sample(n):
        verdict = judge_story(failing, pair["controls"], "stop")
        return {"split": "train", "prompt_id": pair["id"], "sample": n, "text": failing,
                "judgement": verdict.to_json()}

    records = [sample(n) for n in range(4)]
    prompts = {"train": [({"file": "train.jsonl", "line": 1}, pair)], "val": []}
    alone, _, outcomes = build(PairsConfig(with_reference=False), prompts, records)
    assert alone["train"] == [] and outcomes[0]["reason"] == "tied"
    splits, rejects, outcomes = build(PairsConfig(), prompts, records)
    [record] = splits["train"]
    assert record["chosen"][0]["content"] == story["text"] and record["chosen_from"] == "reference"
    assert record["rejected"][0]["content"] == failing and rejects == []
    assert outcomes[0]["reference_chosen"] == 1
