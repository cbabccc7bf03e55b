"""report.md of `storyteller pairs`: what the samples were like and what pairs they gave. Pure:
sample records and per-prompt outcomes in, markdown out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

PLAIN = "(no house style)"


def style_rows(samples: Sequence[Mapping[str, Any]],
               outcomes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per requested house style (and one row for the rest): samples, their style pass rate,
    hollow samples, prompts, pairs made and prompts that gave none."""
    rows: dict[str, dict[str, Any]] = {}

    def row(style: str | None) -> dict[str, Any]:
        return rows.setdefault(style or PLAIN, {"style": style or PLAIN, "samples": 0,
                                                "passed": 0, "hollow": 0, "prompts": 0,
                                                "pairs": 0, "tied": 0, "best_hollow": 0})

    for sample in samples:
        judgement = sample["judgement"]
        entry = row(judgement["style"])
        entry["samples"] += 1
        entry["passed"] += bool(judgement["style_passed"])
        entry["hollow"] += bool(judgement["hollow"])
    for outcome in outcomes:
        entry = row(outcome["style"])
        entry["prompts"] += 1
        entry["pairs"] += outcome["pairs"]
        entry["tied"] += outcome["reason"] == "tied"
        entry["best_hollow"] += outcome["reason"] == "best is hollow"
    return sorted(rows.values(), key=lambda r: (r["style"] == PLAIN, r["style"]))


def markdown(summary: Mapping[str, Any], samples: Sequence[Mapping[str, Any]],
             outcomes: Sequence[Mapping[str, Any]]) -> str:
    per_prompt = summary["pairs_per_prompt"]
    lines = ["# Self-judged preference pairs", "",
             f"- **model**: `{summary['model']}`",
             f"- **prompts from**: `{summary['data']}` (train prompts → train pairs, val "
             "prompts → val pairs; the test split is never read)",
             f"- {summary['samples_per_prompt']} stories per prompt, preset "
             f"`{summary['preset']}`, at most {summary['max_tokens']} new tokens, seed "
             f"{summary['seed']}, engine {summary['engine']}; a pair needs a score difference of "
             f"at least {summary['min_margin']} (best vs worst"
             + (f", up to {per_prompt} per prompt" if per_prompt > 1 else "") + ").",
             f"- Prompts: {summary['prompts']['train']} train, {summary['prompts']['val']} val; "
             f"pairs: {summary['pairs']['train']} train, {summary['pairs']['val']} val.",
             "- Scores come from `storyteller/judge.py`: the house style counts most, then "
             "stopping by itself, a length of 60–900 words and no loops; a hollow story (a check "
             "passed emptily) scores below every story that is not.",
             (f"- The prompt's own curated story was a candidate too, judged the same way: "
              f"chosen in {summary.get('reference_chosen', 0)} of the pairs (the rest chose a "
              f"story of the model's)." if summary.get("with_reference") else
              "- Only the model's stories were candidates."), "",
             "## By requested style", "",
             "| style | samples | style passed | hollow | prompts | pairs | no pair: tied "
             "| no pair: best hollow |", "|---|---|---|---|---|---|---|---|"]
    for row in style_rows(samples, outcomes):
        passed = (f"{row['passed'] / row['samples']:.0%} ({row['passed']})"
                  if row["style"] != PLAIN and row["samples"] else "n/a")
        lines.append(f"| {row['style']} | {row['samples']} | {passed} | {row['hollow']} | "
                     f"{row['prompts']} | {row['pairs']} | {row['tied']} | {row['best_hollow']} |")
    tied = [o for o in outcomes if o["reason"] == "tied"]
    lines += ["", "## Prompts that gave no pair because every sample tied", ""]
    if not tied:
        lines.append("None.")
    for outcome in tied:
        scores = ", ".join(f"{s:.2f}" for s in outcome["scores"])
        lines.append(f"- `{outcome['prompt_id']}` ({outcome['split']}, "
                     f"{outcome['style'] or PLAIN}): scores {scores}")
    hollow = [s for s in samples if s["judgement"]["hollow"]]
    if hollow:
        lines += ["", "## Hollow samples", ""]
        for sample in hollow[:20]:
            lines.append(f"- `{sample['key']}`: " + "; ".join(sample["judgement"]["hollow"]))
        if len(hollow) > 20:
            lines.append(f"- … and {len(hollow) - 20} more (OUT/samples.jsonl)")
    return "\n".join(lines) + "\n"
