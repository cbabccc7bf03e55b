"""The evaluation report: report.md, a self-contained report.html (plots embedded), PNG plots and
sample stories per genre, all from metrics.json's summary and the generation records."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from storyteller import console
from storyteller.files import write_atomic
from storyteller.plots import pyplot, save_png

GROUP_TITLES = {"fit": "Fit to held-out stories", "adherence": "Adherence to the request",
                "relevance": "Relevance to the prompt", "diversity": "Diversity and repetition",
                "length": "Length and stopping", "memorisation": "Memorisation of training stories",
                "reference": "Overlap with the reference story (weak signals for stories)",
                "readability": "Readability",
                "context": "Document continuations: direction and notes"}
HOUSE_STYLE_TEXT = {"moral": "fables end on one `Moral:` line",
                    "refrain": "fairy tales repeat a refrain line three times and end on it",
                    "noir": "mysteries are told in the first person, present tense",
                    "log": "science fiction is told as dated `Log, day N:` entries"}


def _has_interval(cell: dict[str, Any]) -> bool:
    # A metric measured on a single story (others had nothing to measure) has a value and no
    # interval.
    return cell.get("low") is not None and cell.get("high") is not None


def fmt(cell: dict[str, Any] | None, digits: int = 3) -> str:
    if not cell or cell.get("value") is None:
        return "n/a"
    if not _has_interval(cell):
        return f"{cell['value']:.{digits}f} [no interval]"
    return f"{cell['value']:.{digits}f} [{cell['low']:.{digits}f}, {cell['high']:.{digits}f}]"


def fmt_diff(cell: dict[str, Any] | None, better: str | None, digits: int = 3) -> str:
    if not cell or cell.get("value") is None:
        return "n/a"
    if not _has_interval(cell):
        return f"{cell['value']:+.{digits}f} [no interval]"
    text = f"{cell['value']:+.{digits}f} [{cell['low']:+.{digits}f}, {cell['high']:+.{digits}f}]"
    if cell["low"] > 0 or cell["high"] < 0:
        direction = "higher" if cell["value"] > 0 else "lower"
        mark = "✔" if better == direction else "✘" if better else "•"
        text += f" {mark}"
    return text


def _measured(row: dict[str, Any]) -> bool:
    return any(cell and cell.get("value") is not None for cell in row["values"].values())


def metric_rows(summary: dict[str, Any], models: Sequence[str]) -> list[tuple[str, list[list[str]]]]:
    """(group title, rows) with one row per metric: label, each model, the difference."""
    groups: dict[str, list[list[str]]] = {}
    for row in summary["metrics"].values():
        if row["group"] == "context" and not _measured(row):
            continue  # no document continuation among the prompts
        cells = [row["label"] + ("" if not row["better"] else f" ({row['better']} is better)")]
        cells += [fmt(row["values"].get(model)) for model in models]
        if len(models) > 1:
            cells.append(fmt_diff(row.get("difference"), row["better"]))
        groups.setdefault(row["group"], []).append(cells)
    return [(GROUP_TITLES.get(group, group), rows) for group, rows in groups.items()]


def kind_rows(summary: dict[str, Any], models: Sequence[str]) -> list[list[str]]:
    """One row per (kind, metric) of summary["by_kind"]: kind (prompts), metric, each model,
    the difference."""
    rows = []
    for kind, entry in (summary.get("by_kind") or {}).items():
        for row in entry["metrics"].values():
            cells = [f"{kind} ({entry['prompts']})",
                     row["label"] + ("" if not row["better"] else f" ({row['better']} is better)")]
            cells += [fmt(row["values"].get(model)) for model in models]
            if len(models) > 1:
                cells.append(fmt_diff(row.get("difference"), row["better"]))
            rows.append(cells)
    return rows


KIND_TEXT = ("Per kind of prompt (number of prompts in brackets); a document continuation is "
             "also counted under each optional part it carries (notes, direction, summary) and "
             "under `document · bare` when it has none.")


def house_rows(summary: dict[str, Any], models: Sequence[str]) -> list[list[str]]:
    rows = []
    for style, cells in summary["house_styles"].items():
        row = [f"{style}: {HOUSE_STYLE_TEXT.get(style, '')}"]
        row += [fmt(cells.get(model), 2) for model in models]
        if len(models) > 1:
            row.append(fmt_diff(cells.get("difference"), "higher", 2))
        rows.append(row)
    return rows


def hollow_rows(summary: dict[str, Any], models: Sequence[str]) -> list[list[str]]:
    """Hollow stories (storyteller.judge): all stories, then per requested house style."""
    rows = []
    overall = summary["metrics"].get("hollow")
    if overall:
        row = ["all stories"] + [fmt(overall["values"].get(model), 2) for model in models]
        if len(models) > 1:
            row.append(fmt_diff(overall.get("difference"), "lower", 2))
        rows.append(row)
    for style, cells in (summary.get("hollow_styles") or {}).items():
        row = [style] + [fmt(cells.get(model), 2) for model in models]
        if len(models) > 1:
            row.append(fmt_diff(cells.get("difference"), "lower", 2))
        rows.append(row)
    return rows


HOLLOW_TEXT = ("The share of stories that satisfy a check emptily (`storyteller/judge.py`): a "
               "`Moral:` line after a few words of story, a refrain that is most of the story, "
               "log entries of a few words, noir that is nearly all dialogue, a line said six "
               "times or more. Lower is better; a model tuned on self-judged pairs should not "
               "raise it.")


def samples(records: Sequence[dict[str, Any]], per_genre: int) -> list[dict[str, Any]]:
    """Per genre, the first prompts (by id) with every model's story side by side."""
    by_prompt: dict[str, dict[str, dict[str, Any]]] = {}
    for record in records:
        if record["sample"] == 0:
            by_prompt.setdefault(record["prompt_id"], {})[record["model"]] = record
    chosen: dict[str, list[str]] = {}
    for prompt_id in sorted(by_prompt):
        any_record = next(iter(by_prompt[prompt_id].values()))
        genre = any_record["controls"].get("genre") or "(no genre)"
        if len(chosen.setdefault(genre, [])) < per_genre:
            chosen[genre].append(prompt_id)
    return [{"genre": genre, "prompt": next(iter(by_prompt[pid].values()))["prompt"],
             "stories": by_prompt[pid]} for genre in sorted(chosen) for pid in chosen[genre]]


def verdict(record: dict[str, Any]) -> str:
    metrics = record.get("metrics", {})
    parts = [f"{metrics.get('words', 0)} words", "ended by itself" if record["finish_reason"] == "stop"
             else "cut at the token limit"]
    if metrics.get("house_style"):
        parts.append(f"{metrics['house_style']}: " + ("followed" if metrics.get("style_pass")
                                                      else f"not followed ({metrics.get('style_reason')})"))
    from storyteller.evaluate.aggregate import hollow_of

    hollow = hollow_of(record) if "controls" in record else None
    if hollow:
        parts.append("hollow: " + ", ".join(hollow))
    if metrics.get("genre_predicted"):
        parts.append(f"reads as {metrics['genre_predicted']}")
    return "; ".join(parts)


def plots(out: Path, summary: dict[str, Any], records: Sequence[dict[str, Any]],
          models: Sequence[str]) -> list[str]:
    plt = pyplot()
    folder = out / "plots"
    folder.mkdir(exist_ok=True)
    colours = {"tuned": "#2a7ab0", "base": "#b0b0b0"}
    written = []

    def bars(ax, labels, series):
        width = 0.8 / max(1, len(series))
        for k, (model, cells) in enumerate(series.items()):
            xs = [i + k * width for i in range(len(labels))]
            values = [c["value"] if c and c.get("value") is not None else 0 for c in cells]
            errors = [[max(0, v - (c["low"] if c and c.get("low") is not None else v)) for v, c in zip(values, cells)],
                      [max(0, (c["high"] if c and c.get("high") is not None else v) - v) for v, c in zip(values, cells)]]
            ax.bar(xs, values, width, yerr=errors, capsize=3, label=model,
                   color=colours.get(model, f"C{k}"))
        ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(labels))], labels)

    styles = list(summary["house_styles"])
    if styles:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        bars(ax, styles, {m: [summary["house_styles"][s].get(m) for s in styles] for m in models})
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("share of stories following it")
        ax.set_title("House styles followed (95% bootstrap intervals)")
        ax.legend()
        fig.tight_layout()
        save_png(fig, folder / "house_styles.png")
        written.append("house_styles.png")

    keys = [k for k in ("style_markers", "stop_rate", "relevance", "genre_match", "style_match", "distinct_2",
                        "seq_rep_4", "memorised_8gram_share", "perplexity")
            if k in summary["metrics"]]
    fig, axes = plt.subplots(1, len(keys), figsize=(2.1 * len(keys), 3.2))
    for ax, key in zip(axes if len(keys) > 1 else [axes], keys):
        row = summary["metrics"][key]
        bars(ax, [""], {m: [row["values"].get(m)] for m in models})
        ax.set_title(row["label"].split(" (")[0], fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7) if len(keys) > 1 else None
    fig.suptitle("Automatic metrics (95% bootstrap intervals)", fontsize=10)
    fig.tight_layout()
    save_png(fig, folder / "metrics.png")
    written.append("metrics.png")

    fig, ax = plt.subplots(figsize=(7, 3.2))
    for k, model in enumerate(models):
        words = [r["metrics"]["words"] for r in records if r["model"] == model]
        ax.hist(words, bins=20, alpha=0.6, label=model, color=colours.get(model, f"C{k}"))
    references = sorted({r["reference"] for r in records})
    from storyteller.evaluate.metrics import words as split_words

    ax.hist([len(split_words(t)) for t in references], bins=20, histtype="step", color="black",
            label="reference stories")
    ax.set_xlabel("words per story")
    ax.set_ylabel("stories")
    ax.set_title("Story lengths")
    ax.legend()
    fig.tight_layout()
    save_png(fig, folder / "lengths.png")
    written.append("lengths.png")
    return written


def markdown(summary: dict[str, Any], records: Sequence[dict[str, Any]], pictures: Sequence[str],
             per_genre: int) -> str:
    models = list(summary["models"])
    settings = summary["settings"]
    lines = ["# Evaluation report", ""]
    for model, info in summary["models"].items():
        lines.append(f"- **{model}**: `{info['label']}`")
    preset = settings["preset"]
    lines += [f"- {settings['prompts']} {settings['split']} prompts × {settings['samples']} "
              f"sample(s) per model; preset `{preset['name']}` (temperature {preset['temperature']}, "
              f"top-p {preset['top_p']}, repetition penalty {preset['repetition_penalty']}); "
              f"at most {settings['max_tokens']} new tokens; seed {settings['seed']}; "
              f"engine {', '.join(settings['engine'])}.",
              "- Every number is a mean with its 95% bootstrap interval over stories; the "
              "difference is paired by prompt. ✔ marks a difference whose interval excludes zero "
              "in the better direction, ✘ in the worse one.", ""]
    if summary.get("findings"):
        lines += ["## Findings", ""] + [f"- {f}" for f in summary["findings"]] + [""]
    header = ["metric"] + models + (["difference (tuned − base)"] if len(models) > 1 else [])
    lines += ["## House styles", "",
              "The share of stories that follow the house style their prompt asked for, checked "
              "by the same program checks that define the styles in the corpus.", ""]
    lines += _table(["house style"] + header[1:], house_rows(summary, models))
    if "house_styles.png" in pictures:
        lines += ["", "![house styles](plots/house_styles.png)"]
    if hollow_rows(summary, models):
        lines += ["", "## Hollow stories", "", HOLLOW_TEXT, ""]
        lines += _table(["stories"] + header[1:], hollow_rows(summary, models))
    for title, rows in metric_rows(summary, models):
        lines += ["", f"## {title}", ""] + _table(header, rows)
    if summary.get("by_kind"):
        lines += ["", "## By kind of prompt", "", KIND_TEXT, ""]
        lines += _table(["kind", *header], kind_rows(summary, models))
    lines += ["", "## Plots", ""] + [f"![{p}](plots/{p})" for p in pictures if p != "house_styles.png"]
    lines += ["", "## Sample stories", ""]
    for sample in samples(records, per_genre):
        lines += [f"### {sample['genre']}", "", "> " + sample["prompt"].replace("\n", "\n> "), ""]
        for model, record in sample["stories"].items():
            lines += [f"**{model}** ({verdict(record)}):", ""]
            lines += ["> " + record["text"].replace("\n", "\n> "), ""]
    return "\n".join(lines) + "\n"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return out


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}td,th{border:1px
solid #ccc;padding:.3em .6em;text-align:right}td:first-child,th:first-child{text-align:left}
th{background:#f3f3f3}.story{white-space:pre-wrap;background:#fafafa;border-left:3px solid #2a7ab0;
padding:.6em 1em;margin:.3em 0 1em}.base{border-color:#aaa}.prompt{white-space:pre-wrap;
color:#555}img{max-width:100%}.good{color:#1a7f37}.bad{color:#b42318}"""


def _html_cell(text: str) -> str:
    escaped = html.escape(text)
    if text.endswith("✔"):
        return f'<td class="good">{escaped}</td>'
    if text.endswith("✘"):
        return f'<td class="bad">{escaped}</td>'
    return f"<td>{escaped}</td>"


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html_report(summary: dict[str, Any], records: Sequence[dict[str, Any]], plot_dir: Path,
                pictures: Sequence[str], per_genre: int) -> str:
    """One file with everything inline (plots as data URIs): it can be mailed or archived."""
    models = list(summary["models"])
    header = ["metric"] + models + (["difference (tuned − base)"] if len(models) > 1 else [])
    parts = ["<!doctype html><meta charset='utf-8'><title>Evaluation report</title>",
             f"<style>{CSS}</style><h1>Evaluation report</h1><ul>"]
    for model, info in summary["models"].items():
        parts.append(f"<li><b>{html.escape(model)}</b>: <code>{html.escape(info['label'])}</code></li>")
    s = summary["settings"]
    parts.append(f"<li>{s['prompts']} {s['split']} prompts × {s['samples']} sample(s); preset "
                 f"<code>{html.escape(s['preset']['name'])}</code>; at most {s['max_tokens']} new "
                 "tokens; 95% bootstrap intervals, differences paired by prompt.</li></ul>")
    if summary.get("findings"):
        parts.append("<h2>Findings</h2><ul>" + "".join(f"<li>{html.escape(f)}</li>"
                                                         for f in summary["findings"]) + "</ul>")
    parts.append("<h2>House styles</h2>" + _html_table(["house style"] + header[1:],
                                                        house_rows(summary, models)))
    if hollow_rows(summary, models):
        parts.append(f"<h2>Hollow stories</h2><p>{html.escape(HOLLOW_TEXT)}</p>"
                     + _html_table(["stories"] + header[1:], hollow_rows(summary, models)))
    for title, rows in metric_rows(summary, models):
        parts.append(f"<h2>{html.escape(title)}</h2>" + _html_table(header, rows))
    if summary.get("by_kind"):
        parts.append(f"<h2>By kind of prompt</h2><p>{html.escape(KIND_TEXT)}</p>"
                     + _html_table(["kind", *header], kind_rows(summary, models)))
    parts.append("<h2>Plots</h2>")
    for picture in pictures:
        data = base64.b64encode((plot_dir / picture).read_bytes()).decode()
        parts.append(f"<p><img alt='{picture}' src='data:image/png;base64,{data}'></p>")
    parts.append("<h2>Sample stories</h2>")
    for sample in samples(records, per_genre):
        parts.append(f"<h3>{html.escape(sample['genre'])}</h3>"
                     f"<div class='prompt'>{html.escape(sample['prompt'])}</div>")
        for model, record in sample["stories"].items():
            parts.append(f"<p><b>{html.escape(model)}</b> — {html.escape(verdict(record))}</p>"
                         f"<div class='story {html.escape(model)}'>{html.escape(record['text'])}</div>")
    return "\n".join(parts) + "\n"


def write_report(out: Path, summary: dict[str, Any], records: Sequence[dict[str, Any]],
                 per_genre: int) -> None:
    pictures = plots(out, summary, records, list(summary["models"]))
    write_atomic(out / "report.md", markdown(summary, records, pictures, per_genre).encode())
    write_atomic(out / "report.html",
                 html_report(summary, records, out / "plots", pictures, per_genre).encode())


def print_summary(summary: dict[str, Any]) -> None:
    if console.quiet():
        return
    models = list(summary["models"])
    keys = ["perplexity", "style_pass", "hollow", "style_markers", "genre_match", "relevance", "stop_rate", "distinct_2",
            "seq_rep_4", "memorised_8gram_share", "direction_followed", "notes_names_kept",
            "notes_names_recalled", "invented_names"]
    rows = []
    for key in keys:
        row = summary["metrics"].get(key)
        if row and (row["group"] != "context" or _measured(row)):
            cells = [row["label"]] + [fmt(row["values"].get(m)) for m in models]
            if len(models) > 1:
                cells.append(fmt_diff(row.get("difference"), row["better"]))
            rows.append(cells)
    columns = ["metric"] + models + (["tuned − base"] if len(models) > 1 else [])
    console.console.print(console.table("Evaluation (95% intervals)", columns, rows))
