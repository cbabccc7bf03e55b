"""report.md and its charts for the human ratings (plots/means.png, plots/alpha.png)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from storyteller.ratings.agreement import (
    ALPHA_RELIABLE,
    ALPHA_TENTATIVE,
    REPEAT_GAP_LIMIT,
)
from storyteller.ratings.analysis import Summary
from storyteller.ratings.checks import EXPECT_MAX
from storyteller.plots import pyplot, save_png

COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")


def _finite(x: float | None) -> bool:
    return x is not None and not math.isnan(x)


def chart_means(path: Path, summary: Summary, dimensions: Sequence[str]) -> None:
    plt = pyplot()
    models = summary.models or ["(none)"]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(dimensions) + 1), 3.8))
    width = 0.8 / len(models)
    for n, model in enumerate(models):
        xs, ys, low, high = [], [], [], []
        for k, d in enumerate(dimensions):
            interval = summary.means.get(model, {}).get(d)
            if interval is None or not _finite(interval.value):
                continue
            xs.append(k + (n - (len(models) - 1) / 2) * width)
            ys.append(interval.value)
            low.append(interval.value - interval.low)
            high.append(interval.high - interval.value)
        ax.bar(xs, ys, width=width, yerr=[low, high], capsize=3, label=model,
               color=COLOURS[n % len(COLOURS)])
    ax.set_xticks(range(len(dimensions)), dimensions, rotation=20)
    ax.set_ylim(1, 5.15)  # room for the caps of intervals that reach 5
    ax.set_ylabel("mean rating (1–5), 95% interval")
    ax.set_title("Human ratings by dimension and model")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    save_png(fig, path)


def chart_alpha(path: Path, summary: Summary) -> None:
    plt = pyplot()
    names = [a.dimension for a in summary.alphas]
    values = [a.value if a.value is not None else 0.0 for a in summary.alphas]
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    ax.bar(names, values, color="#4c72b0")
    for k, a in enumerate(summary.alphas):
        if a.value is None:
            ax.text(k, 0.02, "n/a", ha="center", va="bottom")
    ax.axhline(ALPHA_RELIABLE, color="#55a868", linestyle="--", label=f"reliable ({ALPHA_RELIABLE})")
    ax.axhline(ALPHA_TENTATIVE, color="#dd8452", linestyle=":",
               label=f"tentative ({ALPHA_TENTATIVE})")
    ax.set_ylim(min(0.0, min(values, default=0.0)) - 0.05, 1.05)
    ax.set_ylabel("Krippendorff's alpha (ordinal)")
    ax.set_title("Agreement between raters")
    ax.tick_params(axis="x", rotation=20)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    save_png(fig, path)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _raters_section(summary: Summary) -> list[str]:
    rows = []
    for rater, check in sorted(summary.raters.items()):
        gap = "n/a" if check.repeat_gap is None else f"{check.repeat_gap:.2f}"
        status = "flagged: " + "; ".join(check.reasons) if check.flagged else "kept"
        rows.append([rater, check.answered, f"{len(check.failed)} / {check.checks}",
                     f"{gap} ({check.repeats})", status])
    flagged = summary.flagged
    lead = (f"{len(flagged)} rater(s) flagged and left out of the means, win rates and alpha: "
            f"{', '.join(sorted(flagged))}." if flagged else "No rater was flagged.")
    return ["## Raters", "",
            (f"A rater is flagged when they fail more than half of their attention checks (a "
            f"shuffled-sentence story rated above {EXPECT_MAX} for coherence, or a story of "
            f"another genre rated above {EXPECT_MAX} for genre), or when the stories they saw "
            f"twice differ by more than {REPEAT_GAP_LIMIT:g} point on average. {lead}"), "",
            _table(["rater", "rows rated", "checks failed", "repeat gap (pairs)", "status"], rows),
            ""]


def _means_section(summary: Summary, dimensions: Sequence[str]) -> list[str]:
    diffs = list(summary.differences)
    header = ["dimension", *summary.models, *diffs]
    rows = [[d, *(summary.means[m][d].text(2) for m in summary.models),
             *(summary.differences[name][d].text(2) +
               (" *" if summary.differences[name][d].excludes_zero() else "") for name in diffs)]
            for d in dimensions]
    n = {m: max((i.n for i in summary.means[m].values()), default=0) for m in summary.models}
    note = ", ".join(f"{m}: {n[m]} stories" for m in summary.models)
    return ["## Scores", "",
            (f"Mean rating (1–5) per story, averaged over the kept raters, with a bootstrap 95% "
            f"interval over stories ({note}). Differences are paired by prompt; * marks an "
            f"interval that excludes zero."), "", _table(header, rows), "",
            "![means](plots/means.png)", ""]


def _pairs_section(summary: Summary) -> list[str]:
    if not summary.win_rates:
        return []
    rows = [[w.model, w.other, w.rate.text(2), f"{w.wins} / {w.ties} / {w.losses}", w.rate.n]
            for w in summary.win_rates]
    return ["## Side by side", "",
            ("How often the first model's story was preferred (ties count half), with a bootstrap "
            "95% interval over pairs; 0.5 is no preference."), "",
            _table(["model", "against", "win rate", "wins / ties / losses", "pairs"], rows), ""]


def _alpha_section(summary: Summary) -> list[str]:
    rows = [[a.dimension, "n/a" if a.value is None else f"{a.value:.3f}", a.items, a.raters,
             a.verdict()] for a in summary.alphas]
    return ["## Agreement", "",
            (f"Krippendorff's alpha (ordinal) over the regular stories and kept raters. "
            f"≥ {ALPHA_RELIABLE} is reliable, ≥ {ALPHA_TENTATIVE} allows tentative conclusions; "
            f"below that, read the scores above with care."), "",
            _table(["dimension", "alpha", "items", "raters", "verdict"], rows), "",
            "![alpha](plots/alpha.png)", ""]


def _correlation_section(summary: Summary, dimensions: Sequence[str]) -> list[str]:
    if not summary.correlations:
        return []
    cells = {(c.metric, c.dimension): c for c in summary.correlations}
    metrics = sorted({c.metric for c in summary.correlations})

    def cell(c) -> str:
        return f"n/a (n={c.n})" if c.rho is None else f"{c.rho:+.2f} (n={c.n})"

    rows = [[m, *(cell(cells[(m, d)]) for d in dimensions)] for m in metrics]
    return ["## Human scores and automatic metrics", "",
            ("Spearman's rho between each automatic metric (from generations.jsonl) and the mean "
            "human score per story; yes/no metrics count as 1/0. With few stories, only large "
            "values mean much."), "", _table(["metric", *dimensions], rows), ""]


def write_report(out: Path, summary: Summary, dimensions: Sequence[str], charts: bool = True,
                 name: str = "report.md") -> list[str]:
    """Write report.md (and plots/) under `out`; the names of the files written."""
    written = [name]
    if charts:
        (out / "plots").mkdir(parents=True, exist_ok=True)
        chart_means(out / "plots" / "means.png", summary, dimensions)
        chart_alpha(out / "plots" / "alpha.png", summary)
        written += ["plots/means.png", "plots/alpha.png"]
    counts = summary.counts
    lines = ["# Human ratings", "",
             (f"{counts.get('raters', 0)} raters ({counts.get('included_raters', 0)} kept), "
             f"{counts.get('story_items_rated', 0)} of {counts.get('story_items', 0)} stories "
             f"rated, {counts.get('preferences', 0)} pairwise choices. Models: "
             f"{', '.join(summary.models) or 'none'}."), ""]
    lines += _raters_section(summary)
    lines += _means_section(summary, dimensions)
    lines += _pairs_section(summary)
    lines += _alpha_section(summary)
    lines += _correlation_section(summary, dimensions)
    (out / name).write_text("\n".join(lines), encoding="utf-8")
    return written
