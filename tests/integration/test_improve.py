"""`storyteller improve` end to end on the tiny random model: every stage writes what its own
command writes, the verdict is recorded with its numbers, and a second run reuses every stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.finetune_data import train_tiny, write_data

pytestmark = pytest.mark.slow

SMALL = ["--prompts", "4", "-k", "2", "--max-tokens", "16", "--eval-limit", "4",
         "--set", "train.max_steps=2", "--set", "data.max_length=512",
         "--eval-set", "generation.max_tokens=12", "--eval-set", "metrics.bootstrap_resamples=200"]


@pytest.fixture(scope="module")
def sft(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("improve")
    data = write_data(root / "data", train=12, val=3, test=4)
    return data, train_tiny(data, root / "runs" / "tiny", "train.max_steps=2")


def test_improve_runs_every_stage_and_records_the_verdict(sft, tmp_path):
    data, run = sft
    out, models = tmp_path / "tiny-dpo", tmp_path / "models"
    result = run_cli("improve", "--run", str(run), "--out", str(out), "--models", str(models),
                     *SMALL)
    # 0: accepted and merged; 3: evaluated and not handed over. Anything else is a failure.
    assert result.returncode in (0, 3), result.stderr
    stages = json.loads((out / "improve.json").read_text())
    assert stages["data"] == str(data)  # taken from the run's run.json
    manifest = json.loads((out / "pairs" / "manifest.json").read_text())
    assert manifest["kind"] == "preference" and manifest["made_by"] == "pairs"
    assert manifest["counts"]["train"]["pair"] > 0  # the curated stories beat 16-token samples
    meta = json.loads((out / "run" / "final" / "storyteller.json").read_text())
    assert meta["objective"] == "dpo" and meta["from"]["path"] == str(run)
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    assert metrics["models"]["tuned"]["ref"] == str(out / "run")
    assert metrics["models"]["base"]["ref"] == str(run)
    decision = stages["decision"]
    assert decision["accept"] == (result.returncode == 0)
    assert {f["metric"] for f in decision["findings"]} >= {"style_pass", "perplexity", "hollow"}
    if decision["accept"]:
        assert (models / out.name / "verification.json").is_file()
    else:
        assert not (models / out.name).exists() and decision["reason"]
        assert result.stdout.strip() == str(out / "improve.json")
    # Run again: every stage's output is complete, so nothing is sampled, trained or evaluated.
    samples = (out / "pairs" / "samples.jsonl").stat().st_mtime_ns
    adapter = (out / "run" / "final" / "adapter_model.safetensors").stat().st_mtime_ns
    again = run_cli("improve", "--run", str(run), "--out", str(out), "--models", str(models),
                    *SMALL)
    assert again.returncode == result.returncode, again.stderr
    assert (out / "pairs" / "samples.jsonl").stat().st_mtime_ns == samples
    assert (out / "run" / "final" / "adapter_model.safetensors").stat().st_mtime_ns == adapter


def test_improve_refuses_what_is_not_a_finished_run(tmp_path):
    result = run_cli("improve", "--run", str(tmp_path / "nothing"))
    assert result.returncode == 1
    assert "is not a finished run" in result.stderr and "storyteller finetune" in result.stderr
    result = run_cli("improve", "--run", str(tmp_path), "--objective", "ppo")
    assert result.returncode == 1 and "--objective" in result.stderr
