"""What a finished run leaves and says: final/ written whole or not at all, and the lines a
person reads at the start and the end of `storyteller finetune`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from storyteller import console
from storyteller.finetune import checkpoint as ckpt


def write_final(final: Path, model, tokenizer, meta: dict[str, Any], model_card: str) -> None:
    """final/: weights (adapter or full), tokenizer with its chat template, storyteller.json and
    the model card, written to a staging directory and renamed into place."""
    staging = final.with_name(".final-staging")
    if staging.exists():
        shutil.rmtree(staging)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    if tokenizer.chat_template and not (staging / "chat_template.jinja").exists():
        (staging / "chat_template.jinja").write_text(tokenizer.chat_template)
    (staging / "storyteller.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    (staging / "README.md").write_text(model_card)
    (staging / ckpt.COMPLETE).write_text("ok\n")
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)


def describe_start(cfg, plan, precision, trainable, total, latest, world, main) -> None:
    if not main or console.quiet():
        return
    what = f"{cfg.model.method} on {cfg.model.base}"
    console.console.print(
        f"finetune {cfg.name}: {what}, {trainable:,} of {total:,} parameters trainable, "
        f"{precision.name} ({precision.reason}); "
        + (f"packs of up to {cfg.data.max_length} tokens streamed {cfg.data.stream_buffer} pairs "
           f"at a time" if cfg.data.streaming else
           f"{len(plan.packs)} packs of up to {cfg.data.max_length} tokens")
        + f", {plan.total_steps} steps"
        + (f" on {world} processes" if world > 1 else "")
        + (f"; resuming after step {latest.state.step}" if latest else ""))


def describe_end(summary: dict[str, Any], run_dir: Path) -> None:
    if console.quiet():
        return
    rows = [("steps", summary["steps"]), ("training time", f"{summary['train_seconds']} s"),
            ("supervised tokens", f"{summary['supervised_tokens']:,}"),
            ("supervised tokens/s", f"{summary['supervised_per_s']:.1f}"
             if summary["supervised_per_s"] else "-")]
    if summary["best_val_loss"] is not None:
        rows.append(("best validation loss", f"{summary['best_val_loss']:.4f} (step {summary['best_step']})"))
    if summary["test_loss_tuned"] is not None:
        base, tuned = summary["test_loss_base"], summary["test_loss_tuned"]
        rows.append(("test story loss", f"{base:.4f} base → {tuned:.4f} tuned ({tuned - base:+.4f})"))
    if summary.get("final_probe"):
        rows.append(("final/ writes", f"step {summary['final_from_step']} "
                     f"({summary['selected_by']}): house style "
                     f"{summary['final_probe'].get('style_adherence')}, ended "
                     f"{summary['final_probe'].get('stop_rate')}"))
    rows.append(("final model", f"{run_dir / 'final'}"))
    console.console.print(console.table(f"finetune: {run_dir}", ["", "value"], rows))
