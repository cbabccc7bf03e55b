"""bench/selection.py on the tiny random model: every kept checkpoint probed as the training loop
probed it, the step each eval.select rule keeps, the chosen checkpoints exported as model
directories holding exactly their weights, and the BENCHMARKS.md section."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bench import selection
from storyteller.finetune.config import EvalConfig
from tests.integration.finetune_data import train_tiny, write_data

# Probing at every evaluation (eval.probe), so metrics.jsonl holds what the loop's probe saw at
# each step; keep_last 2 prunes some checkpoints, so the rules choose among fewer than all.
SETS = ["eval.max_pairs=0", "eval.sample_prompt=", "eval.probe=true", "eval.probe_tokens=12",
        "eval.probe_styled=4", "eval.probe_plain=2", "train.max_steps=8", "train.warmup_steps=1",
        "train.lr=2e-2", "eval.every_steps=2", "checkpoint.every_steps=2",
        "checkpoint.keep_last=2", "checkpoint.keep_best=true", "log.plots=false"]

pytestmark = pytest.mark.slow


def steps_of(run_dir: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in (run_dir / "checkpoints").iterdir()
                  if (p / "COMPLETE").exists())


@pytest.fixture(scope="module", params=["lora", "full"])
def benched(request, tmp_path_factory):
    """A finished tiny run (an adapter, or every weight trained), and the bench's command line
    run on it with every output."""
    root = tmp_path_factory.mktemp(f"selection-{request.param}")
    data = write_data(root / "data", train=16, val=12, test=2, words=2)
    # Trained in full, the model learns within a few steps to end at once (empty stories): keep
    # the earlier checkpoints too, so the rows still differ.
    extra = ["checkpoint.keep_last=4"] if request.param == "full" else []
    run_dir = train_tiny(data, root / "run", *SETS, f"model.method={request.param}", *extra)
    doc = root / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\n## Other bench\n\nkept as it is\n\n"
                   f"{selection.SECTION} (`bench/selection.py`)\n\nold numbers\n\n"
                   "## Last bench\n\nalso kept\n")
    selection.main([str(run_dir), "--export", str(root / "chosen"), "--json",
                    str(root / "rows.json"), "--write", str(doc)])
    return run_dir, data, json.loads((root / "rows.json").read_text()), root / "chosen", doc


def test_every_kept_checkpoint_is_probed_as_the_loop_probed_it(benched):
    run_dir, _, found, _, _ = benched
    rows = found["rows"]
    kept = steps_of(run_dir)
    evals = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = {r["step"]: r for r in evals if r["kind"] == "eval"}
    assert [r["step"] for r in rows] == kept
    assert len(kept) < len(evals)  # keep_last pruned some: the bench says it chose among fewer
    for row in rows:
        logged = evals[row["step"]]
        assert row["val_loss"] == pytest.approx(logged["val_loss"])
        # The same prompts, weights and greedy decoding: the scores the run logged at that step.
        for key in ("style_adherence", "stop_rate", "hollow_rate", "judge_score",
                    "adherence_log", "adherence_noir"):
            assert row[key] == pytest.approx(logged[key]), (row["step"], key)
        assert row["logged"]["stop_rate"] == logged["stop_rate"]
        assert len(row["stories"]) == 6 and all(s["step"] == row["step"] for s in row["stories"])
    # The stories are the run's own, word for word.
    probed = [json.loads(l) for l in (run_dir / "probe.jsonl").read_text().splitlines()]
    for row in rows:
        assert [s["story"] for s in row["stories"]] == \
            [p["story"] for p in probed if p["step"] == row["step"]]
    # Each checkpoint's own weights wrote its row: the stories are not all one step's.
    assert len({tuple(s["story"] for s in r["stories"]) for r in rows}) > 1


def test_each_rule_keeps_a_kept_checkpoint_as_the_loop_ranks(benched):
    run_dir, _, found, _, _ = benched
    rows, chosen = found["rows"], found["choices"]
    kept = steps_of(run_dir)
    assert set(chosen) == {"loss", "style", "mixed"} and all(s in kept for s in chosen.values())
    # loss: the run chose by loss and kept its best, so the replay lands on the run's choice.
    summary = json.loads((run_dir / "summary.json").read_text())
    assert chosen["loss"] == summary["best_step"]
    # style: the most stories in their house style, then the most that end, then the lower loss.
    best = max(rows, key=lambda r: (r["style_adherence"], r["stop_rate"], -r["val_loss"]))
    assert chosen["style"] == best["step"]


def test_the_replay_ranks_each_step_against_the_evaluations_before_it():
    e = EvalConfig(select_margin=0.05)
    evaluations = {0: {"step": 0, "val_loss": 3.0}, 2: {"step": 2, "val_loss": 2.0},
                   4: {"step": 4, "val_loss": 2.05}, 6: {"step": 6, "val_loss": 2.5}}
    row = lambda step, style, stop, hollow=0.0: {**evaluations[step], "style_adherence": style,
                                                  "stop_rate": stop, "hollow_rate": hollow}
    # Step 2 was pruned: only 0, 4 and 6 can be kept, but step 2's loss still sets mixed's margin.
    rows = [row(0, 0.0, 0.0), row(4, 0.5, 0.5), row(6, 1.0, 1.0)]
    got = selection.choices(rows, evaluations, e)
    assert got == {"loss": 4, "style": 6, "mixed": 4}  # 2.5 is 25% above 2.0: out of the margin
    # The hollow stories count against mixed; a tie in style goes to more stories that end.
    rows = [row(0, 0.5, 0.0), row(4, 0.5, 0.5, hollow=1.0)]
    assert selection.choices(rows, evaluations, e) == {"loss": 4, "style": 4, "mixed": 0}
    # A checkpoint at a step without an evaluation has no loss and is never chosen.
    assert selection.choose("style", [{"step": 3, "val_loss": None, "style_adherence": 1.0}],
                            evaluations, 0.05, 0.0) is None


def test_export_writes_model_directories_holding_the_chosen_weights(benched):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from storyteller.models import inspect_model

    run_dir, _, found, chosen_dir, _ = benched
    adapter = (run_dir / "final" / "adapter_config.json").exists()
    weights_file = "adapter_model.safetensors" if adapter else "model.safetensors"
    steps = sorted(set(found["choices"].values()))
    assert sorted(p.name for p in chosen_dir.iterdir()) == [f"step-{s:06d}" for s in steps]
    for step in steps:
        target = chosen_dir / f"step-{step:06d}"
        source = inspect_model(str(target))
        assert source.adapter == (target if adapter else None)
        assert (target / "COMPLETE").exists()
        assert (target / "tokenizer_config.json").exists()
        meta = source.metadata
        assert meta["checkpoint"]["step"] == step
        assert sorted(meta["checkpoint"]["chosen_by"]) == \
            sorted(k for k, v in found["choices"].items() if v == step)
        assert meta["results"]["final_from_step"] == step
        # Loaded as storyteller evaluate loads it: the adapter's weights are the checkpoint's.
        weights = load_file(run_dir / "checkpoints" / f"step-{step:06d}" / "weights.safetensors")
        model = AutoModelForCausalLM.from_pretrained(source.weights, dtype=torch.float32)
        if adapter:
            model = PeftModel.from_pretrained(model, target)
        params = dict(model.named_parameters())
        assert weights and all(torch.equal(params[k], v) for k, v in weights.items())
    # At least one export differs from final/ (the last step's weights), else nothing was replaced.
    final = load_file(run_dir / "final" / weights_file)
    exported = [load_file(chosen_dir / f"step-{s:06d}" / weights_file)
                for s in steps]
    assert exported[0].keys() == final.keys()
    if steps != [steps_of(run_dir)[-1]]:
        assert any(not all(torch.equal(e[k], final[k]) for k in final) for e in exported)


def test_the_section_replaces_its_own_and_keeps_the_rest(benched):
    run_dir, _, found, chosen_dir, doc = benched
    text = doc.read_text()
    assert "kept as it is" in text and "also kept" in text and "old numbers" not in text
    assert text.count(selection.SECTION) == 1
    section = text[text.index(selection.SECTION):text.index("## Last bench")]
    for row in found["rows"]:
        assert f"| {row['step']} | {row['val_loss']:.4f} |" in section
    assert "| step | val loss | house style | log | noir | ended | hollow | judge | chosen by |" \
        in section
    assert "CPU flags" in section and "python -m bench.selection" in section
    assert f"storyteller evaluate --model {chosen_dir}/step-" in section
    line = next(l for l in section.splitlines() if l.startswith(f"| {found['choices']['style']} |"))
    assert "style" in line.split("|")[-2]


def test_a_run_without_final_is_probed_with_the_adapter_its_config_builds(benched, tmp_path):
    run_dir, data, found, _, _ = benched
    copy = tmp_path / "unfinished"
    shutil.copytree(run_dir, copy)
    shutil.rmtree(copy / "final")
    info = selection.read_run(copy, data)
    model, tokenizer, _, autocast = selection.load_model(info)
    rows = selection.probe_checkpoints(info, model, tokenizer, autocast, say=lambda _: None)
    assert [(r["step"], r["stop_rate"], r["judge_score"]) for r in rows] == \
        [(r["step"], r["stop_rate"], r["judge_score"]) for r in found["rows"]]
    from storyteller.errors import InputError

    with pytest.raises(InputError, match="not complete"):
        selection.export(info, model, rows, {"loss": rows[0]["step"]}, tmp_path / "out")


def test_a_preference_run_is_probed_on_its_prompts_and_unevaluated_steps_choose_nothing(tmp_path):
    from storyteller.config import load_config
    from storyteller.finetune.config import FinetuneConfig
    from storyteller.finetune.run import run
    from tests.conftest import ROOT
    from tests.integration.preference_data import write_preference_data

    prefs = write_preference_data(tmp_path / "prefs")
    out = tmp_path / "dpo"
    # A checkpoint at every step, an evaluation every second one: steps 1 and 3 have no loss.
    run(load_config(FinetuneConfig, ROOT / "configs" / "finetune" / "preference.yaml", [
        "model.base=tiny-random", "data.max_length=512", "eval.max_pairs=0", "train.lr=5e-3",
        "train.warmup_steps=0", "eval.sample_prompt=", "start_from=", f"data.dir={prefs}",
        f"out={out}", "train.max_steps=4", "eval.every_steps=2", "checkpoint.every_steps=1",
        "checkpoint.keep_last=4", "eval.probe=true", "eval.probe_tokens=8",
        "eval.test_at_end=false", "log.plots=false"]))
    info = selection.read_run(out)
    assert info.cfg.objective == "dpo" and info.data_note is None
    model, tokenizer, _, autocast = selection.load_model(info)
    rows = selection.probe_checkpoints(info, model, tokenizer, autocast, say=lambda _: None)
    assert [r["step"] for r in rows] == steps_of(out) == [1, 2, 3, 4]
    evals = {r["step"]: r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
             if r["kind"] == "eval"}
    prompts = {json.dumps(r["prompt"][-1]["content"])
               for r in map(json.loads, (prefs / "val.jsonl").read_text().splitlines())}
    for row in rows:
        assert all(json.dumps(s["prompt"]) in prompts for s in row["stories"])
        if row["step"] in evals:
            assert row["val_loss"] == pytest.approx(evals[row["step"]]["val_loss"])
            assert row["stop_rate"] == evals[row["step"]]["stop_rate"]
        else:
            assert row["val_loss"] is None
    chosen = selection.choices(rows, info.evaluations, info.cfg.eval)
    assert set(chosen.values()) <= {2, 4}
    assert "| 1 | - (not evaluated) |" in selection.table(rows, chosen)
