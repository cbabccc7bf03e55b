"""`storyteller pairs` end to end: through a real OpenAI-compatible server on loopback that writes
known stories (so the pairs are known), and in-process on the tiny model with a resume after a
kill; every output line checked against the preference-record contract."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from storyteller.config import load_config
from storyteller.errors import InputError
from storyteller.selfjudge.config import PairsConfig
from storyteller.selfjudge.pairs import prompt_group, sample_seed
from storyteller.selfjudge.run import SAMPLES, read_samples, run
from tests.conftest import run_cli
from tests.integration.served import StubChat
from tests.integration.finetune_data import starter_stories, write_data

pytestmark = pytest.mark.slow

RECORD_KEYS = {"id", "group", "kind", "prompt", "chosen", "rejected", "controls", "source",
               "judgement", "scores", "chosen_from"}


def check_preference_dir(out: Path) -> dict[str, list[dict]]:
    """Every line as contracts §1 has it, ids unique, no group in two splits, and the manifest
    and its hashes as §2 has them."""
    import hashlib

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "preference" and manifest["made_by"] == "pairs"
    splits, ids, groups = {}, set(), {}
    for split in ("train", "val", "test"):
        raw = (out / f"{split}.jsonl").read_bytes()
        assert manifest["outputs"][f"{split}.jsonl"] == hashlib.sha256(raw).hexdigest()
        rows = [json.loads(line) for line in raw.decode().splitlines()]
        splits[split] = rows
        assert manifest["counts"][split] == {"pair": len(rows), "unpaired": 0}
        for row in rows:
            assert set(row) == RECORD_KEYS, set(row) ^ RECORD_KEYS
            assert row["kind"] == "pair" and row["judgement"] == "style check"
            assert row["id"] not in ids
            ids.add(row["id"])
            assert row["group"] == prompt_group(row["prompt"])
            assert re.fullmatch(r"p-[0-9a-f]{16}", row["group"])
            assert groups.setdefault(row["group"], split) == split  # never across splits
            assert all(m["role"] in ("system", "user", "assistant") for m in row["prompt"])
            assert row["prompt"][-1]["role"] != "assistant"
            for side in ("chosen", "rejected"):
                assert [m["role"] for m in row[side]] == ["assistant"]
                assert isinstance(row[side][0]["content"], str)
            assert isinstance(row["controls"], dict)
            assert set(row["source"]) == {"file", "line"} and isinstance(row["source"]["line"], int)
            assert row["scores"]["chosen"] > row["scores"]["rejected"]
    assert splits["test"] == []
    for line in (out / "rejects.jsonl").read_text().splitlines():
        assert set(json.loads(line)) == {"source", "line", "reason", "detail"}
    assert (out / "report.md").is_file() and (out / SAMPLES).is_file()
    return splits


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("data") / "curated", train=24, val=6, test=6)


FULL, CUT, HOLLOW = 0, 1, 2


def variant(seed: int) -> int:
    return seed % 3


@pytest.fixture(scope="module")
def server():
    """An OpenAI-compatible chat endpoint on loopback, model "writer", that answers a premise
    with its starter story: whole (seed % 3 == 0), the same cut at the token limit (1), or a
    hollow fable of twenty words and a moral (2)."""
    stories = {s["premise"]: s["text"] for s in starter_stories()}

    def reply(body: dict) -> tuple[str, str, int]:
        user = body["messages"][-1]["content"]
        story = next(text for premise, text in stories.items() if premise in user)
        kind = variant(body["seed"])
        text = story if kind != HOLLOW else \
            " ".join(story.split()[:20]) + "\n\nMoral: Kindness is never wasted."
        return text, "length" if kind == CUT else "stop", len(text.split())

    chat = StubChat("writer", reply)
    yield chat
    chat.close()


def test_pairs_through_an_endpoint_are_the_known_best_and_worst(server, data, tmp_path):
    out = tmp_path / "prefs"
    # Only the model's stories, so that which pairs come out follows from the seeds alone.
    result = run_cli("pairs", "--endpoint", server.url, "--model", "writer", "--data", str(data),
                     "--out", str(out), "-k", "4", "--no-reference")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out / "report.md")
    splits = check_preference_dir(out)
    samples = read_samples(out / SAMPLES)
    sft = {split: [json.loads(line) for line in (data / f"{split}.jsonl").read_text().splitlines()]
           for split in ("train", "val", "test")}
    test_ids = {p["id"] for p in sft["test"]}
    assert samples and not {s["prompt_id"] for s in samples} & test_ids  # test never sampled
    # Every story was asked for with its own seed, and judged.
    assert {b["seed"] for b in server.bodies} == {s["seed"] for s in samples}
    for s in samples:
        assert s["seed"] == sample_seed(0, s["prompt_id"], s["sample"]) and s["engine"] == "endpoint"
        assert (variant(s["seed"]) == HOLLOW) == bool(s["judgement"]["hollow"])
    # House-style prompts first: every house-style train prompt is there, plain ones at most 1/4.
    chosen_train = {s["prompt_id"] for s in samples if s["split"] == "train"}
    house = {p["id"] for p in sft["train"] if p["controls"].get("style") in
             ("moral", "refrain", "noir", "log")}
    assert house <= chosen_train and len(chosen_train - house) <= len(chosen_train) / 4
    # A prompt gives a pair exactly when its samples are not all one variant; the chosen is the
    # whole story where one was written, and never hollow.
    by_prompt: dict[tuple[str, str], set[int]] = {}
    for s in samples:
        by_prompt.setdefault((s["split"], s["prompt_id"]), set()).add(variant(s["seed"]))
    for split in ("train", "val"):
        expected = {pid for (sp, pid), kinds in by_prompt.items() if sp == split and len(kinds) > 1}
        assert {r["id"].rsplit("-pref", 1)[0] for r in splits[split]} == expected
    assert splits["train"], "the seeds gave no pair at all"
    lines = {split: (data / f"{split}.jsonl").read_text().splitlines() for split in ("train", "val")}
    for split in ("train", "val"):
        for record in splits[split]:
            pid = record["id"].rsplit("-pref", 1)[0]
            kinds = by_prompt[(split, pid)]
            chosen, rejected = record["chosen"][0]["content"], record["rejected"][0]["content"]
            assert "Kindness is never wasted" not in chosen
            if FULL in kinds:
                assert record["scores"]["chosen"] == 1.0
            if HOLLOW in kinds:
                assert "Kindness is never wasted" in rejected and record["scores"]["rejected"] <= 0.15
            # The source is the SFT pair's own file and line.
            assert record["source"]["file"] == str(data / f"{split}.jsonl")
            assert json.loads(lines[split][record["source"]["line"] - 1])["id"] == pid
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    tied = [pid for (sp, pid), kinds in by_prompt.items() if len(kinds) == 1 and HOLLOW not in kinds]
    assert len([r for r in rejects if "within 0.1" in r["detail"]]) == len(tied)
    assert all(r["reason"] == "no_pairs" for r in rejects)
    report = (out / "report.md").read_text()
    assert "## By requested style" in report and "| moral |" in report
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["samples"]["hollow"] == sum(bool(s["judgement"]["hollow"]) for s in samples)


def pairs_config(data: Path, out: Path, *sets: str) -> PairsConfig:
    return load_config(PairsConfig, None, [f"data={data}", f"out={out}", "model=tiny-random",
                                           "generation.max_tokens=8", "generation.samples=2",
                                           "prompts=3", *sets])


def test_tiny_model_in_process_resumes_after_a_kill(data, tmp_path):
    out = tmp_path / "prefs"
    first = run(pairs_config(data, out))
    check_preference_dir(out)
    done = read_samples(out / SAMPLES)
    assert len(done) == (3 + 1) * 2  # 3 train prompts and the val share (1), 2 samples each
    assert {s["engine"] for s in done} == {"transformers"}
    assert all(0 < s["new_tokens"] <= 8 for s in done)
    assert first.counts["train"]["pair"] + first.counts["val"]["pair"] + \
        len((out / "rejects.jsonl").read_text().splitlines()) >= 4
    # Killed after three stories, mid-way through writing the fourth line.
    lines = (out / SAMPLES).read_text().splitlines()
    (out / SAMPLES).write_text("\n".join(lines[:3]) + "\n" + lines[3][:25])
    with pytest.raises(InputError, match="not empty.*--resume"):
        run(pairs_config(data, out))
    run(pairs_config(data, out, "resume=true"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["samples"]["reused"] == 3 and manifest["samples"]["generated"] == 5
    again = {s["key"]: s for s in read_samples(out / SAMPLES)}
    assert len(again) == 8
    # Seeded per prompt and sample: the stories written again are the stories written before.
    assert {k: s["text"] for k, s in again.items()} == {s["key"]: s["text"] for s in done}
    check_preference_dir(out)
    # Other settings are other stories: none is reused.
    run(pairs_config(data, out, "resume=true", "generation.preset=focused"))
    assert json.loads((out / "manifest.json").read_text())["samples"]["reused"] == 0


def test_errors_say_where_and_what_to_do(data, server, tmp_path):
    with pytest.raises(InputError, match="no such model"):
        run(pairs_config(data, tmp_path / "a", "model=nope-model"))
    with pytest.raises(InputError, match="no house-style prompt and no other prompt"):
        run(pairs_config(data, tmp_path / "b", "kinds=[summary]"))
    with pytest.raises(InputError, match="manifest.json"):
        run(pairs_config(tmp_path, tmp_path / "c"))
    result = run_cli("pairs", "--endpoint", server.url, "--model", "missing", "--data",
                     str(data), "--out", str(tmp_path / "d"), "-n", "1")
    assert result.returncode == 1
    assert f"{server.url}/v1/chat/completions: HTTP 404" in result.stderr
    result = run_cli("pairs", "--data", str(data), "--out", str(tmp_path / "e"))
    assert result.returncode == 1 and "error: --model: no model given" in result.stderr
    prefs = tmp_path / "prefs"
    prefs.mkdir()
    (prefs / "manifest.json").write_text(json.dumps({"kind": "preference"}))
    with pytest.raises(InputError, match="is a preference directory"):
        run(pairs_config(prefs, tmp_path / "f"))
