"""What `storyteller finetune` does differently for a preference objective or a --from run:
read the preference directory, tokenise its items, start from a finished run's final/, and the
extra keys of run.json, metrics, summary.json and storyteller.json. run.py calls these at a few
branch points and keeps its own flow."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from storyteller import console
from storyteller.files import sha256_of
from storyteller.errors import InputError
from storyteller.finetune import preference
from storyteller.finetune.config import FinetuneConfig
from storyteller.finetune.prefdata import (PrefItem, check_usable, provenance,
                                           read_preference_data, tokenize_records)


def _select(records: list, seed: int, limit: int) -> list:
    if limit and len(records) > limit:
        keep = sorted(np.random.default_rng(seed).permutation(len(records))[:limit].tolist())
        records = [records[i] for i in keep]
    return records


def read_data(cfg: FinetuneConfig):
    """The preference splits, the manifest hash and the judgements' provenance."""
    splits, data_hash = read_preference_data(Path(cfg.data.dir))
    return splits, data_hash, provenance(Path(cfg.data.dir), splits)


def tokenize_splits(splits, cfg: FinetuneConfig, tokenizer):
    """Items per split (data.max_train_pairs and eval.max_pairs count records, seeded as for
    SFT); records that cannot be trained on are reported by id with the reason."""
    items: dict[str, list[PrefItem]] = {}
    rejected = []
    limits = {"train": cfg.data.max_train_pairs, "val": cfg.eval.max_pairs, "test": 0}
    for name, records in splits.items():
        kept, bad = tokenize_records(_select(records, cfg.seed, limits[name]), cfg.objective,
                                     tokenizer, cfg.data.max_length)
        items[name] = kept
        rejected += [(name, r) for r in bad]
        if name == "train":
            check_usable(kept, bad, cfg.objective, str(Path(cfg.data.dir) / "train.jsonl"))
    return items, rejected


# --- --from RUN ---------------------------------------------------------------------------

def start_from(cfg: FinetuneConfig) -> tuple[FinetuneConfig, dict[str, Any] | None]:
    """With --from RUN: the config on RUN's base (and, for an adapter, RUN's LoRA settings, which
    the continued adapter keeps) and what storyteller.json records about RUN; else as given."""
    if not cfg.start_from:
        return cfg, None
    run_dir = Path(cfg.start_from)
    final = run_dir / "final"
    meta_path = final / "storyteller.json"
    if not (final / "COMPLETE").exists() or not meta_path.is_file():
        raise InputError.at(f"--from {run_dir}", "not a finished run (no final/ with COMPLETE "
                                                  "and storyteller.json)",
                            "name a run directory that storyteller finetune completed")
    meta = json.loads(meta_path.read_text())
    info = {"path": str(run_dir), "base_model": meta["base_model"],
            "adapter": bool(meta.get("adapter")),
            "manifest_sha256": (meta.get("data") or {}).get("manifest_sha256"),
            "final_sha256": sha256_of(final / ("adapter_model.safetensors" if meta.get("adapter")
                                               else "model.safetensors"))}
    model = dataclasses.replace(cfg.model, base=meta["base_model"])
    lora = cfg.lora
    if info["adapter"]:
        saved = json.loads((final / "adapter_config.json").read_text())
        targets = saved["target_modules"]
        targets = sorted(targets) if isinstance(targets, (list, set)) else targets
        theirs = {"r": saved["r"], "alpha": saved["lora_alpha"],
                  "rslora": bool(saved.get("use_rslora")), "dora": bool(saved.get("use_dora"))}
        ours = {"r": lora.r, "alpha": lora.alpha, "rslora": lora.rslora, "dora": lora.dora}
        if theirs != ours:
            console.console.print(f"[yellow]warning[/]: the config's lora {ours} differs from "
                                  f"{final}'s adapter {theirs}; the adapter is continued as it is")
        lora = dataclasses.replace(lora, r=saved["r"], alpha=saved["lora_alpha"],
                                   rslora=theirs["rslora"], dora=theirs["dora"],
                                   target_modules=targets)
        if cfg.model.method == "full":
            raise InputError.at(f"--from {run_dir}", "holds an adapter; model.method full "
                                                      "would not continue it",
                                "use model.method lora (or qlora)")
    return dataclasses.replace(cfg, model=model, lora=lora), info


def build_model(cfg: FinetuneConfig, base_path, precision, device, start: dict | None):
    """The model to train: the base with a new adapter (or all weights), or --from RUN's
    adapter continued as the trainable one, on RUN's base."""
    from storyteller.finetune.model import apply_method, enable_checkpointing, load_base

    if start is None or not start["adapter"]:
        # A full-weights run's final/ is itself the model to start from.
        path = Path(start["path"]) / "final" if start else base_path
        return apply_method(load_base(cfg, path, precision, device), cfg)
    from peft import PeftModel, prepare_model_for_kbit_training

    base = load_base(cfg, base_path, precision, device)
    if cfg.model.method == "qlora":
        base = prepare_model_for_kbit_training(
            base, use_gradient_checkpointing=cfg.model.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False})
    elif cfg.model.gradient_checkpointing:
        enable_checkpointing(base)
        base.enable_input_require_grads()
    return PeftModel.from_pretrained(base, Path(start["path"]) / "final", is_trainable=True)


def loss_model(model, cfg: FinetuneConfig):
    from storyteller.finetune.model import PreferenceLoss

    return PreferenceLoss(model, cfg.objective, cfg.preference)


def reference(cfg: FinetuneConfig, run_dir: Path, model, items: dict[str, list[PrefItem]],
              accelerator, data_hash: str, start: dict | None, precision: str, resume: bool,
              main: bool) -> dict[str, Any] | None:
    """DPO and KTO: every item's reference log-probabilities, computed with the starting
    weights before the first step or read back from RUN_DIR/reference.pt (reference.py);
    recorded in run.json. None for objectives without a reference (ORPO, SimPO) and SFT."""
    if cfg.objective not in ("dpo", "kto"):
        return None
    from storyteller.finetune import reference as ref
    from storyteller.finetune.run import write_json_atomic

    def say(text: str) -> None:
        if main and not console.quiet():
            console.console.print(text)

    current = ref.fingerprint(cfg, data_hash, start, precision)
    info = ref.load_or_compute(run_dir, say, model, items, cfg.eval.batch_size,
                               accelerator.device, accelerator.autocast, current, resume, main)
    if main:
        run_json = run_dir / "run.json"
        data = json.loads(run_json.read_text())
        data["reference"] = info
        write_json_atomic(run_json, data)
    return info


def fingerprint_extra(cfg: FinetuneConfig, start: dict | None) -> dict[str, Any]:
    """Fingerprint keys a resume must keep, only for runs that have them (an SFT run's
    fingerprint stays what it always was)."""
    extra = {}
    if cfg.preference_run:
        extra["objective"] = cfg.objective
        extra["preference"] = dataclasses.asdict(cfg.preference)
    if start is not None:
        extra["from"] = {"path": start["path"], "final_sha256": start["final_sha256"]}
    return extra


# --- metrics ------------------------------------------------------------------------------

def eval_extras(loss_model, accelerator):
    """The Loop's eval_extras: validation reward metrics of the evaluation just run."""
    def extras() -> dict[str, Any]:
        stats = accelerator.unwrap_model(loss_model).last_eval
        return preference.metrics(stats, "val_") if stats is not None else {}
    return extras


def test_results(loss_model, items, cfg, accelerator) -> dict[str, Any]:
    """Objective, reward accuracy and margin of the tuned model on the test split."""
    from storyteller.finetune.loop import evaluate_loss

    if not items:
        return {}
    loss, _ = evaluate_loss(loss_model, items, cfg.eval.batch_size, 0, accelerator)
    stats = accelerator.unwrap_model(loss_model).last_eval
    return {"test_objective": loss, **preference.metrics(stats, "test_")}


def summary_extra(records: list[dict[str, Any]], reference: dict | None) -> dict[str, Any]:
    """summary.json's preference keys: the last train and validation reward metrics, and the
    reference pass's time."""
    out = {"reference_seconds": reference["seconds"] if reference else None}
    train = [r for r in records if r.get("kind") == "train" and "reward_margin" in r]
    evals = [r for r in records if r.get("kind") == "eval" and "val_reward_margin" in r]
    for key in ("reward_accuracy", "reward_margin", "reward_chosen", "reward_rejected", "kl"):
        if train and key in train[-1]:
            out[f"final_train_{key}"] = train[-1][key]
        if evals and f"val_{key}" in evals[-1]:
            out[f"final_val_{key}"] = evals[-1][f"val_{key}"]
    return out


def metadata_extra(cfg: FinetuneConfig, start: dict | None, prov: dict | None) -> dict[str, Any]:
    """storyteller.json's keys for a preference or --from run."""
    out: dict[str, Any] = {"objective": cfg.objective}
    if cfg.preference_run:
        out["preference"] = dataclasses.asdict(cfg.preference)
    if start is not None:
        out["from"] = {"path": start["path"], "manifest_sha256": start["manifest_sha256"]}
    if prov is not None:
        out["data_provenance"] = prov
    return out
