"""`storyteller finetune` end to end on the tiny random model: the run directory, resume after
SIGKILL, refusals, gradient accumulation, early stopping and every method."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from storyteller.config import load_config
from storyteller.errors import ConfigError, InputError
from storyteller.finetune.config import FinetuneConfig
from storyteller.finetune.run import run
from tests.conftest import ROOT, run_cli
from tests.integration.finetune_data import write_data

QUICKSTART = ROOT / "configs" / "finetune" / "quickstart.yaml"
TINY = ["model.base=tiny-random", "data.max_length=512", "eval.max_pairs=0",
        "train.warmup_steps=1", "train.lr=5e-3"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("data") / "curated")


def config(data: Path, out: Path, *sets: str) -> FinetuneConfig:
    return load_config(FinetuneConfig, QUICKSTART,
                       [*TINY, f"data.dir={data}", f"out={out}", *sets])


def adapter(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "final" / "adapter_model.safetensors")


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "full"
    result = run(config(data, out, "train.max_steps=6", "eval.every_steps=2",
                        "checkpoint.every_steps=2", "checkpoint.keep_last=1"))
    return out, result


def test_run_directory_holds_the_contract(finished, data):
    out, result = finished
    for name in ("config.yaml", "run.json", "metrics.jsonl", "summary.json"):
        assert (out / name).is_file(), name
    info = json.loads((out / "run.json").read_text())
    manifest_hash = __import__("hashlib").sha256((data / "manifest.json").read_bytes()).hexdigest()
    assert info["data"]["manifest_sha256"] == manifest_hash
    assert info["git"] is None or len(info["git"]["commit"]) == 40
    # precision auto: bf16 autocast where the CPU has native bf16, fp32 elsewhere
    from storyteller.finetune.model import choose_precision
    expected = choose_precision("auto", torch.device("cpu")).name
    assert info["environment"]["packages"]["torch"] and info["precision"]["name"] == expected
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (out / "plots").glob("*.png")) == [
        "grad_norm.png", "learning_rate.png", "loss.png", "tokens_per_s.png"]
    final = out / "final"
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json",
                 "chat_template.jinja", "storyteller.json", "README.md", "COMPLETE"):
        assert (final / name).is_file(), name
    meta = json.loads((final / "storyteller.json").read_text())
    assert meta["base_model"] == "tiny-random" and meta["control_schema"]["genre"]
    assert set(meta["genres"]) >= {"fable", "adventure"} and meta["styles"]
    assert "Test loss" in (final / "README.md").read_text()


def test_checkpoints_are_complete_and_pruned_keeping_best(finished):
    out, result = finished
    checkpoints = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert all((out / "checkpoints" / c / "COMPLETE").exists() for c in checkpoints)
    best = f"step-{result.summary['best_step']:06d}"
    # keep_last 1 plus the best one; nothing half-written left behind
    assert checkpoints[-1] == "step-000006" and best in checkpoints and len(checkpoints) <= 2


def test_metrics_log_training_and_validation(finished):
    out, result = finished
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in train] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in evals] == [0, 2, 4, 6]
    assert all(r["tokens_per_s"] > 0 and r["lr"] >= 0 and r["grad_norm"] > 0 for r in train)
    assert train[0]["lr"] > 0 and train[-1]["lr"] < max(r["lr"] for r in train), "cosine decay"
    assert evals[-1]["val_loss"] < evals[0]["val_loss"], "training must lower validation loss"
    s = result.summary
    assert s["test_loss_tuned"] < s["test_loss_base"]


def test_resume_of_a_finished_run_changes_nothing(finished, data):
    out, result = finished
    before = adapter(out)
    again = run(config(data, out, "train.max_steps=6", "eval.every_steps=2",
                       "checkpoint.every_steps=2", "checkpoint.keep_last=1"), resume=True)
    assert again.summary == result.summary and max_difference(before, adapter(out)) == 0


def test_a_second_run_into_the_same_directory_is_refused(finished, data):
    out, _ = finished
    with pytest.raises(InputError, match="already holds a run"):
        run(config(data, out, "train.max_steps=6"))


@pytest.mark.parametrize("change", ["lora.r=8", "model.base=smollm2-135m", "data"])
def test_resume_refuses_other_base_data_or_rank(finished, data, tmp_path, change):
    out, _ = finished
    sets = ["train.max_steps=8"]
    target = data
    if change == "data":
        target = write_data(tmp_path / "other", train=20)
    else:
        sets.append(change)
    with pytest.raises(ConfigError) as info:
        run(config(target, out, *sets), resume=True)
    text = str(info.value)
    key = {"lora.r=8": "lora.r", "model.base=smollm2-135m": "model.base",
           "data": "data.manifest_sha256"}[change]
    assert key in text and "start a new run" in text


def test_batch_four_equals_batch_one_times_accumulation_four(data, tmp_path):
    common = ["train.max_steps=1", "eval.every_steps=0", "eval.test_at_end=false",
              "checkpoint.every_steps=0", "checkpoint.keep_best=false", "log.plots=false",
              "data.max_length=256", "train.max_grad_norm=0"]
    wide = run(config(data, tmp_path / "b4", *common, "train.batch_size=4", "train.grad_accum=1"))
    deep = run(config(data, tmp_path / "b1", *common, "train.batch_size=1", "train.grad_accum=4"))
    loss = lambda r: json.loads((r.run_dir / "metrics.jsonl").read_text().splitlines()[0])["loss"]
    assert wide.summary["supervised_tokens"] == deep.summary["supervised_tokens"]
    assert loss(wide) == pytest.approx(loss(deep), rel=1e-6, abs=1e-6)
    assert max_difference(adapter(wide.run_dir), adapter(deep.run_dir)) <= 1e-6


def test_early_stopping_keeps_the_best_checkpoint(data, tmp_path):
    # A learning rate this large makes validation loss climb after the first steps.
    result = run(config(data, tmp_path / "early", "train.max_steps=20", "train.lr=3.0",
                        "train.max_grad_norm=0", "train.schedule=constant",
                        "eval.every_steps=1", "eval.patience=2", "checkpoint.every_steps=50",
                        "checkpoint.final_from_best=true"))
    s = result.summary
    assert s["stopped_early"] and s["steps"] < 20
    assert s["final_from_step"] == s["best_step"]
    assert (result.run_dir / "checkpoints" / f"step-{s['best_step']:06d}" / "COMPLETE").exists()


@pytest.mark.parametrize("method, sets", [
    ("qlora", []),
    ("full", []),
    ("lora", ["lora.dora=true", "lora.rslora=true", "train.neftune_alpha=5",
              "model.gradient_checkpointing=true", "model.attention=sdpa"]),
])
def test_every_method_trains_and_writes_final(data, tmp_path, method, sets):
    result = run(config(data, tmp_path / method, f"model.method={method}", "train.max_steps=2",
                        "eval.every_steps=0", "checkpoint.every_steps=1", *sets))
    final = result.run_dir / "final"
    weights = "model.safetensors" if method == "full" else "adapter_model.safetensors"
    assert (final / weights).is_file()
    assert result.summary["test_loss_tuned"] < result.summary["test_loss_base"]
    if method == "qlora":
        assert json.loads((final / "adapter_config.json").read_text())["r"] == 16


# --- killed and resumed -------------------------------------------------------------------

def cli_args(data: Path, out: Path, steps: int) -> list[str]:
    sets = [*TINY, "train.max_steps=%d" % steps, "eval.every_steps=3", "checkpoint.every_steps=1",
            "checkpoint.keep_last=2", "train.lr=5e-3", "lora.dropout=0.1"]
    return ["finetune", "--config", str(QUICKSTART), "--data", str(data), "--out", str(out),
            *[arg for s in sets for arg in ("--set", s)]]


def start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "STORYTELLER_QUIET": "1"}
    return subprocess.Popen([sys.executable, "-m", "storyteller.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_when(process: subprocess.Popen, ready, timeout: float = 300) -> bool:
    """SIGKILL `process` as soon as `ready()` holds; False if it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if ready():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.002)
    process.kill()
    raise AssertionError("training did not reach the kill point in time")


def test_sigkill_at_random_moments_then_resume_gives_the_same_adapter(data, tmp_path):
    steps = 10
    reference = tmp_path / "reference"
    done = run_cli(*cli_args(data, reference, steps))
    assert done.returncode == 0, done.stderr

    out = tmp_path / "killed"
    checkpoints = out / "checkpoints"
    rng = random.Random(os.getpid())
    staging = lambda: checkpoints.is_dir() and any(p.name.startswith(".staging-")
                                                   for p in checkpoints.iterdir())
    # First kill: during a save (as soon as a checkpoint's staging directory appears).
    # --resume with no checkpoint yet starts afresh.
    kills = kill_when(start(cli_args(data, out, steps) + ["--resume"]), staging)
    # Then kills at random moments after some progress.
    for _ in range(2):
        started = time.monotonic()
        delay = rng.uniform(0.5, 4.0)
        kills += kill_when(start(cli_args(data, out, steps) + ["--resume"]),
                           lambda: time.monotonic() - started > delay)
    assert kills >= 2, "training finished before it could be killed; raise steps"
    resumed = run_cli(*cli_args(data, out, steps), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert max_difference(adapter(reference), adapter(out)) <= 1e-5
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, steps + 1))


def test_leftovers_of_a_killed_save_are_ignored(data, tmp_path):
    out = tmp_path / "leftovers"
    result = run(config(data, out, "train.max_steps=2", "eval.every_steps=0",
                        "checkpoint.every_steps=1", "checkpoint.keep_last=5"))
    checkpoints = out / "checkpoints"
    # A save killed before its marker, and a staging directory killed mid-write.
    (checkpoints / "step-000002" / "COMPLETE").unlink()
    (checkpoints / ".staging-step-000003-1").mkdir()
    (checkpoints / ".staging-step-000003-1" / "weights.safetensors").write_bytes(b"partial")
    before = adapter(out)
    shutil.rmtree(out / "final")
    again = run(config(data, out, "train.max_steps=2", "eval.every_steps=0",
                       "checkpoint.every_steps=1", "checkpoint.keep_last=5"), resume=True)
    assert again.summary["steps"] == 2
    assert not (checkpoints / ".staging-step-000003-1").exists()
    assert max_difference(before, adapter(out)) <= 1e-6
    assert (checkpoints / "step-000002" / "COMPLETE").exists()
    assert result.summary["test_loss_tuned"] == pytest.approx(again.summary["test_loss_tuned"], abs=1e-6)


def test_cli_reports_a_missing_data_directory(tmp_path):
    done = run_cli("finetune", "--config", str(QUICKSTART), "--data", str(tmp_path / "nope"),
                   "--out", str(tmp_path / "run"), "--set", "model.base=tiny-random")
    assert done.returncode == 1
    assert "not a curated data directory" in done.stderr and "storyteller curate" in done.stderr


def test_cli_reports_a_bad_line_in_the_data(data, tmp_path):
    broken = write_data(tmp_path / "broken")
    lines = (broken / "train.jsonl").read_text().splitlines()
    lines[2] = lines[2][:40]
    (broken / "train.jsonl").write_text("\n".join(lines) + "\n")
    done = run_cli("finetune", "--config", str(QUICKSTART), "--data", str(broken),
                   "--out", str(tmp_path / "run"), "--set", "model.base=tiny-random")
    assert done.returncode == 1
    assert f"{broken / 'train.jsonl'}:3: not valid JSON" in done.stderr


def test_sigterm_saves_a_checkpoint_and_says_how_to_resume(data, tmp_path):
    out = tmp_path / "term"
    args = cli_args(data, out, 200) + ["--set", "checkpoint.every_steps=0", "--set",
                                       "eval.every_steps=0", "--set", "checkpoint.keep_best=false"]
    env = {**os.environ, "STORYTELLER_QUIET": ""}
    process = subprocess.Popen([sys.executable, "-m", "storyteller.cli", *args], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.exists() and metrics.read_text().count('"train"') >= 2):
        assert process.poll() is None and time.monotonic() < deadline, "training never started"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "--resume" in stderr
    saved = [p for p in (out / "checkpoints").iterdir() if (p / "COMPLETE").exists()]
    assert saved and json.loads((saved[-1] / "state.json").read_text())["step"] >= 2


def test_two_runs_in_one_process_may_use_different_precisions(data, tmp_path):
    """The accelerator's settings are process-wide; a second run asking for another precision
    (bf16 after fp32, as LoRA after QLoRA does on a GPU) must not be refused."""
    for precision in ("fp32", "bf16"):
        result = run(config(data, tmp_path / precision, f"model.precision={precision}",
                            "train.max_steps=1", "checkpoint.every_steps=0",
                            "eval.test_at_end=false"))
        run_json = json.loads((result.run_dir / "run.json").read_text())
        assert run_json["precision"]["name"] == precision
