"""How well the offline genre tagger does: 5-fold cross-validation on the starter corpus.

Reports accuracy over all stories and, per confidence floor, the share of stories tagged
(coverage) and the accuracy among them — the trade-off behind `tags.min_confidence`.

    .venv/bin/python -m bench.tagger [--write docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from storyteller.curate.tag import TextClassifier

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tagger",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    stories = [json.loads(line) for path in sorted((ROOT / "corpora/starter").glob("*.jsonl"))
               for line in path.read_text(encoding="utf-8").splitlines()]
    texts = np.array([s["text"] for s in stories], dtype=object)
    genres = np.array([s["genre"] for s in stories])
    predicted = np.empty(len(stories), dtype=object)
    confidence = np.zeros(len(stories))
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(texts, genres):
        model = TextClassifier(list(texts[train]), list(genres[train]))
        for index, (value, score) in zip(test, model.predict(list(texts[test]))):
            predicted[index], confidence[index] = value, score
    correct = predicted == genres
    rows = [f"all stories: accuracy {correct.mean():.2f} ({len(stories)} stories, "
            f"{len(set(genres))} genres, chance {1 / len(set(genres)):.2f})"]
    for floor in (0.2, 0.3, 0.4, 0.5):
        chosen = confidence >= floor
        rows.append(f"confidence >= {floor}: coverage {chosen.mean():.2f}, "
                    f"accuracy {correct[chosen].mean() if chosen.any() else float('nan'):.2f}")
    print("\n".join(rows))
    if args.write:
        with args.write.open("a", encoding="utf-8") as handle:
            handle.write(f"\n{datetime.date.today()}, {platform.node()}:\n\n"
                         + "\n".join(f"- {r}" for r in rows) + "\n")


if __name__ == "__main__":
    main()
