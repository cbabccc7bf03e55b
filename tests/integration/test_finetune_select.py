"""Checkpoints chosen by what they write (`eval.select`) on the tiny random model: the probe's
scores in metrics.jsonl, TensorBoard and plots, its stories in probe.jsonl, final/ taken from the
evaluation the selection ranks first, and a run that probes trains (and resumes) exactly as
one that does not."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from storyteller.config import load_config
from storyteller.errors import InputError
from storyteller.finetune.config import FinetuneConfig
from storyteller.finetune.run import run
from tests.conftest import ROOT
from tests.integration.finetune_data import write_data

QUICKSTART = ROOT / "configs" / "finetune" / "quickstart.yaml"
# Stories of two words: full fine-tuning at a high rate teaches the random model to end its
# stories within a few steps, so the probe's stop rate moves (no random model keeps a style).
TINY = ["model.base=tiny-random", "data.max_length=512", "eval.max_pairs=0",
        "train.warmup_steps=1", "log.plots=true", "eval.test_at_end=false",
        "eval.sample_prompt=", "eval.probe_tokens=12", "eval.probe_styled=4",
        "eval.probe_plain=2"]
EIGHT = ["train.max_steps=8", "eval.every_steps=2", "checkpoint.every_steps=2",
         "checkpoint.keep_last=10"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("data") / "curated", train=16, val=12, test=2,
                      words=2)


def train(data: Path, out: Path, *sets: str, resume: bool = False):
    return run(load_config(FinetuneConfig, QUICKSTART, [*TINY, f"data.dir={data}", f"out={out}",
                                                        *sets]), resume=resume)


def evals(run_dir: Path) -> list[dict]:
    return [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if r["kind"] == "eval"]


def probe_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "probe.jsonl").read_text().splitlines()]


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all((a[k] - b[k]).abs().max().item() <= 1e-6 for k in a)


@pytest.fixture(scope="module")
def styled(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "styled"
    result = train(data, out, *EIGHT, "model.method=full", "train.lr=2e-2",
                   "eval.select=style", "checkpoint.final_from_best=true")
    return out, result


def test_each_evaluation_logs_the_probe_beside_the_loss(styled):
    out, _ = styled
    records = evals(out)
    assert [r["step"] for r in records] == [0, 2, 4, 6, 8]
    styles = {line["style"] for line in probe_lines(out) if line["style"]}
    assert styles == {"log", "noir"}  # the house styles among the validation prompts
    for r in records:
        assert 0 <= r["style_adherence"] <= 1 and 0 <= r["stop_rate"] <= 1
        assert r["hollow_rate"] is not None  # storyteller.judge names hollow stories
        assert {f"adherence_{s}" for s in styles} <= r.keys()
        assert r["probe_tokens"] > 0 and r["probe_seconds"] >= 0
    # The random model learns to end its two-word stories: the probe sees it.
    assert records[0]["stop_rate"] == 0 and records[-1]["stop_rate"] > 0
    lines = probe_lines(out)
    assert [line["step"] for line in lines] == [s for s in (0, 2, 4, 6, 8) for _ in range(6)]
    first = [line for line in lines if line["step"] == 0]
    assert len({line["id"] for line in first}) == 6
    assert all(line["finish_reason"] in ("stop", "length") and "prompt" in line for line in lines)
    # The same prompts, in the same order, at every evaluation.
    assert all([l["id"] for l in lines if l["step"] == s] == [l["id"] for l in first]
               for s in (2, 4, 6, 8))

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("eval/style_adherence")] == [0, 2, 4, 6, 8]
    assert [e.value for e in events.Scalars("eval/stop_rate")] == \
        pytest.approx([r["stop_rate"] for r in records])
    assert (out / "plots" / "probe.png").stat().st_size > 10_000


def test_final_comes_from_the_evaluation_that_writes_best(styled):
    out, result = styled
    records = evals(out)
    # style: most stories in their house style, then most that end, then the lower loss.
    chosen = max(records, key=lambda r: (r["style_adherence"], r["stop_rate"], -r["val_loss"]))
    s = result.summary
    assert s["selected_by"] == "style"
    assert s["best_step"] == s["final_from_step"] == chosen["step"]
    assert [r["step"] for r in records if r["best"]][-1] == chosen["step"]
    assert s["final_probe"]["stop_rate"] == chosen["stop_rate"]
    assert s["final_probe"]["style_adherence"] == chosen["style_adherence"]
    assert s["final_val_loss"] == pytest.approx(chosen["val_loss"])
    meta = json.loads((out / "final" / "storyteller.json").read_text())
    assert meta["results"]["selected_by"] == "style"
    assert meta["results"]["final_from_step"] == chosen["step"]
    # final/ holds the chosen checkpoint's weights, not the last step's.
    kept = load_file(out / "checkpoints" / f"step-{chosen['step']:06d}" / "weights.safetensors")
    last = load_file(out / "checkpoints" / "step-000008" / "weights.safetensors")
    final = load_file(out / "final" / "model.safetensors")
    name = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(final[name], kept[name])
    assert chosen["step"] == 8 or not torch.equal(final[name], last[name])
    state = json.loads((out / "checkpoints" / "step-000008" / "state.json").read_text())
    assert state["best_step"] == chosen["step"]
    assert state["best_probe"]["stop_rate"] == chosen["stop_rate"]
    assert len(state["best_rank"]) == 3


@pytest.fixture(scope="module")
def probed(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "probed"
    # Dropout draws from the random stream: a probe that moved it would change the weights.
    train(data, out, *EIGHT, "lora.dropout=0.1", "train.lr=5e-3", "eval.select=style",
          "checkpoint.keep_best=true")
    return out


def adapter(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "final" / "adapter_model.safetensors")


def test_probing_leaves_training_exactly_as_it_was(probed, data, tmp_path):
    without = tmp_path / "without"
    train(data, without, *EIGHT, "lora.dropout=0.1", "train.lr=5e-3")
    assert not (without / "probe.jsonl").exists()
    assert "style_adherence" not in evals(without)[0]
    assert same(adapter(probed), adapter(without))  # quickstart: final/ is the last step
    losses = lambda d: [(r["step"], r["val_loss"]) for r in evals(d)]
    assert losses(probed) == losses(without)


def test_a_resumed_run_that_probes_ends_as_an_uninterrupted_one(probed, data, tmp_path):
    out = tmp_path / "resumed"
    train(data, out, *EIGHT, "lora.dropout=0.1", "train.lr=5e-3", "eval.select=style")
    # As if killed after step 6's evaluation and probe, before its checkpoint.
    for name in ("step-000006", "step-000008"):
        shutil.rmtree(out / "checkpoints" / name)
    shutil.rmtree(out / "final")
    (out / "summary.json").unlink()
    train(data, out, *EIGHT, "lora.dropout=0.1", "train.lr=5e-3", "eval.select=style",
          resume=True)
    assert same(adapter(probed), adapter(out))
    assert probe_lines(out) == probe_lines(probed)  # each step's stories, once
    drop = lambda rs: [{k: v for k, v in r.items() if k != "probe_seconds"} for r in rs]
    assert drop(evals(out)) == drop(evals(probed))
    assert json.loads((out / "summary.json").read_text())["final_probe"]["stop_rate"] == \
        json.loads((probed / "summary.json").read_text())["final_probe"]["stop_rate"]


def test_resume_with_another_selection_is_refused(probed, data, tmp_path):
    from storyteller.errors import ConfigError

    out = tmp_path / "switch"
    shutil.copytree(probed, out)
    shutil.rmtree(out / "final")
    with pytest.raises(ConfigError, match="eval.select"):
        train(data, out, *EIGHT, "lora.dropout=0.1", "train.lr=5e-3", resume=True)


def test_style_selection_needs_house_style_prompts(tmp_path):
    plain = write_data(tmp_path / "plain", train=4, val=4, test=1, words=2)
    rows = [json.loads(l) for l in (plain / "val.jsonl").read_text().splitlines()]
    for row in rows:
        row["controls"].pop("style", None)
    (plain / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError, match="val.jsonl: eval.select: style needs validation"):
        train(plain, tmp_path / "run", "train.max_steps=1", "eval.every_steps=1",
              "eval.select=style")
