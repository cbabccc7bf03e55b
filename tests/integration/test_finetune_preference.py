"""Preference tuning end to end on the tiny random model: a DPO run's directory and rewards,
interrupt and --resume giving the same adapter, --from an SFT run, KTO, and bad input."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from storyteller.config import load_config
from storyteller.errors import InputError
from storyteller.finetune import run as run_module
from storyteller.finetune.config import FinetuneConfig
from storyteller.finetune.run import run
from tests.conftest import ROOT, run_cli
from tests.integration.finetune_data import train_tiny, write_data
from tests.integration.preference_data import preference_records, write_preference_data

PREFERENCE = ROOT / "configs" / "finetune" / "preference.yaml"
TINY = ["model.base=tiny-random", "data.max_length=512", "eval.max_pairs=0",
        "train.warmup_steps=0", "train.lr=5e-3", "train.batch_size=2", "eval.sample_prompt=",
        "start_from=",
        # plain DPO (the shipped config adds RPO's chosen-story loss): step 1's loss is ln 2
        "preference.sft_weight=0"]

pytestmark = pytest.mark.slow


def config(data: Path, out: Path, *sets: str) -> FinetuneConfig:
    return load_config(FinetuneConfig, PREFERENCE, [*TINY, f"data.dir={data}", f"out={out}", *sets])


def adapter(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "final" / "adapter_model.safetensors")


def records(run_dir: Path, kind: str) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


@pytest.fixture(scope="module")
def prefs(tmp_path_factory) -> Path:
    return write_preference_data(tmp_path_factory.mktemp("prefs") / "curated")


DPO = ["train.max_steps=12", "eval.every_steps=6", "checkpoint.every_steps=3",
       "checkpoint.keep_last=2"]


@pytest.fixture(scope="module")
def dpo(prefs, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "dpo"
    return out, run(config(prefs, out, *DPO))


def test_dpo_run_writes_every_file_and_records_its_settings(dpo, prefs):
    out, result = dpo
    for name in ("config.yaml", "run.json", "metrics.jsonl", "summary.json", "reference.pt"):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    plots = {p.name for p in (out / "plots").glob("*.png")}
    assert {"loss.png", "reward_margin.png", "reward_accuracy.png"} <= plots
    info = json.loads((out / "run.json").read_text())
    assert info["objective"] == "dpo" and info["pairs"]["train"] == 12
    assert info["reference"]["items"] == 20 and info["reference"]["read_back"] is False
    assert info["fingerprint"]["objective"] == "dpo"
    meta = json.loads((out / "final" / "storyteller.json").read_text())
    assert meta["objective"] == "dpo" and meta["preference"]["beta"] == 0.1
    assert meta["data_provenance"] == {"made_by": "curate", "judgements": {"studio pick": 12},
                                       "kinds": {"pair": 12}}
    for name in ("adapter_model.safetensors", "tokenizer.json", "chat_template.jinja", "COMPLETE"):
        assert (out / "final" / name).is_file(), name
    s = result.summary
    assert s["final_train_reward_accuracy"] is not None and s["test_reward_accuracy"] is not None
    assert s["reference_seconds"] > 0


def test_dpo_raises_reward_margin_and_accuracy_on_its_pairs(dpo):
    out, result = dpo
    train = records(out, "train")
    evals = records(out, "eval")
    assert [r["step"] for r in train] == list(range(1, 13))
    # the first step starts at the reference: zero margin, loss log 2
    assert train[0]["reward_margin"] == pytest.approx(0, abs=1e-6)
    assert train[0]["loss"] == pytest.approx(0.693147, abs=1e-5)
    late = train[-4:]
    assert min(r["reward_margin"] for r in late) > 0.05
    assert sum(r["reward_accuracy"] for r in late) / len(late) > 0.75
    assert sum(r["loss"] for r in late) / len(late) < 0.66
    assert evals[0]["val_reward_margin"] == pytest.approx(0, abs=1e-6)
    assert evals[-1]["val_reward_margin"] > 0.05 and evals[-1]["val_reward_accuracy"] >= 0.75


@contextlib.contextmanager
def interrupting_at(step: int):
    def on_step(state, record):
        if record.get("kind") == "train" and state.step == step:
            raise KeyboardInterrupt

    yield on_step


def test_interrupt_then_resume_gives_the_same_adapter(dpo, prefs, tmp_path, monkeypatch):
    reference_out, _ = dpo
    out = tmp_path / "interrupted"
    with monkeypatch.context() as patch:
        patch.setattr(run_module, "progress_bar", lambda total, start, main: interrupting_at(5))
        with pytest.raises(KeyboardInterrupt):
            run(config(prefs, out, *DPO))
    assert (out / "checkpoints" / "step-000005" / "COMPLETE").exists()
    assert not (out / "final").exists()
    resumed = run(config(prefs, out, *DPO), resume=True)
    assert json.loads((out / "run.json").read_text())["reference"]["read_back"] is True
    a, b = adapter(reference_out), adapter(out)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in records(out, "train")] == list(range(1, 13))
    assert resumed.summary["final_train_reward_margin"] == \
        json.loads((reference_out / "summary.json").read_text())["final_train_reward_margin"]


def test_resume_refuses_a_reference_computed_from_other_weights(prefs, tmp_path):
    out = tmp_path / "other"
    run(config(prefs, out, "train.max_steps=1", "eval.every_steps=0", "checkpoint.every_steps=1"))
    saved = torch.load(out / "reference.pt", weights_only=False)
    saved["fingerprint"]["from"] = "elsewhere"
    torch.save(saved, out / "reference.pt")
    shutil.rmtree(out / "final")
    with pytest.raises(InputError, match="reference.pt: was computed from other weights"):
        run(config(prefs, out, "train.max_steps=2", "eval.every_steps=0",
                   "checkpoint.every_steps=1"), resume=True)


def test_from_an_sft_run_continues_its_adapter_with_it_as_reference(prefs, tmp_path):
    sft = train_tiny(write_data(tmp_path / "sft-data", train=8, val=2, test=2),
                     tmp_path / "sft", "train.max_steps=3", "lora.r=8")
    sft_adapter = adapter(sft)
    out = tmp_path / "from"
    result = run_cli("finetune", "--config", str(PREFERENCE), "--data", str(prefs),
                     "--out", str(out), "--from", str(sft),
                     *[a for s in TINY[:-1] + ["train.max_steps=2", "eval.every_steps=2",
                                              "checkpoint.every_steps=0"]
                       for a in ("--set", s)])
    assert result.returncode == 0, result.stderr
    meta = json.loads((out / "final" / "storyteller.json").read_text())
    assert meta["from"]["path"] == str(sft) and meta["base_model"] == "tiny-random"
    assert meta["from"]["manifest_sha256"] == json.loads(
        (sft / "final" / "storyteller.json").read_text())["data"]["manifest_sha256"]
    # the SFT adapter's rank is kept (the config said 16), and it is the one trained on
    assert json.loads((out / "final" / "adapter_config.json").read_text())["r"] == 8
    tuned = adapter(out)
    assert tuned.keys() == sft_adapter.keys()
    assert any(not torch.equal(tuned[k], sft_adapter[k]) for k in tuned)
    # the reference is the SFT model: the first step starts at zero margin
    first = records(out, "train")[0]
    assert first["reward_margin"] == pytest.approx(0, abs=1e-6)
    assert records(out, "eval")[0]["val_reward_margin"] == pytest.approx(0, abs=1e-6)


def test_kto_trains_on_thumbs_and_split_pairs(tmp_path):
    mixed = preference_records(6) + preference_records(10, unpaired=True, offset=2)
    data = write_preference_data(tmp_path / "mixed", train=12, val=4, test=0, records=mixed)
    result = run(config(data, tmp_path / "kto", "objective=kto", "train.max_steps=4",
                        "eval.every_steps=2", "checkpoint.every_steps=0"))
    info = json.loads((result.run_dir / "run.json").read_text())
    assert info["pairs"]["train"] == 6 * 2 + 6  # each pair as a good and a bad story
    train = records(result.run_dir, "train")
    assert train[0]["loss"] == pytest.approx(0.5, abs=1e-6)  # 1 - sigmoid(0) at the reference
    assert all("kl" in r and r["kl"] >= 0 for r in train)
    assert records(result.run_dir, "eval")[-1]["val_reward_margin"] is not None
    assert json.loads((result.final / "storyteller.json").read_text())["objective"] == "kto"


@pytest.mark.parametrize("objective, sets", [("orpo", []), ("simpo", ["preference.beta=2.0"])])
def test_reference_free_objectives_train_without_a_reference(prefs, tmp_path, objective, sets):
    result = run(config(prefs, tmp_path / objective, f"objective={objective}", *sets,
                        "train.max_steps=6", "eval.every_steps=6", "checkpoint.every_steps=0"))
    assert not (result.run_dir / "reference.pt").exists()
    assert "reference" not in json.loads((result.run_dir / "run.json").read_text())
    evals = records(result.run_dir, "eval")
    # the same validation pairs before and after: the objective falls, the margin grows
    assert evals[-1]["val_loss"] < evals[0]["val_loss"]
    assert evals[-1]["val_reward_margin"] > evals[0]["val_reward_margin"]


def test_a_pair_without_its_rejected_story_is_refused_at_its_line(tmp_path):
    rows = preference_records(4)
    del rows[2]["rejected"]
    data = write_preference_data(tmp_path / "bad", train=4, val=0, test=0, records=rows)
    with pytest.raises(InputError) as info:
        run(config(data, tmp_path / "bad-run", "objective=kto", "train.max_steps=1"))
    assert f"{data / 'train.jsonl'}:3" in str(info.value) and "'rejected'" in str(info.value)


def test_thumbs_only_into_dpo_and_sft_data_into_dpo_are_refused(tmp_path):
    thumbs = write_preference_data(tmp_path / "thumbs", train=4, val=0, test=0,
                                   records=preference_records(4, unpaired=True))
    with pytest.raises(InputError, match="objective=kto"):
        run(config(thumbs, tmp_path / "r1", "train.max_steps=1"))
    sft = write_data(tmp_path / "sft", train=4, val=1, test=1)
    result = run_cli("finetune", "--config", str(PREFERENCE), "--data", str(sft),
                     "--out", str(tmp_path / "r2"), "--set", "model.base=tiny-random",
                     "--set", "start_from=")
    assert result.returncode == 1
    assert "not a preference directory" in result.stderr and "--preferences" in result.stderr
