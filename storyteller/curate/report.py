"""report.md for a curated directory, with its PNG charts (lengths, genres per split, rejects)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

from storyteller.curate.preview import markdown as preview_markdown
from storyteller.curate.split import SPLITS
from storyteller.plots import pyplot, save_png


def chart_lengths(path: Path, words: Sequence[int]) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.hist(list(words) or [0], bins=30, color="#4c72b0")
    ax.set_xlabel("words per story")
    ax.set_ylabel("stories")
    ax.set_title("Story lengths (kept stories)")
    save_png(fig, path)


def chart_genres(path: Path, by_genre: dict[str, dict[str, int]]) -> None:
    plt = pyplot()
    genres = sorted({g for counts in by_genre.values() for g in counts})
    fig, ax = plt.subplots(figsize=(7, 0.45 * max(len(genres), 3) + 1.2))
    left = [0] * len(genres)
    for split, colour in zip(SPLITS, ("#4c72b0", "#dd8452", "#55a868")):
        values = [by_genre.get(split, {}).get(g, 0) for g in genres]
        ax.barh(genres, values, left=left, label=split, color=colour)
        left = [a + b for a, b in zip(left, values)]
    ax.set_xlabel("stories")
    ax.set_title("Genres per split")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.invert_yaxis()
    save_png(fig, path)


def chart_rejects(path: Path, rejected: dict[str, int]) -> None:
    plt = pyplot()
    reasons = sorted(rejected, key=lambda r: (-rejected[r], r))
    fig, ax = plt.subplots(figsize=(7, 0.45 * max(len(reasons), 2) + 1.2))
    ax.barh(reasons or ["(none)"], [rejected[r] for r in reasons] or [0], color="#c44e52")
    ax.set_xlabel("records")
    ax.set_title("Rejected records by reason")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.invert_yaxis()
    save_png(fig, path)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(out: Path, manifest: dict[str, Any], words: Sequence[int], clusters,
                 rejects: Iterable[dict[str, Any]], charts: bool = True,
                 readings: Sequence[Any] = ()) -> list[str]:
    """Write report.md (and its charts); the names of the files written. `words` is each kept
    story's length; `rejects` the reject rows (the first three of each reason are shown)."""
    counts = manifest["counts"]
    written = []
    if charts:
        chart_lengths(out / "lengths.png", words)
        chart_genres(out / "genres.png", counts["stories_by_genre"])
        chart_rejects(out / "rejects.png", counts["rejected"])
        written += ["lengths.png", "genres.png", "rejects.png"]
    words = sorted(words)
    median = words[len(words) // 2] if words else 0
    sections = [
        f"# Curated dataset: {manifest['name']}",
        "",
        _table(["", "count"], [
            ("records read", counts["records_read"]), ("stories read", counts["stories_read"]),
            ("stories kept", counts["stories_kept"]),
            ("exact duplicates dropped", counts["duplicates"]["exact"]),
            ("near duplicates", counts["duplicates"]["near"]),
            ("near-duplicate clusters", counts["near_duplicate_clusters"]),
            ("median words per story", median)]),
        "",
        "## Inputs",
        "",
        _table(["path", "format", "stories", "sha256"],
               [(i["path"], i["format"], i["stories"], (i["sha256"] or "")[:16]) for i in manifest["inputs"]]),
        "",
        *(["## What was read", "",
           "Each input's stories as the reader found them (before cleaning and filters): check "
           "that a book was divided where its stories begin.", "",
           preview_markdown(readings, limit=40), ""] if readings else []),
        "## Splits",
        "",
        _table(["split", "stories", "story tokens", "pairs"],
               [(s, counts["stories_per_split"][s], counts["story_tokens"][s], counts["pairs"][s])
                for s in SPLITS]),
        "",
        "Pairs by kind:",
        "",
        _table(["kind"] + list(SPLITS),
               [(k, *(counts["kind"][s].get(k, 0) for s in SPLITS))
                for k in sorted({k for s in SPLITS for k in counts["kind"][s]})]),
        "",
    ]
    if charts:
        sections += ["![Genres per split](genres.png)", "", "![Story lengths](lengths.png)", ""]
    sections += ["## Genres", "",
                 _table(["genre"] + list(SPLITS),
                        [(g, *(counts["stories_by_genre"][s].get(g, 0) for s in SPLITS))
                         for g in sorted({g for s in SPLITS for g in counts["stories_by_genre"][s]})]),
                 ""]
    if counts["inferred_tags"]:
        sections += ["Tags inferred by the tagger (not given by the data):", "",
                     _table(["tag", "stories"], sorted(counts["inferred_tags"].items())), ""]
    sections += ["## Rejected records", ""]
    if counts["rejected"]:
        sections += [_table(["reason", "records"], sorted(counts["rejected"].items())), ""]
        if charts:
            sections += ["![Rejects](rejects.png)", ""]
        examples = Counter()
        rows = []
        for row in rejects:
            if examples[row["reason"]] < 3:
                examples[row["reason"]] += 1
                where = f"{row['source']}:{row['line']}" if row["line"] else row["source"]
                rows.append((row["reason"], where, row["detail"].replace("|", "/")))
        sections += ["Examples (all of them are in rejects.jsonl):", "",
                     _table(["reason", "where", "detail"], rows), ""]
    else:
        sections += ["None.", ""]
    sections += ["## Near-duplicate clusters", ""]
    if clusters:
        rows = [(c["representative"], ", ".join(f"{m['where']} ({m['similarity']:.2f})" for m in c["members"]))
                for c in clusters[:50]]
        sections += [_table(["kept", "near duplicates (similarity)"], rows), ""]
        if len(clusters) > 50:
            sections += [f"… and {len(clusters) - 50} more clusters (manifest.json lists them all).", ""]
    else:
        sections += ["None found.", ""]
    (out / "report.md").write_text("\n".join(sections), encoding="utf-8")
    return written + ["report.md"]
