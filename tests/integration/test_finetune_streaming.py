"""`storyteller finetune` on a sharded curated directory: the starter corpus curated for real,
its train and test splits cut into shards as `datasets` names them, then trained on with the
tiny random model, streamed (data.streaming) and whole, and resumed from a streamed checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

from storyteller.config import load_config
from storyteller.curated import shard_name
from storyteller.errors import ConfigError, InputError
from storyteller.finetune.config import FinetuneConfig
from storyteller.finetune.run import run
from tests.conftest import ROOT, run_cli

QUICKSTART = ROOT / "configs" / "finetune" / "quickstart.yaml"
# Uneven shards, as a writer cutting by bytes would make; the first one's long stories are all
# over data.max_length, so the stream crosses into the second before its first pack.
TRAIN_CUTS = (0, 30, 300, 450)
STREAM = ["data.streaming=true", "data.stream_buffer=5", "train.max_steps=4", "eval.every_steps=2",
          "eval.max_pairs=4", "checkpoint.every_steps=1", "checkpoint.keep_last=10"]

pytestmark = pytest.mark.slow


def shard(directory: Path, split: str, cuts: tuple[int, ...]) -> list[str]:
    """Cut `split.jsonl` into shards starting at the lines in `cuts`; its lines, in order."""
    lines = (directory / f"{split}.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    bounds = [*cuts, len(lines)]
    for index in range(len(cuts)):
        (directory / shard_name(split, index, len(cuts))).write_text(
            "".join(lines[bounds[index]:bounds[index + 1]]), encoding="utf-8")
    (directory / f"{split}.jsonl").unlink()
    return lines


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> tuple[Path, list[str]]:
    data = tmp_path_factory.mktemp("curated") / "starter"
    done = run_cli("curate", str(ROOT / "corpora" / "starter"), "--config",
                   str(ROOT / "configs" / "curate" / "starter.yaml"), "--out", str(data))
    assert done.returncode == 0, done.stderr
    lines = shard(data, "train", TRAIN_CUTS)
    shard(data, "test", (0, 20))
    return data, lines


def config(data: Path, out: Path, *sets: str) -> FinetuneConfig:
    return load_config(FinetuneConfig, QUICKSTART, [
        # fp32: on CPUs with native bf16 the tiny model's many new shapes cost more in bf16.
        "model.base=tiny-random", "model.precision=fp32", "data.max_length=512",
        "train.warmup_steps=1", "train.lr=5e-3",
        "log.plots=false", "log.tensorboard=false", f"data.dir={data}", f"out={out}", *sets])


def adapter(run_dir: Path):
    return load_file(run_dir / "final" / "adapter_model.safetensors")


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def streamed(sharded, tmp_path_factory):
    data, _ = sharded
    out = tmp_path_factory.mktemp("runs") / "streamed"
    return run(config(data, out, *STREAM)), out


def test_datasets_reads_the_shard_set_in_order(sharded, tmp_path):
    import datasets

    data, lines = sharded
    loaded = datasets.load_dataset("json", data_files={"train": str(data / "train-*.jsonl")},
                                   cache_dir=str(tmp_path / "cache"))
    assert loaded["train"]["id"] == [json.loads(line)["id"] for line in lines]


def test_a_streamed_run_trains_on_the_shards(streamed, sharded):
    result, out = streamed
    data, lines = sharded
    assert result.summary["steps"] == 4 and result.summary["supervised_tokens"] > 0
    assert result.summary["test_loss_tuned"] is not None, "the sharded test split was read"
    info = json.loads((out / "run.json").read_text())
    assert info["stream"] == {"files": [shard_name("train", i, 4) for i in range(4)],
                              "pairs": len(lines), "pairs_per_pass": len(lines), "buffer": 5}
    assert info["fingerprint"]["data.streaming"] is True
    assert info["fingerprint"]["data.stream_buffer"] == 5
    assert set(info["pairs"]) == {"val", "test"} and info["packs"]["train"] is None
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    assert 0 < train[-1]["epoch"] < 1, "a fraction of one pass over the shards"
    meta = json.loads((out / "final" / "storyteller.json").read_text())
    assert {"fable", "adventure"} <= set(meta["genres"]) and meta["data"]["train_pairs"] == len(lines)
    cursor = json.loads((out / "checkpoints" / "step-000002" / "state.json").read_text())["stream"]
    assert cursor["epoch"] == 0 and cursor["start"]["file"] >= 1 and cursor["done"] >= 1


def test_resume_continues_at_the_saved_cursor(streamed, sharded, tmp_path):
    result, out = streamed
    data, _ = sharded
    copy = tmp_path / "resumed"
    shutil.copytree(out, copy)
    # As if killed after step 2 (mid-buffer, in the second shard): later checkpoints, final/ and
    # the summary never written.
    for step in (3, 4):
        shutil.rmtree(copy / "checkpoints" / f"step-{step:06d}")
    shutil.rmtree(copy / "final")
    (copy / "summary.json").unlink()
    again = run(config(data, copy, *STREAM), resume=True)
    assert again.summary["supervised_tokens"] == result.summary["supervised_tokens"]
    assert max_difference(adapter(out), adapter(copy)) <= 1e-6
    records = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3, 4]


@pytest.mark.parametrize("change, key", [("data.stream_buffer=7", "data.stream_buffer"),
                                         ("data.streaming=false", "data.streaming")])
def test_resume_refuses_other_stream_settings(streamed, sharded, tmp_path, change, key):
    _, out = streamed
    data, _ = sharded
    copy = tmp_path / "other"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "final")
    with pytest.raises(ConfigError) as info:
        run(config(data, copy, *STREAM, change), resume=True)
    assert key in str(info.value) and "start a new run" in str(info.value)


def test_a_whole_split_run_reads_the_shards_too(sharded, tmp_path):
    data, _ = sharded
    result = run(config(data, tmp_path / "whole", "train.max_steps=1", "eval.every_steps=0",
                        "checkpoint.every_steps=0", "eval.test_at_end=false"))
    info = json.loads((result.run_dir / "run.json").read_text())
    assert info["pairs"]["train"] > 0 and "stream" not in info
    assert "data.streaming" not in info["fingerprint"]


def test_a_bad_line_in_a_shard_stops_a_streamed_run_before_training(sharded, tmp_path):
    data, _ = sharded
    broken = tmp_path / "broken"
    shutil.copytree(data, broken)
    last = broken / shard_name("train", 3, 4)
    lines = last.read_text().splitlines()
    lines[-2] = lines[-2][:30]
    last.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=f"{last}:{len(lines) - 1}: not valid JSON"):
        run(config(broken, tmp_path / "run", *STREAM))
    assert not (tmp_path / "run").exists()
