"""Training logs: metrics.jsonl, TensorBoard event files and PNG plots.

On resume, records after the checkpoint's step are dropped from metrics.jsonl and TensorBoard
(purge_step), so the logs read as one uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by a kill: everything after it is newer than any checkpoint
    return records


class MetricsLog:
    def __init__(self, run_dir: Path, resume_step: int, tensorboard: bool):
        self.path = run_dir / "metrics.jsonl"
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self.file = open(self.path, "a")
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"),
                                        purge_step=resume_step + 1 if resume_step else None)

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.writer is not None:
            for key, value in record.items():
                if key not in ("step", "kind", "epoch") and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{record['kind']}/{key}", value, record["step"])

    def close(self) -> None:
        self.file.close()
        if self.writer is not None:
            self.writer.close()


PLOTS = {
    "loss.png": ("Story loss", [("train", "loss", "train"), ("eval", "val_loss", "validation")]),
    "learning_rate.png": ("Learning rate", [("train", "lr", "learning rate")]),
    "grad_norm.png": ("Gradient norm (before clipping)", [("train", "grad_norm", "gradient norm")]),
    "tokens_per_s.png": ("Throughput", [("train", "tokens_per_s", "tokens/s"),
                                        ("train", "supervised_per_s", "supervised tokens/s")]),
}


def plot_metrics(records: list[dict[str, Any]], out: Path) -> list[Path]:
    """One PNG per quantity against the optimizer step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, (title, series) in PLOTS.items():
        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
        drawn = False
        for kind, key, label in series:
            points = [(r["step"], r[key]) for r in records
                      if r.get("kind") == kind and r.get(key) is not None]
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, marker="o" if kind == "eval" else None,
                        markersize=3, label=label)
                drawn = True
        ax.set_title(title)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(loc="best")
        fig.tight_layout()
        fig.savefig(out / filename)
        plt.close(fig)
        written.append(out / filename)
    return written
