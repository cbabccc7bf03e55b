"""Rating sheets as preference data: `storyteller ratings export`.

Pairwise answers (a rater chose side A or B between two models' stories for one prompt) give
pairs: the side most raters chose over the other, with the share of raters who chose each as
the pair's `scores` and that majority's share as its `agreement`; a tie, or no majority, gives
none. Scores give unpaired judgements: a story whose `overall` score (averaged over its raters,
each rater's repeats first averaged) is 4 or more is a good answer (`label: true`), 2 or less a
bad one. Raters the attention checks flag (as `ratings report` does) are left out.

The prompt is the chat messages the evaluated model was sent, from the generations the sheets
were made from (key.json names the file); every record has `judgement: "rating sheet"` and is a
shape `storyteller curate --preferences` reads. `build_*` are pure; `export` reads and writes."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Any

from storyteller.errors import InputError, Problem
from storyteller.ratings.agreement import rater_checks
from storyteller.ratings.key import Key
from storyteller.ratings.store import PreferenceRow, ScoreRow

SOURCE = "storyteller-ratings"
GOOD, BAD = 4.0, 2.0  # overall score at or above: a good answer; at or below: a bad one
DIMENSION = "overall"
KINDS = ("preference", "kto")


def prompt_messages(generation: Mapping[str, Any]) -> list[dict[str, str]]:
    """What the model was asked: the messages evaluate sent (without an answer), else the
    user prompt alone."""
    messages = [dict(m) for m in generation.get("messages") or []
                if isinstance(m, Mapping) and m.get("role") != "assistant"]
    return messages or [{"role": "user", "content": str(generation["prompt"])}]


def majority(choices: Sequence[str]) -> tuple[str, float] | None:
    """The side most raters chose ("A" or "B") and the share who chose it; None where "tie"
    has the most votes or no choice has more than every other."""
    counts = Counter(choices).most_common()
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]) or counts[0][0] == "tie":
        return None
    return counts[0][0], counts[0][1] / len(choices)


def kept_raters(key: Key, scores: Sequence[ScoreRow], prefs: Sequence[PreferenceRow]) -> set[str]:
    checks = rater_checks(scores, key)
    everyone = {r.rater for r in scores} | {p.rater for p in prefs}
    return {r for r in everyone if not (r in checks and checks[r].flagged)}


def build_pairs(key: Key, prefs: Sequence[PreferenceRow], raters: set[str],
                generations: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    votes: dict[str, list[str]] = defaultdict(list)
    for row in prefs:
        if row.rater in raters and row.item in key.pairs:
            votes[row.item].append(row.choice)
    records = []
    for item in key.pairs:
        decided = majority(votes.get(item, []))
        if decided is None:
            continue
        side, agreement = decided
        info = key.pairs[item]
        winner, loser = (info["a"], info["b"]) if side == "A" else (info["b"], info["a"])
        chosen, rejected = generations.get(winner["generation"]), \
            generations.get(loser["generation"])
        if chosen is None or rejected is None:
            continue
        share = Counter(votes[item])
        records.append({
            "id": f"rating-{item}", "prompt": prompt_messages(chosen),
            "chosen": chosen["text"], "rejected": rejected["text"],
            "judgement": "rating sheet", "controls": dict(chosen.get("controls") or {}),
            "scores": {"chosen": round(share[side] / len(votes[item]), 4),
                       "rejected": round(share["B" if side == "A" else "A"] / len(votes[item]), 4)},
            "agreement": round(agreement, 4), "votes": dict(sorted(share.items())),
            "models": {"chosen": winner["model"], "rejected": loser["model"]},
            "item": item, "source": SOURCE})
    return records


def build_unpaired(key: Key, scores: Sequence[ScoreRow], raters: set[str],
                   generations: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    # generation → rater → that rater's overall scores (a story and its repeat both count)
    given: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for row in scores:
        info = key.items.get(row.item)
        if row.rater in raters and row.dimension == DIMENSION and info \
                and info["type"] in ("story", "repeat"):
            given[info["generation"]][row.rater].append(row.score)
    records = []
    for generation_id in sorted(given):
        per_rater = [mean(values) for values in given[generation_id].values()]
        overall = mean(per_rater)
        generation = generations.get(generation_id)
        if generation is None or BAD < overall < GOOD:
            continue
        records.append({
            "id": f"rating-{generation_id}", "prompt": prompt_messages(generation),
            "completion": generation["text"], "label": overall >= GOOD,
            "judgement": "rating sheet", "controls": dict(generation.get("controls") or {}),
            "overall": round(overall, 4), "raters": len(per_rater),
            "model": generation.get("model"), "source": SOURCE})
    return records


def read_generations(path: Path) -> dict[str, dict[str, Any]]:
    """generation id → its record as evaluate wrote it (messages included)."""
    if not path.is_file():
        raise InputError(Problem(str(path), "the generations the sheets were made from are not "
                                            "there", "keep generations.jsonl where ratings make "
                                                     "read it (key.json names it)"))
    found = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(Problem(f"{path}:{number}", f"not valid JSON ({error.msg})")) from None
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            found[record["id"]] = record
    return found


@dataclass
class Exported:
    out: Path
    records: int
    raters: list[str]
    left_out: list[str]


def export(source: Path, out: Path, kind: str = "preference",
           store: Path | None = None) -> Exported:
    """Write the preference records of the imported ratings in `source` to `out` (JSONL)."""
    from storyteller.files import sha256_of, write_atomic
    from storyteller.ratings.run import KEY, load_key, ratings_dir, stored_answers

    if kind not in KINDS:
        raise InputError(Problem("--kind", f"{kind!r} is not an export kind",
                                 "use preference (pairs from the pairs sheets) or kto (good and "
                                 "bad stories from the overall scores)"))
    folder = ratings_dir(source)
    key = load_key(folder / KEY)
    store_path, scores, prefs = stored_answers(folder, store)
    relative = (key.raw.get("source") or {}).get("generations")
    if not relative:
        raise InputError(Problem(str(folder / KEY), "does not say which generations the sheets "
                                                    "came from", "make the sheets again with "
                                                                 "storyteller ratings make"))
    made_from = (key.raw.get("source") or {}).get("sha256")
    if made_from and (folder / relative).is_file() and sha256_of(folder / relative) != made_from:
        # The raters read the stories as they were when the sheets were made: their verdicts
        # must not be attached to other text.
        raise InputError(Problem(str(folder / relative), "changed after the sheets were made "
                                 "from it: the raters' verdicts are about the stories as they "
                                 "were then", "restore the generations the sheets were made "
                                 "from, or make and rate new sheets (storyteller ratings make)"))
    generations = read_generations(folder / relative)
    raters = kept_raters(key, scores, prefs)
    records = build_pairs(key, prefs, raters, generations) if kind == "preference" else \
        build_unpaired(key, scores, raters, generations)
    if not records:
        what = ("no pair item has a majority for A or B (ties give none)" if kind == "preference"
                else f"no story was scored {GOOD:g}+ or {BAD:g}- overall")
        raise InputError(Problem(str(store_path), f"nothing to export: {what}",
                                 "import more filled sheets" if kind == "kto" or key.pairs else
                                 "these sheets have no pairs: use --kind kto"))
    if out.is_dir():
        raise InputError(Problem(str(out), "is a folder", "give --out a file name, e.g. "
                                                          f"{out / 'ratings-prefs.jsonl'}"))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, "".join(json.dumps(r, ensure_ascii=False) + "\n"
                              for r in records).encode("utf-8"))
    everyone = sorted({r.rater for r in scores} | {p.rater for p in prefs})
    return Exported(out, len(records), sorted(raters), [r for r in everyone if r not in raters])
