"""A small curated data directory made from the starter corpus, for fine-tuning tests: real
stories and the real prompt renderer, cut short so the tiny model trains in seconds."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from storyteller.prompts import StoryRequest, render_messages

STARTER = Path(__file__).resolve().parents[2] / "corpora" / "starter"
CONTROLS = ("genre", "style", "tone", "audience", "pov")


def starter_stories() -> list[dict]:
    stories = []
    for path in sorted(STARTER.glob("*.jsonl")):
        stories += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return stories


def write_data(out: Path, train: int = 24, val: int = 6, test: int = 6, words: int = 60) -> Path:
    """Curated-format splits (train/val/test.jsonl + manifest.json) of premise pairs."""
    out.mkdir(parents=True, exist_ok=True)
    stories = starter_stories()
    chosen = stories[::max(1, len(stories) // (train + val + test))][:train + val + test]
    pairs = []
    for story in chosen:
        controls = {k: story[k] for k in CONTROLS if story.get(k)}
        request = StoryRequest(kind="premise", controls=controls, premise=story["premise"])
        text = " ".join(story["text"].split()[:words])
        pairs.append({"id": f"{story['id']}-premise", "group": story["id"],
                      "messages": render_messages(request, text), "controls": controls,
                      "source": {"file": "starter", "line": 1}, "kind": "premise",
                      "augmented": None})
    splits = {"train": pairs[:train], "val": pairs[train:train + val],
              "test": pairs[train + val:]}
    outputs = {}
    for name, rows in splits.items():
        data = "".join(json.dumps(r) + "\n" for r in rows).encode()
        (out / f"{name}.jsonl").write_bytes(data)
        outputs[f"{name}.jsonl"] = hashlib.sha256(data).hexdigest()
    (out / "manifest.json").write_text(json.dumps({"outputs": outputs}, indent=1))
    return out


def train_tiny(data: Path, out: Path, *sets: str) -> Path:
    """A few quickstart steps of the tiny random model on `data`, as a run directory `out`."""
    from storyteller.config import load_config
    from storyteller.finetune.config import FinetuneConfig
    from storyteller.finetune.run import run

    quickstart = Path(__file__).resolve().parents[2] / "configs" / "finetune" / "quickstart.yaml"
    run(load_config(FinetuneConfig, quickstart, [
        "model.base=tiny-random", "data.max_length=512", f"data.dir={data}", f"out={out}",
        "eval.every_steps=0", "checkpoint.every_steps=0", "eval.test_at_end=false", *sets]))
    return out
