"""What a run records about itself: environment, git revision, `storyteller.json` and the model
card. Pure functions of their inputs except `environment()` and `git_revision()`."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import storyteller
from storyteller.prompts import CONTROL_SCHEMA, HEADER_FIELDS, SYSTEM_PROMPT

PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "datasets", "trl")


def git_revision() -> dict[str, Any] | None:
    """The checkout's commit and whether it has uncommitted changes; None outside a checkout."""
    root = Path(storyteller.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def environment(device) -> dict[str, Any]:
    import torch

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    env = {"python": platform.python_version(), "platform": platform.platform(),
           "storyteller": storyteller.__version__, "packages": versions,
           "device": str(device), "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads(),
           "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env


def controls_seen(pairs: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """Every value of every control in `pairs`, most frequent first."""
    counts: dict[str, Counter] = {}
    for pair in pairs:
        for key, value in (pair.get("controls") or {}).items():
            if key in HEADER_FIELDS and value:
                counts.setdefault(key, Counter())[str(value)] += 1
    return {key: [v for v, _ in counter.most_common()] for key, counter in counts.items()}


def model_metadata(cfg, base_path, seen: dict[str, list[str]], data: dict[str, Any],
                   results: dict[str, Any]) -> dict[str, Any]:
    """`storyteller.json`: what serving, evaluation and the app need to know about the model."""
    return {
        "storyteller_version": storyteller.__version__,
        "base_model": cfg.model.base,
        "base_model_path": str(base_path),
        "method": cfg.model.method,
        "adapter": cfg.adapter,
        "lora": {"r": cfg.lora.r, "alpha": cfg.lora.alpha, "rslora": cfg.lora.rslora,
                 "dora": cfg.lora.dora, "target_modules": cfg.lora.target_modules}
        if cfg.adapter else None,
        "system_prompt": SYSTEM_PROMPT,
        "control_schema": CONTROL_SCHEMA,
        "header_fields": list(HEADER_FIELDS),
        "genres": seen.get("genre", []),
        "styles": seen.get("style", []),
        "controls": seen,
        "max_length": cfg.data.max_length,
        "data": data,
        "results": results,
    }


def model_card(cfg, meta: dict[str, Any]) -> str:
    """README.md of `final/`: what the model is, how it was trained, how it did, how to use it."""
    results = meta["results"]
    lines = [
        f"# {cfg.name}",
        "",
        f"A story-writing model fine-tuned by storyteller from `{cfg.model.base}` "
        f"({cfg.model.method}{'' if not cfg.adapter else f', rank {cfg.lora.r}'}).",
        "",
        "## Controls",
        "",
        "Prompts carry a plain-text header rendered by `storyteller.prompts`, e.g. "
        "`[ Genre: fable; Style: moral ]`, a house style's rule, then the request.",
        "",
        f"- Genres seen in training: {', '.join(meta['genres']) or 'none recorded'}",
        f"- Styles seen in training: {', '.join(meta['styles']) or 'none recorded'}",
        "",
        "## Training",
        "",
        f"- Data: `{meta['data'].get('dir')}` (manifest sha256 `{meta['data'].get('manifest_sha256', '')[:16]}…`), "
        f"{meta['data'].get('train_pairs')} training pairs",
        f"- Steps: {results.get('steps')}, supervised tokens: {results.get('supervised_tokens')}, "
        f"precision: {results.get('precision')}",
        f"- Learning rate {cfg.train.lr} ({cfg.train.schedule}), batch {cfg.train.batch_size} x "
        f"accumulation {cfg.train.grad_accum}, sequences of up to {cfg.data.max_length} tokens, packed: {cfg.data.pack}",
        *([f"- Objective: {cfg.objective} (preference tuning"
           + (f", continuing `{cfg.start_from}`" if cfg.start_from else "")
           + "; the validation loss below is the objective, not story loss)"]
          if cfg.objective != "sft" else []),
        "",
        "## Results (story tokens only)" if cfg.objective == "sft" else "## Results",
        "",
    ]
    if results.get("best_val_loss") is not None:
        lines.append(f"- Best validation loss {results['best_val_loss']:.4f} at step {results['best_step']}")
    if results.get("test_loss_tuned") is not None:
        lines.append(f"- Test loss: base {results['test_loss_base']:.4f} → tuned "
                     f"{results['test_loss_tuned']:.4f}")
    if cfg.adapter:
        use = ["from peft import AutoPeftModelForCausalLM", "from transformers import AutoTokenizer",
               "", "model = AutoPeftModelForCausalLM.from_pretrained(\"<this directory>\")",
               "tokenizer = AutoTokenizer.from_pretrained(\"<this directory>\")"]
    else:
        use = ["from transformers import AutoModelForCausalLM, AutoTokenizer", "",
               "model = AutoModelForCausalLM.from_pretrained(\"<this directory>\")",
               "tokenizer = AutoTokenizer.from_pretrained(\"<this directory>\")"]
    lines += ["", "## Use", "", "```python", *use, "```", "",
              "Build prompts with `storyteller.prompts.render_messages` so they match training.", ""]
    return "\n".join(lines)
