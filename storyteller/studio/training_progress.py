"""How far a fine-tune run got, read from its folder while another process writes it: the
loss curve, the pace and the time left (metrics.jsonl), the latest sample story
(samples.jsonl), the complete checkpoints, and which runs are training now. Any run folder
works: a studio job's, or one started from a terminal."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyteller.catalog import read_yaml
from storyteller.studio.training_recipes import config_value


@dataclass
class Progress:
    step: int = 0
    total: int = 0
    train: list[tuple[int, float]] = field(default_factory=list)  # (step, loss)
    val: list[tuple[int, float]] = field(default_factory=list)  # (step, validation loss)
    tokens_per_s: float | None = None
    seconds_per_step: float | None = None
    sample: dict[str, Any] | None = None  # the latest {"step", "prompt", "story"}
    checkpoints: list[int] = field(default_factory=list)

    @property
    def eta_s(self) -> float | None:
        if self.seconds_per_step is None or not self.total:
            return None
        return max(0, self.total - self.step) * self.seconds_per_step


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The whole lines of a JSONL file another process is appending to (a cut last line is
    left for the next read)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            break
    return records


def progress_of(records: list[dict[str, Any]], total: int) -> Progress:
    """The curve, the pace and the time left from metrics.jsonl's records."""
    train = [(r["step"], r["loss"]) for r in records
             if r.get("kind") == "train" and isinstance(r.get("loss"), (int, float))
             and math.isfinite(r["loss"])]
    val = [(r["step"], r["val_loss"]) for r in records
           if r.get("kind") == "eval" and isinstance(r.get("val_loss"), (int, float))]
    timed = [r for r in records if r.get("kind") == "train" and r.get("seconds") is not None]
    rates = [r["tokens_per_s"] for r in timed[-5:] if r.get("tokens_per_s")]
    per_step = None
    if len(timed) >= 2 and timed[-1]["step"] > timed[0]["step"]:
        recent = timed[-10:]
        per_step = (recent[-1]["seconds"] - recent[0]["seconds"]) / \
            (recent[-1]["step"] - recent[0]["step"]) if len(recent) >= 2 and \
            recent[-1]["step"] > recent[0]["step"] else None
    elif len(timed) == 1 and timed[0]["step"]:
        per_step = timed[0]["seconds"] / timed[0]["step"]
    return Progress(step=max([s for s, _ in train] + [s for s, _ in val] + [0]), total=total,
                    train=train, val=val, tokens_per_s=sum(rates) / len(rates) if rates else None,
                    seconds_per_step=per_step)


def run_progress(run: Path, config: Path | None = None) -> Progress:
    """Any fine-tune run's progress from its folder: the curve, pace, ETA, latest sample and
    complete checkpoints. `config` gives the planned steps (default: the run's config.yaml)."""
    from storyteller.finetune.checkpoint import complete_checkpoints

    try:
        total = int(config_value(read_yaml(config or run / "config.yaml"), "train.max_steps") or 0)
    except (ValueError, TypeError, AttributeError):
        total = 0
    progress = progress_of(read_jsonl(run / "metrics.jsonl"), total)
    samples = read_jsonl(run / "samples.jsonl")
    progress.sample = samples[-1] if samples else None
    root = run / "checkpoints"
    progress.checkpoints = [int(p.name.rsplit("-", 1)[-1]) for p in complete_checkpoints(root)] \
        if root.is_dir() else []
    return progress


def runs_in_progress(runs: Path, within_s: float = 600.0, now: float | None = None) -> list[Path]:
    """Runs under `runs` (started from a terminal or a script, such as the demo's quickstart)
    that are training now: no final/COMPLETE and metrics written within `within_s` seconds."""
    now = time.time() if now is None else now
    found = []
    for metrics in sorted(runs.glob("*/metrics.jsonl")) if runs.is_dir() else []:
        run = metrics.parent
        if (run / "final" / "COMPLETE").is_file():
            continue
        if now - metrics.stat().st_mtime <= within_s:
            found.append(run)
    return found
