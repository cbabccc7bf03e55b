"""bench/preference.py: the preference pairs it builds (the curated preference format, read by
`storyteller finetune`'s own reader) and a short run of every contender on the tiny model."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bench import preference as bench
from storyteller.finetune.prefdata import read_preference_data
from storyteller.models import load_tokenizer
from tests.conftest import ROOT
from tests.integration.finetune_data import write_data


@pytest.fixture(scope="module")
def sft(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("sft") / "curated", train=12, val=3, test=6)


def located(sft: Path, split: str) -> list[tuple[dict, dict]]:
    lines = (sft / f"{split}.jsonl").read_text().splitlines()
    return [({"file": f"{split}.jsonl", "line": n}, json.loads(line)) for n, line in enumerate(lines, 1)]


def test_rejected_is_another_style_of_similar_length_and_seeded(sft):
    pairs = located(sft, "train")
    records, rejects = bench.build_split(pairs, seed=3)
    assert not rejects and len(records) == len(pairs)
    stories = {bench.story_of(p): p for _, p in pairs}
    for (source, pair), record in zip(pairs, records):
        assert record["kind"] == "pair" and record["source"] == source
        assert record["prompt"] == pair["messages"][:-1]
        assert record["chosen"] == [{"role": "assistant", "content": bench.story_of(pair)}]
        assert record["group"] == bench.prompt_group(record["prompt"])
        other = stories[record["rejected"][0]["content"]]
        assert other["group"] != pair["group"]
        assert other["controls"]["style"] != pair["controls"]["style"]
        # among the NEAREST closest in length of the other-style stories
        gaps = sorted(abs(len(bench.story_of(p)) - len(bench.story_of(pair))) for _, p in pairs
                      if p["controls"]["style"] not in (None, pair["controls"]["style"]))
        assert abs(len(bench.story_of(other)) - len(bench.story_of(pair))) <= gaps[bench.NEAREST - 1]
    # The draw depends on the seed and the pair, not on the order pairs come in.
    shuffled = pairs[:]
    random.Random(0).shuffle(shuffled)
    again = {r["id"]: r["rejected"] for r in bench.build_split(shuffled, seed=3)[0]}
    assert again == {r["id"]: r["rejected"] for r in records}
    other_seed = {r["id"]: r["rejected"] for r in bench.build_split(pairs, seed=4)[0]}
    assert other_seed != again


def test_one_style_falls_back_to_the_story_cut_short(sft):
    pairs = located(sft, "train")
    for _, pair in pairs:
        pair["controls"] = {**pair["controls"], "style": "plain"}
    records, _ = bench.build_split(pairs, seed=0)
    for (_, pair), record in zip(pairs, records):
        story, rejected = bench.story_of(pair), record["rejected"][0]["content"]
        assert story.startswith(rejected) and 0 < len(rejected) < len(story)


def test_a_prompt_in_an_earlier_split_is_rejected_not_repeated(sft):
    pairs = located(sft, "train")
    taken = {}
    bench.build_split(pairs[:3], 0, taken=taken, split="train")
    records, rejects = bench.build_split(pairs[:5], 0, taken=taken, split="test")
    assert [r["reason"] for r in rejects] == ["duplicate_exact"] * 3
    assert rejects[0]["line"] == 1 and "train split" in rejects[0]["detail"]
    assert len(records) == 2


def test_built_directory_reads_as_preference_data(sft, tmp_path):
    tokenizer = load_tokenizer("tiny-random")
    out = bench.build_from_sft(sft, tmp_path / "pairs", tokenizer, max_length=512, pairs=4,
                               heldout=2, seed=0)
    splits, digest = read_preference_data(out)  # storyteller finetune's own reader
    assert [len(splits[s]) for s in ("train", "val", "test")] == [4, 2, 2]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "preference"
    assert manifest["counts"]["train"] == {"pair": 4, "unpaired": 0}
    assert set(manifest["outputs"]) == {"train.jsonl", "val.jsonl", "test.jsonl", "rejects.jsonl"}
    groups = {s: {r["group"] for r in splits[s]} for s in splits}
    assert not groups["train"] & groups["test"] and not groups["train"] & groups["val"]
    assert all(r["source"]["file"].endswith("train.jsonl") for r in splits["train"])

    # A max_length the stories do not fit leaves them out, each listed in rejects.jsonl.
    short = bench.build_from_sft(sft, tmp_path / "short", tokenizer, max_length=140, pairs=0,
                                 heldout=0, seed=0)
    rejects = [json.loads(line) for line in (short / "rejects.jsonl").read_text().splitlines()]
    assert rejects and {r["reason"] for r in rejects} == {"too_many_tokens"}
    kept = sum(json.loads((short / "manifest.json").read_text())["counts"][s]["pair"]
               for s in ("train", "val", "test"))
    assert kept + len(rejects) == 21


def bench_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "STORYTELLER_QUIET": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "bench.preference", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=900)


def test_refuses_an_sft_directory_as_data_and_uneven_steps(sft):
    done = bench_cli("--model", "tiny-random", "--data", str(sft))
    assert done.returncode != 0 and "not a preference directory" in done.stderr
    done = bench_cli("--model", "tiny-random", "--sft", str(sft), "--steps", "3", "--pairs", "2")
    assert done.returncode != 0 and "multiple of --pairs" in done.stderr


@pytest.mark.slow
def test_every_contender_trains_and_reports(sft, tmp_path):
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\n## other\n\nkept\n")
    result = tmp_path / "results.json"
    done = bench_cli("--model", "tiny-random", "--sft", str(sft), "--steps", "2",
                     "--json", str(result), "--write", str(doc))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(result.read_text())["results"]
    assert list(results) == ["storyteller", "trl-default", "trl-precompute"]
    tokens = {r["tokens"] for r in results.values()}
    assert len(tokens) == 1 and tokens.pop() > 0  # the same pairs, counted the same way
    for name, r in results.items():
        assert r["steps"] == 2 and r["pairs"] == 2, name
        assert r["seconds"] > 0 and r["peak_gib"] > 0.1 and r["wall"] > r["seconds"], name
        held = r["heldout"]
        assert held["pairs"] == 6 and 0 <= held["reward_accuracy"] <= 1, name
        assert {"reward_margin", "dpo_loss", "reward_chosen", "reward_rejected"} <= set(held), name
    assert results["storyteller"]["reference_seconds"] > 0
    assert results["trl-precompute"]["reference_seconds"] > 0
    assert results["trl-default"]["reference_seconds"] is None  # a reference forward every step
    assert results["storyteller"]["padding"] == 0 and results["trl-default"]["padding"] >= 0
    settings = results["trl-default"]["settings"]
    assert settings["per_device_train_batch_size"] == 1 and settings["max_steps"] == 2
    assert settings["precompute_ref_log_probs"] is False
    assert results["trl-precompute"]["settings"]["precompute_ref_log_probs"] is True
    # storyteller trained: its adapter moved the held-out log-probabilities off the reference
    assert results["storyteller"]["heldout"]["reward_chosen"] != 0

    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\n## other\n\nkept\n")
    section = text[text.index(bench.SECTION):]
    assert "| storyteller |" in section and "| TRL default |" in section and "| TRL precompute |" in section
    assert "storyteller ÷ TRL default" in section and "CPU flags" in section
    assert "python -m bench.preference" in section
