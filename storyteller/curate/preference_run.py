"""`storyteller curate --preferences`: preference files → a curated preference directory.

Reads JSONL and JSON files of preference records (`preferences.py` says which shapes), keeps
the usable ones, splits them by prompt (one prompt's records never span two splits; seeded, so
the same inputs and seed give the same bytes) and writes train/val/test.jsonl, rejects.jsonl,
manifest.json (`"kind": "preference"`) and report.md. The only preference module that touches
disk."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import storyteller
from storyteller import console
from storyteller.curate.config import CurateConfig, SplitConfig
from storyteller.curate.preferences import (
    DUPLICATE,
    JUDGEMENTS,
    Entry,
    Reject,
    curate_records,
)
from storyteller.curate.split import SPLITS, assign_splits
from storyteller.errors import ConfigError, InputError, Problem, StorytellerError
from storyteller.files import sha256_of, write_atomic

SUFFIXES = (".jsonl", ".json")
KINDS = ("pair", "unpaired")


@dataclass
class PreferenceResult:
    out: Path | None
    manifest: dict[str, Any]
    splits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)


def options_config(config: CurateConfig, preferences: bool, val: float | None,
                   test: float | None, judgement: str) -> CurateConfig:
    """`config` with the split fractions --val-fraction / --test-fraction give (train takes the
    rest); the flags are checked here, so a mistake names the flag."""
    if not preferences:
        raise ConfigError.at("--val-fraction" if val is not None else "--test-fraction",
                             "only with --preferences",
                             "for stories set split.train, split.val and split.test with --set")
    if judgement not in JUDGEMENTS:
        raise ConfigError.at("--judgement", f"{judgement!r} is not a judgement",
                             f"use one of: {', '.join(JUDGEMENTS)}")
    if val is None and test is None:
        return config
    val = config.split.val if val is None else val
    test = config.split.test if test is None else test
    for flag, value in (("--val-fraction", val), ("--test-fraction", test)):
        if not 0 <= value < 1:
            raise ConfigError.at(flag, f"{value} is not a fraction", "give a share such as 0.1")
    if val + test >= 1:
        raise ConfigError.at("--val-fraction", f"val {val} + test {test} leave nothing to train on",
                             "keep their sum below 1 (e.g. 0.1 and 0.1)")
    split = SplitConfig(train=round(1 - val - test, 10), val=val, test=test,
                        stratify=config.split.stratify)
    return dataclasses.replace(config, split=split)


def input_files(paths: Sequence[str]) -> list[Path]:
    """The files named, and the .jsonl / .json files inside folders named, in a stable order."""
    files: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
            if not found:
                raise InputError.at(text, "holds no .jsonl or .json files",
                                    "give preference files (JSONL, one record per line)")
            files += found
        elif path.is_file():
            if path.suffix.lower() not in SUFFIXES:
                raise InputError.at(text, f"{path.suffix or 'no suffix'}: curate --preferences "
                                          "reads .jsonl and .json files",
                                    "export the records as JSONL, one object per line")
            files.append(path)
        else:
            raise InputError.at(text, "no such file or folder")
    return files


def read_entries(path: Path) -> list[Entry]:
    """Every record of one file, located: a JSONL file line by line (a bad line is an Entry
    with its error), a JSON file as an array of records (or an object holding one)."""
    source = str(path)
    raw = path.read_bytes()
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            return [Entry(source, None, None, None, f"not UTF-8 ({exc.reason})")]
        except json.JSONDecodeError as exc:
            return [Entry(source, exc.lineno, None, None, f"not valid JSON: {exc.msg}")]
        if isinstance(data, dict):
            lists = [v for v in data.values() if isinstance(v, list)]
            data = lists[0] if len(lists) == 1 and not ({"prompt", "chosen", "completion"}
                                                        & set(data)) else [data]
        if not isinstance(data, list):
            return [Entry(source, None, None, None, "a JSON file of preferences holds an array "
                                                    "of records")]
        return [Entry(source, None, n, item) for n, item in enumerate(data)]
    entries = []
    for number, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            entries.append(Entry(source, number, None, json.loads(line.decode("utf-8"))))
        except UnicodeDecodeError as exc:
            entries.append(Entry(source, number, None, None, f"not UTF-8 ({exc.reason})"))
        except json.JSONDecodeError as exc:
            entries.append(Entry(source, number, None, None, f"not valid JSON: {exc.msg}"))
    return entries


def chat_template_check(tokenizer_name: str):
    """A function that renders a prompt with the target model's chat template, as training
    and serving will (`prompts.prompt_text`), raising where the template refuses it. Each
    distinct prompt is rendered once: the records of a prompt share it."""
    from storyteller.models import load_tokenizer
    from storyteller.prompts import prompt_text

    tokenizer = load_tokenizer(tokenizer_name)
    refusals: dict[str, Exception | None] = {}

    def check(messages: list[dict[str, str]]) -> None:
        key = json.dumps(messages, sort_keys=True)
        if key not in refusals:
            try:
                prompt_text(tokenizer, messages)
                refusals[key] = None
            except Exception as exc:  # whatever the template raises is its refusal
                refusals[key] = exc
        if refusals[key] is not None:
            raise refusals[key]

    return check


def split_records(records: Sequence[dict[str, Any]], config: CurateConfig
                  ) -> dict[str, list[dict[str, Any]]]:
    """Records by split, grouped by prompt, in input order within each split."""
    strata: dict[str, str | None] = {}
    for record in records:
        genre = record["controls"].get("genre") if config.split.stratify == "genre" else None
        strata.setdefault(record["group"], str(genre) if genre else None)
    fractions = {"train": config.split.train, "val": config.split.val, "test": config.split.test}
    assignment = assign_splits(strata, fractions, config.seed)
    splits: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLITS}
    for record in records:
        splits[assignment[record["group"]]].append(record)
    return splits


def curate_preferences(paths: Sequence[str], config: CurateConfig, judgement: str,
                       check_template: bool = True) -> PreferenceResult:
    """Read, check and split; nothing written (`write_directory` writes)."""
    files = input_files(paths)
    entries: list[Entry] = []
    inputs = []
    for path in files:
        found = read_entries(path)
        entries += found
        inputs.append({"path": str(path), "sha256": sha256_of(path),
                       "format": path.suffix.lower().lstrip("."), "records": len(found)})
    render = chat_template_check(config.tokenizer) if check_template else None
    with console.steps() as steps, steps.phase("curate: checking preference records"):
        kept, rejects = curate_records(entries, judgement, render)
    kept_per_file = Counter(r["source"]["file"] for r in kept)
    for entry in inputs:
        entry["kept"] = kept_per_file.get(entry["path"], 0)
    splits = split_records(kept, config)
    manifest = make_manifest(config, judgement, inputs, splits, rejects, len(entries))
    return PreferenceResult(None, manifest, splits, rejects)


def make_manifest(config: CurateConfig, judgement: str, inputs: list[dict[str, Any]],
                  splits: dict[str, list[dict[str, Any]]], rejects: Sequence[Reject],
                  read: int) -> dict[str, Any]:
    counts: dict[str, Any] = {name: {kind: sum(r["kind"] == kind for r in splits[name])
                                     for kind in KINDS} for name in SPLITS}
    counts["rejected"] = dict(sorted(Counter(r.reason for r in rejects).items()))
    counts["records_read"] = read
    counts["kept"] = sum(len(records) for records in splits.values())
    counts["groups"] = {name: len({r["group"] for r in splits[name]}) for name in SPLITS}
    counts["judgement"] = {name: dict(sorted(Counter(r["judgement"] for r in splits[name])
                                             .items())) for name in SPLITS}
    return {"kind": "preference", "made_by": "curate", "name": config.name,
            "storyteller_version": storyteller.__version__, "inputs": inputs, "counts": counts,
            "config": {"seed": config.seed, "tokenizer": config.tokenizer,
                       "split": {"train": config.split.train, "val": config.split.val,
                                 "test": config.split.test, "stratify": config.split.stratify},
                       "judgement": judgement,
                       "max_bad_share": config.filters.max_bad_share}}


def _jsonl(rows: Sequence[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def write_directory(out: Path, result: PreferenceResult) -> None:
    out.mkdir(parents=True, exist_ok=True)
    outputs: dict[str, str] = {}
    for name in SPLITS:
        for stale in out.glob(f"{name}-*-of-*.jsonl"):
            stale.unlink()  # an earlier curate's shards would be read beside the new split
        outputs[f"{name}.jsonl"] = write_atomic(out / f"{name}.jsonl",
                                                _jsonl(result.splits[name]))
    outputs["rejects.jsonl"] = write_atomic(out / "rejects.jsonl",
                                            _jsonl([r.to_json() for r in result.rejects]))
    outputs["report.md"] = write_atomic(out / "report.md",
                                        report_markdown(result).encode("utf-8"))
    result.manifest["outputs"] = dict(sorted(outputs.items()))
    write_atomic(out / "manifest.json", (json.dumps(result.manifest, ensure_ascii=False,
                                                    indent=2) + "\n").encode("utf-8"))
    result.out = out


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def report_markdown(result: PreferenceResult) -> str:
    manifest, counts = result.manifest, result.manifest["counts"]
    judgements = [j for j in JUDGEMENTS if any(j in counts["judgement"][s] for s in SPLITS)]
    sections = [
        f"# Curated preference data: {manifest['name']}", "",
        f"{counts['records_read']} records read, {counts['kept']} kept, "
        f"{sum(counts['rejected'].values())} rejected.", "",
        "## Splits", "",
        _table(["split", "pairs", "unpaired", "prompts"],
               [(s, counts[s]["pair"], counts[s]["unpaired"], counts["groups"][s])
                for s in SPLITS]), "",
        "## Where the judgements came from", "",
        _table(["judgement", *SPLITS],
               [(j, *(counts["judgement"][s].get(j, 0) for s in SPLITS)) for j in judgements]),
        "",
        "## Inputs", "",
        _table(["path", "format", "records", "kept", "sha256"],
               [(i["path"], i["format"], i["records"], i["kept"], i["sha256"][:16])
                for i in manifest["inputs"]]), "",
        "## Rejected records", ""]
    if not result.rejects:
        return "\n".join(sections + ["None.", ""])
    sections += [_table(["reason", "records"], sorted(counts["rejected"].items())), "",
                 "Examples (all of them are in rejects.jsonl):", ""]
    shown: Counter[str] = Counter()
    rows = []
    for reject in result.rejects:
        if shown[reject.reason] < 3:
            shown[reject.reason] += 1
            where = f"{reject.source}:{reject.line}" if reject.line else \
                f"{reject.source}#{reject.position}" if reject.position is not None else \
                reject.source
            rows.append((reject.reason, where, reject.detail.replace("|", "/")))
    return "\n".join(sections + [_table(["reason", "where", "detail"], rows), ""])


def run(paths: Sequence[str], out: Path, config: CurateConfig, judgement: str) -> PreferenceResult:
    """Curate preference files into `out`; errors after writing where too much was bad."""
    result = curate_preferences(paths, config, judgement)
    kept = result.manifest["counts"]["kept"]
    if not kept:
        reasons = ", ".join(f"{n} {reason}" for reason, n in
                            result.manifest["counts"]["rejected"].items()) or "no records"
        first = result.rejects[0] if result.rejects else None
        raise InputError(*([Problem(f"{first.source}:{first.line}" if first.line else
                                    first.source, f"{first.reason}: {first.detail}")]
                            if first else []),
                         Problem(", ".join(paths), f"no usable preference record ({reasons})",
                                 "each record needs a prompt and chosen + rejected, or a "
                                 "completion and a true/false label; see docs/curate.md"))
    write_directory(out, result)
    print_summary(result)
    counts = result.manifest["counts"]
    bad = sum(n for reason, n in counts["rejected"].items() if reason != DUPLICATE)
    read = counts["records_read"]
    if read and bad / read > config.filters.max_bad_share:
        raise StorytellerError(Problem(
            str(out / "rejects.jsonl"), f"{bad} of {read} records ({bad / read:.0%}) were "
            f"rejected, more than filters.max_bad_share = {config.filters.max_bad_share:.0%}",
            "everything else was written; look at rejects.jsonl, fix the input or raise the "
            "limit"))
    return result


def print_summary(result: PreferenceResult, always: bool = False) -> None:
    if console.quiet() and not always:
        return
    counts = result.manifest["counts"]
    rows = [("records read", counts["records_read"]), ("kept", counts["kept"])]
    rows += [(f"{split}: pairs / unpaired / prompts",
              f"{counts[split]['pair']} / {counts[split]['unpaired']} / {counts['groups'][split]}")
             for split in SPLITS]
    rows += [(f"rejected: {reason}", n) for reason, n in counts["rejected"].items()]
    title = f"curated preferences → {result.out}" if result.out else "preference records read"
    console.console.print(console.table(title, ["", "count"], rows))
    if not counts["groups"]["val"] and result.out:
        console.console.print("note: val is empty (too few prompts for its fraction); "
                              "preference training evaluates on val: add records or raise "
                              "--val-fraction")


def preview(paths: Sequence[str], config: CurateConfig, judgement: str, show: int = 3) -> None:
    """What curate --preferences would keep and reject, and the first kept records; nothing
    is written."""
    result = curate_preferences(paths, config, judgement)
    print_summary(result, always=True)
    shown = [r for split in SPLITS for r in result.splits[split]][:show]
    for record in shown:
        console.console.print_json(json.dumps(record, ensure_ascii=False))
    for reject in result.rejects[:show * 2]:
        where = f"{reject.source}:{reject.line}" if reject.line else reject.source
        console.console.print(f"rejected {where}: {reject.reason}: {reject.detail}")
