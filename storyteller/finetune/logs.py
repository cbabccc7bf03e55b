"""Training logs: metrics.jsonl, samples.jsonl, probe.jsonl, TensorBoard event files and PNG
plots.

On resume, records after the checkpoint's step are dropped from metrics.jsonl, samples.jsonl,
probe.jsonl and TensorBoard (purge_step), so the logs read as one uninterrupted run; a run started afresh in a
directory a killed attempt left (no complete checkpoint yet) drops all of them."""

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


def keep_until(path: Path, step: int | None) -> list[dict[str, Any]]:
    """Rewrite the JSONL log at `path` with its records up to `step` (none when `step` is None,
    a fresh start); returns them."""
    kept = [r for r in read_metrics(path) if step is not None and r.get("step", 0) <= step]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
    return kept


class MetricsLog:
    def __init__(self, run_dir: Path, resume_step: int | None, tensorboard: bool):
        """`resume_step`: the step of the checkpoint the run continues from, None for a fresh
        start."""
        self.path = run_dir / "metrics.jsonl"
        self.samples_path = run_dir / "samples.jsonl"
        self.probe_path = run_dir / "probe.jsonl"
        keep_until(self.path, resume_step)
        keep_until(self.samples_path, resume_step)
        self.probes = None  # probe.jsonl, opened at the first probe (a run may have none)
        if self.probe_path.exists():
            keep_until(self.probe_path, resume_step)
        self.file = open(self.path, "a")
        self.samples = open(self.samples_path, "a")
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"),
                                        # A fresh start purges what a killed attempt
                                        # left (step 0 on); a resume, what followed its step.
                                        purge_step=0 if resume_step is None else resume_step + 1)

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.writer is not None:
            for key, value in record.items():
                if key not in ("step", "kind", "epoch") and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{record['kind']}/{key}", value, record["step"])

    def sample(self, record: dict[str, Any]) -> None:
        """One story the model wrote at an evaluation (storyteller/finetune/samples.py)."""
        from storyteller.finetune.samples import sample_markdown

        self.samples.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.samples.flush()
        if self.writer is not None:
            self.writer.add_text("sample", sample_markdown(record), record["step"])
            self.writer.add_scalar("sample/seconds", record["seconds"], record["step"])

    def probe(self, stories: list[dict[str, Any]]) -> None:
        """The stories of one evaluation's probe (storyteller/finetune/probe.py), one a line."""
        if self.probes is None:
            self.probes = open(self.probe_path, "a")
        self.probes.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in stories))
        self.probes.flush()

    def close(self) -> None:
        self.file.close()
        self.samples.close()
        if self.probes is not None:
            self.probes.close()
        if self.writer is not None:
            self.writer.close()


PLOTS = {
    "loss.png": ("Story loss", [("train", "loss", "train"), ("eval", "val_loss", "validation")]),
    "learning_rate.png": ("Learning rate", [("train", "lr", "learning rate")]),
    "grad_norm.png": ("Gradient norm (before clipping)", [("train", "grad_norm", "gradient norm")]),
    "tokens_per_s.png": ("Throughput", [("train", "tokens_per_s", "tokens/s"),
                                        ("train", "supervised_per_s", "supervised tokens/s")]),
}


# Preference runs only (drawn when the records carry them).
PREFERENCE_PLOTS = {
    "reward_margin.png": ("Reward margin (chosen - rejected)",
                          [("train", "reward_margin", "train"),
                           ("eval", "val_reward_margin", "validation")]),
    "reward_accuracy.png": ("Reward accuracy (chosen above rejected)",
                            [("train", "reward_accuracy", "train"),
                             ("eval", "val_reward_accuracy", "validation")]),
}


def plot_metrics(records: list[dict[str, Any]], out: Path) -> list[Path]:
    """One PNG per quantity against the optimizer step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    plots = dict(PLOTS)
    plots.update({name: spec for name, spec in PREFERENCE_PLOTS.items()
                  if any(key in r for r in records for _, key, _ in spec[1])})
    for filename, (title, series) in plots.items():
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


def plot_probe(records: list[dict[str, Any]], out: Path, final_step: int | None = None) -> Path | None:
    """probe.png: validation loss above, what the model writes below (house-style adherence,
    per style, stop and hollow rates) against the same steps, the step final/ came from marked
    on both; None where no evaluation was probed."""
    evals = [r for r in records if r.get("kind") == "eval" and r.get("stop_rate") is not None]
    if not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    steps = [r["step"] for r in evals]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(6.4, 5.6), dpi=110)
    top.plot(steps, [r["val_loss"] for r in evals], marker="o", markersize=3, label="validation loss")
    top.set_title("Validation loss and what the model writes")
    top.set_ylabel("story loss")
    per_style = sorted({k for r in evals for k in r if k.startswith("adherence_")})
    lines = [("style_adherence", "house style kept", 2.0, "-"),
             ("stop_rate", "ended by itself", 1.5, "--"),
             ("hollow_rate", "hollow", 1.5, ":")]
    lines += [(k, k[len("adherence_"):], 0.8, "-") for k in per_style]
    for key, label, width, style in lines:
        points = [(r["step"], r[key]) for r in evals if r.get(key) is not None]
        if points:
            xs, ys = zip(*points)
            bottom.plot(xs, ys, marker="o", markersize=3, linewidth=width, linestyle=style,
                        label=label, alpha=1.0 if width > 1 else 0.6)
    bottom.set_ylim(-0.05, 1.05)
    bottom.set_ylabel("share of probe stories")
    bottom.set_xlabel("optimizer step")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        if final_step is not None:
            ax.axvline(final_step, color="grey", linewidth=1, linestyle="--")
    top.legend(loc="best")
    bottom.legend(loc="best", fontsize="small", ncol=2)
    fig.tight_layout()
    path = out / "probe.png"
    fig.savefig(path)
    plt.close(fig)
    return path
