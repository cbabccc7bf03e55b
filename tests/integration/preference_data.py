"""A small curated preference directory from the starter corpus, for preference-tuning tests:
the chosen story is a real one, the rejected one the same words shuffled and cut short (what a
model should learn to rank below), written as the curate contract's records."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from storyteller.prompts import StoryRequest, render_messages
from tests.integration.finetune_data import CONTROLS, starter_stories


def _group(prompt) -> str:
    return "p-" + hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()[:16]


def preference_records(count: int, words: int = 40, unpaired: bool = False,
                       offset: int = 0) -> list[dict]:
    stories = starter_stories()
    chosen = stories[offset::max(1, len(stories) // (count + 1))][:count]
    rng = random.Random(0)
    records = []
    for number, story in enumerate(chosen):
        controls = {k: story[k] for k in CONTROLS if story.get(k)}
        request = StoryRequest(kind="premise", controls=controls, premise=story["premise"])
        good = " ".join(story["text"].split()[:words])
        shuffled = good.split()
        rng.shuffle(shuffled)
        bad = " ".join(shuffled[:words // 2])
        messages = render_messages(request, good)
        prompt = messages[:-1]
        base = {"id": f"{story['id']}-pref", "group": _group(prompt), "prompt": prompt,
                "controls": controls, "source": {"file": "starter", "line": number + 1},
                "judgement": "studio pick", "scores": None}
        if unpaired:
            label = number % 2 == 0
            records.append({**base, "kind": "unpaired", "judgement": "studio stars",
                            "completion": [{"role": "assistant", "content": good if label else bad}],
                            "label": label})
        else:
            records.append({**base, "kind": "pair",
                            "chosen": [{"role": "assistant", "content": good}],
                            "rejected": [{"role": "assistant", "content": bad}]})
    return records


def write_preference_data(out: Path, train: int = 12, val: int = 4, test: int = 4,
                          unpaired: bool = False, records: list[dict] | None = None) -> Path:
    """train/val/test.jsonl, rejects.jsonl and a preference manifest.json."""
    out.mkdir(parents=True, exist_ok=True)
    rows = records if records is not None else preference_records(train + val + test,
                                                                  unpaired=unpaired)
    splits = {"train": rows[:train], "val": rows[train:train + val],
              "test": rows[train + val:train + val + test]}
    outputs, counts = {}, {}
    for name, part in splits.items():
        data = "".join(json.dumps(r) + "\n" for r in part).encode()
        (out / f"{name}.jsonl").write_bytes(data)
        outputs[f"{name}.jsonl"] = hashlib.sha256(data).hexdigest()
        counts[name] = {"pair": sum(r["kind"] == "pair" for r in part),
                        "unpaired": sum(r["kind"] == "unpaired" for r in part)}
    (out / "rejects.jsonl").write_text("")
    counts["rejected"] = {}
    (out / "manifest.json").write_text(json.dumps(
        {"kind": "preference", "inputs": [], "counts": counts, "outputs": outputs,
         "config": {}, "made_by": "curate"}, indent=1))
    return out
