"""The reference log-probabilities of DPO and KTO, computed once before the first step.

The reference is the policy as training starts: the base model (a new adapter starts as the
identity), or the --from run's adapter as loaded. Its log-probabilities of every training,
validation and test sequence are computed in one pass, in eval mode without gradients, and
cached in RUN_DIR/reference.pt with a fingerprint of what they were computed from; a --resume
reads them back (the weights it restores are no longer the starting ones, so it could not
recompute them), and a cache whose fingerprint differs is refused, not used. Computing them
once instead of at every step saves one forward pass of every item per step: no second model,
no adapter switching, the same numbers at every step."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import torch

from storyteller.errors import InputError
from storyteller.finetune.prefdata import PrefItem, collate_items

FILE = "reference.pt"


def fingerprint(cfg, data_hash: str, start_from: dict[str, Any] | None,
                precision: str) -> dict[str, Any]:
    """What the reference depends on: the starting weights, the data and how it is cut."""
    return {"model.base": cfg.model.base, "model.method": cfg.model.method,
            "from": start_from, "data.manifest_sha256": data_hash,
            "data.max_length": cfg.data.max_length, "objective": cfg.objective,
            "precision": precision}


@torch.no_grad()
def compute(model, items: Sequence[PrefItem], batch_size: int, device,
            autocast) -> dict[str, tuple[float, float]]:
    """Summed log-probability of both sequences of every item under `model` as it is now."""
    from storyteller.finetune.model import sequence_logps

    was_training = model.training
    model.eval()
    out = {}
    try:
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            batch = collate_items(chunk, with_reference=False)
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v
                     for k, v in batch.items()}
            with autocast():
                sums, _ = sequence_logps(model, batch["input_ids"], batch["position_ids"],
                                         batch["labels"], batch["segments"],
                                         batch["cu_seq_lens_q"])
            sums = sums.double().view(-1, 2).cpu().tolist()
            out.update({item.id: (a, b) for item, (a, b) in zip(chunk, sums)})
    finally:
        model.train(was_training)
    return out


def load_or_compute(run_dir: Path, print_: Any, model, splits: dict[str, list[PrefItem]],
                    batch_size: int, device, autocast, current: dict[str, Any],
                    resume: bool, main: bool) -> dict[str, Any]:
    """Fill every item's `reference`, from the cache when it matches, else by computing; returns
    what run.json records (file, seconds, items, whether it was read back)."""
    path = run_dir / FILE
    items = [item for split in splits.values() for item in split]
    if resume and path.exists():
        saved = torch.load(path, weights_only=False)
        if saved["fingerprint"] != current:
            raise InputError.at(str(path), "was computed from other weights or data",
                                "resume with the settings the run started with, or start a new "
                                "run with --out")
        logps = saved["logps"]
        missing = [i.id for i in items if i.id not in logps]
        if missing:
            raise InputError.at(str(path), f"has no reference for {missing[0]}",
                                "start a new run with --out")
        seconds, cached = saved["seconds"], True
    else:
        started = time.perf_counter()
        logps = compute(model, items, batch_size, device, autocast)
        seconds, cached = time.perf_counter() - started, False
        if main:
            run_dir.mkdir(parents=True, exist_ok=True)
            staging = path.with_suffix(".pt.partial")
            torch.save({"fingerprint": current, "logps": logps, "seconds": seconds}, staging)
            staging.rename(path)
        print_(f"reference log-probabilities of {len(items)} items computed in {seconds:.1f} s "
               f"(cached in {path})")
    for item in items:
        item.reference = tuple(logps[item.id])
    return {"file": FILE, "items": len(items), "seconds": round(seconds, 2), "read_back": cached}
