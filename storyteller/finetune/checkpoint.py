"""Checkpoints that survive being killed at any moment.

Each checkpoint is written into a staging directory and renamed into place; its `COMPLETE`
marker is written last, so a directory without one is never read. Only complete checkpoints
count when resuming and pruning."""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

COMPLETE = "COMPLETE"
PREFIX = "step-"
STAGING = ".staging-"


@dataclass
class TrainState:
    """Where training is: enough, with the weights, optimizer, scheduler and RNG, to go on
    exactly as if it had never stopped."""

    step: int = 0  # optimizer steps taken
    micro_batches: int = 0  # micro-batches consumed (the data position)
    tokens: int = 0  # tokens seen, padding excluded
    supervised: int = 0  # supervised tokens seen
    seconds: float = 0.0  # training time so far, across restarts
    best_loss: float | None = None
    best_step: int | None = None
    evals_without_gain: int = 0
    stopped_early: bool = False
    base_test_loss: float | None = None  # measured before the first step
    history: list[dict[str, Any]] = field(default_factory=list)  # evaluations so far
    # Where a streamed training split is (data.streaming): its cursor as plain data; None when
    # the split is held whole, whose data position is `micro_batches` alone.
    stream: dict[str, Any] | None = None
    # eval.select style or mixed: the best evaluation's rank (selection.py) and its probe scores.
    # best_loss and best_step are that evaluation's, whichever way it was chosen.
    best_rank: list[float] | None = None
    best_probe: dict[str, Any] | None = None


# Left out of state.json when unused, so that a run which does not use them writes the same
# checkpoints it wrote before they existed.
OPTIONAL = ("stream", "best_rank", "best_probe")


def state_dict(state: TrainState) -> dict[str, Any]:
    """state.json's content (OPTIONAL fields only when set)."""
    data = asdict(state)
    for key in OPTIONAL:
        if data[key] is None:
            del data[key]
    return data


def checkpoint_name(step: int) -> str:
    return f"{PREFIX}{step:06d}"


def complete_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under `root`, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir()
             if p.is_dir() and p.name.startswith(PREFIX) and (p / COMPLETE).exists()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def clear_staging(root: Path) -> None:
    """Remove what a killed save left behind."""
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(STAGING):
                shutil.rmtree(p, ignore_errors=True)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(root: Path, state: TrainState, weights: dict[str, torch.Tensor],
                    optimizer: dict, scheduler: dict, fingerprint: dict[str, Any]) -> Path:
    """Write checkpoint `state.step` atomically and return its directory."""
    from safetensors.torch import save_file

    root.mkdir(parents=True, exist_ok=True)
    target = root / checkpoint_name(state.step)
    staging = root / f"{STAGING}{target.name}-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    save_file({k: v.contiguous() for k, v in weights.items()}, staging / "weights.safetensors")
    torch.save({"optimizer": optimizer, "scheduler": scheduler, "rng": rng_state()},
               staging / "optimizer.pt")
    (staging / "state.json").write_text(json.dumps(state_dict(state), indent=1) + "\n")
    (staging / "fingerprint.json").write_text(json.dumps(fingerprint, indent=1) + "\n")
    with open(staging / COMPLETE, "w") as marker:
        marker.write("ok\n")
        marker.flush()
        os.fsync(marker.fileno())
    _fsync_dir(staging)
    if target.exists():  # a checkpoint of this step left by an earlier, killed attempt
        shutil.rmtree(target)
    staging.rename(target)
    _fsync_dir(root)
    return target


@dataclass
class Checkpoint:
    path: Path
    state: TrainState
    weights: dict[str, torch.Tensor]
    optimizer: dict
    scheduler: dict
    rng: dict[str, Any]
    fingerprint: dict[str, Any]


def load_checkpoint(path: Path) -> Checkpoint:
    from safetensors.torch import load_file

    extra = torch.load(path / "optimizer.pt", weights_only=False)
    state = TrainState(**json.loads((path / "state.json").read_text()))
    return Checkpoint(path, state, load_file(path / "weights.safetensors"), extra["optimizer"],
                      extra["scheduler"], extra["rng"],
                      json.loads((path / "fingerprint.json").read_text()))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path / "weights.safetensors")


def prune(root: Path, keep_last: int, keep: set[Path]) -> list[Path]:
    """Delete complete checkpoints except the newest `keep_last` and those in `keep`."""
    checkpoints = complete_checkpoints(root)
    doomed = [p for p in checkpoints[:-keep_last] if p not in keep] if keep_last else []
    for path in doomed:
        # Rename first so that a kill mid-delete never leaves a checkpoint that looks complete.
        trash = root / f"{STAGING}trash-{path.name}"
        path.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
    return doomed


def fingerprint_mismatches(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """`key: saved → current` for every setting that must not change across a resume."""
    return [f"{key}: {saved.get(key)!r} → {current.get(key)!r}"
            for key in sorted(set(saved) | set(current)) if saved.get(key) != current.get(key)]
