"""`storyteller ratings make | import | report`: the only ratings module that touches disk.

Each command shows how far it is through `console.steps()`: bars on a terminal, a line with
counts and time left at least every 30 s in a log (evaluate and merge do the same)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from storyteller import console
from storyteller.errors import InputError, Problem
from storyteller.ratings.analysis import Summary, summarise
from storyteller.ratings.generations import parse_lines
from storyteller.ratings.items import build_plan
from storyteller.ratings.key import Key
from storyteller.ratings.report import write_report
from storyteller.ratings.scales import instructions_markdown
from storyteller.ratings.sheet import (
    PAIR_COLUMNS,
    RATING_COLUMNS,
    csv_bytes,
    pair_rows,
    rating_rows,
    read_sheet,
    xlsx_bytes,
)
from storyteller.ratings.store import RatingsStore
from storyteller.ratings.validate import PairAnswer, check_table
from storyteller.files import sha256_of, write_atomic

KEY, STORE, SUMMARY = "key.json", "ratings.sqlite", "ratings_summary.json"


def _json_bytes(data) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# ------------------------------------------------------------------------------------------ make


@dataclass
class Made:
    out: Path
    files: list[Path]
    counts: dict[str, int]
    raters: list[str]


def _generations_file(source: Path) -> Path:
    path = source / "generations.jsonl" if source.is_dir() else source
    if not path.is_file():
        raise InputError(Problem(str(path), "no such file",
                                 "give --from the folder storyteller evaluate --out wrote"))
    return path


def make(source: Path, raters: int, items: int | None = None, pairwise: int | None = None,
         seed: int = 0, out: Path | None = None, force: bool = False) -> Made:
    """Write sheets/rater-NN.{csv,xlsx}, key.json and instructions.md for `raters` raters."""
    path = _generations_file(source)
    out = out or path.parent / "ratings"
    if (out / KEY).exists() and not force:
        raise InputError(Problem(str(out / KEY), "already exists: its sheets may be out with raters",
                                 "pass --force to write new sheets over them, or choose --out"))
    with console.steps() as steps:
        lines = path.read_text(encoding="utf-8").splitlines()
        gens = parse_lines(steps.track(lines, "ratings: reading generations"), str(path))
        with steps.phase("ratings: choosing and ordering items"):
            plan = build_plan(gens, raters, items, pairwise, seed)
        files = _write_sheets(plan, out, steps)
    key = plan.key()
    key["source"] = {"generations": os.path.relpath(path.resolve(), out.resolve()),
                     "sha256": sha256_of(path)}
    key["made"] = {"raters": raters, "items": items, "pairwise": pairwise, "seed": seed}
    write_atomic(out / KEY, _json_bytes(key))
    text = instructions_markdown(None, bool(plan.pairs))
    write_atomic(out / "instructions.md", text.encode("utf-8"))
    files += [out / KEY, out / "instructions.md"]
    return Made(out, files, key["counts"], plan.raters)


def _write_sheets(plan, out: Path, steps: console.Steps) -> list[Path]:
    """Each rater's sheets: CSV, pairs CSV where there are pairs, and the workbook."""
    sheets = out / "sheets"
    sheets.mkdir(parents=True, exist_ok=True)
    files = []
    for rater in steps.track(plan.raters, "ratings: writing sheets"):
        rows, pairs = plan.rater_items(rater), plan.rater_pairs(rater)
        write_atomic(sheets / f"{rater}.csv", csv_bytes(RATING_COLUMNS, rating_rows(rows)))
        files.append(sheets / f"{rater}.csv")
        if pairs:
            write_atomic(sheets / f"{rater}-pairs.csv", csv_bytes(PAIR_COLUMNS, pair_rows(pairs)))
            files.append(sheets / f"{rater}-pairs.csv")
        write_atomic(sheets / f"{rater}.xlsx", xlsx_bytes(rater, rows, pairs))
        files.append(sheets / f"{rater}.xlsx")
    return files


# ---------------------------------------------------------------------------------------- import


@dataclass
class Imported:
    """What one import did: a line per table, the problems (rows rejected), and notes."""

    lines: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stored: int = 0
    rejected: int = 0


def find_key(sheet: Path, key: Path | None) -> Path:
    """key.json beside the sheets folder (DIR/sheets/x.csv → DIR/key.json), or beside the sheet."""
    if key is not None:
        return key
    for candidate in (sheet.parent.parent / KEY, sheet.parent / KEY):
        if candidate.is_file():
            return candidate
    raise InputError(Problem(str(sheet), "no key.json next to this sheet's folder",
                             "pass --key DIR/key.json (the one ratings make wrote)"))


def load_key(path: Path) -> Key:
    if not path.is_file():
        raise InputError(Problem(str(path), "no such file", "ratings make writes DIR/key.json"))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(Problem(f"{path}:{error.lineno}", f"not valid JSON ({error.msg})")) from None
    return Key.from_json(data, str(path))


def _rater(sheet: Path, cell: str | None, given: str | None, key: Key) -> str:
    name = re.search(r"rater-\d+", sheet.stem)
    rater = given or cell or (name.group(0) if name else None)
    if rater is None:
        raise InputError(Problem(str(sheet), "cannot tell which rater filled this sheet",
                                 "keep the rater-NN file name, or pass --rater"))
    if rater not in key.raters:
        raise InputError(Problem(str(sheet), f'unknown rater "{rater}" (key.json has '
                                             f"{', '.join(key.raters)})", "pass --rater"))
    return rater


def open_store(path: Path, key_path: Path, stores: dict[Path, RatingsStore]) -> RatingsStore:
    """The store at `path`, opened once per import (or rater session) and tied to one key.json,
    so answers to two different sets of sheets never mix."""
    if path not in stores:
        stores[path] = RatingsStore(path)
    store, digest = stores[path], sha256_of(key_path)
    known = store.meta("key_sha256")
    if known is None:
        store.set_meta("key_sha256", digest)
    elif known != digest:
        raise InputError(Problem(str(path), "holds answers for another key.json",
                                 "import into a new --store, or the key these sheets came with"))
    return store


def import_sheets(sheets: list[Path], store: Path | None = None, key: Path | None = None,
                  rater: str | None = None) -> Imported:
    """Validate and store filled sheets. A sheet replaces its rater's earlier answers of the
    same kind (scores or pairs), so importing a corrected sheet again is safe."""
    if rater is not None and len(sheets) > 1:
        raise InputError(Problem("--rater", "names the rater of one sheet; several were given"))
    result, stores, keys = Imported(), {}, {}
    with console.steps() as steps:
        try:
            for sheet in steps.track(sheets, "ratings: importing sheets"):
                try:
                    key_path = find_key(sheet, key)
                    if key_path not in keys:
                        keys[key_path] = load_key(key_path)
                    the_key = keys[key_path]
                    book = read_sheet(sheet)
                    who = _rater(sheet, book.rater_cell, rater, the_key)
                    target = open_store(store or key_path.parent / STORE, key_path, stores)
                except InputError as error:
                    result.problems += error.problems
                    continue
                for table in book.tables:
                    checked = check_table(table, the_key)
                    result.problems += checked.problems
                    result.rejected += checked.rejected
                    if checked.header_ok:
                        kind = "preference" if table.kind == "pairs" else "scores"
                        with target.transaction():
                            target.clear(who, kind)
                            for answer in checked.answers:
                                if isinstance(answer, PairAnswer):
                                    target.add_preference(who, answer.item, answer.choice,
                                                          answer.comment, table.where)
                                else:
                                    target.add_scores(who, answer.item, answer.scores,
                                                      answer.comment, table.where)
                        result.stored += len(checked.answers)
                    result.lines.append(f"{table.where}: {who}, {len(checked.answers)} rows "
                                        f"stored, {checked.rejected} rejected → {target.path}")
                    if checked.missing:
                        result.notes.append(f"{table.where}: {len(checked.missing)} item(s) of the "
                                            f"key not in this sheet")
        finally:
            for opened in stores.values():
                opened.close()
    return result


# ---------------------------------------------------------------------------------------- report


@dataclass
class Reported:
    summary: Summary
    report: Path
    files: list[Path]


def ratings_dir(source: Path) -> Path:
    """The folder with key.json: `source` itself, or `source/ratings` (evaluate's --out)."""
    for candidate in (source, source / "ratings"):
        if (candidate / KEY).is_file():
            return candidate
    raise InputError(Problem(str(source), "holds no key.json",
                             "give --from the folder ratings make wrote (default OUT/ratings)"))


def stored_answers(folder: Path, store: Path | None = None):
    """(the store's path, its scores, its pairwise choices) of the answers imported for the
    sheets in `folder`; an error where none were imported or the store holds none, or where
    its answers were imported with another key.json (its item ids may mean other stories, or
    none). Report and export both read answers through here, so they accept the same stores."""
    store_path = store or folder / STORE
    if not store_path.is_file():
        raise InputError(Problem(str(store_path), "no ratings imported yet",
                                 "run storyteller ratings import on the filled sheets first"))
    with RatingsStore(store_path) as opened:
        scores, prefs, made_for = opened.scores(), opened.preferences(), opened.meta("key_sha256")
    if made_for is not None and made_for != sha256_of(folder / KEY):
        raise InputError(Problem(
            str(store_path), f"holds answers for another key.json than {folder / KEY}",
            "was ratings make run again with --force? give --from the folder of the key.json "
            "the answers were imported with, or import these sheets into a store of their own: "
            f"storyteller ratings import {folder / 'sheets'}/rater-*.xlsx --store NEW.sqlite, "
            "then pass --store NEW.sqlite"))
    if not scores and not prefs:
        raise InputError(Problem(str(store_path), "holds no answers",
                                 "run storyteller ratings import on the filled sheets first"))
    return store_path, scores, prefs


def report(source: Path, out: Path | None = None, store: Path | None = None,
           charts: bool = True) -> Reported:
    """Write report.md, plots/ and ratings_summary.json from the stored answers."""
    folder = ratings_dir(source)
    key = load_key(folder / KEY)
    store_path, scores, prefs = stored_answers(folder, store)
    target = out or folder
    if target.suffix.lower() == ".md":
        target, name = target.parent, target.name
    else:
        name = "report.md"
    target.mkdir(parents=True, exist_ok=True)
    with console.steps() as steps:
        with steps.phase("ratings: scores, intervals and agreement"):
            summary = summarise(key, scores, prefs)
        with steps.phase("ratings: writing the report"):
            written = write_report(target, summary, list(key.dimensions), charts=charts,
                                   name=name)
    write_atomic(target / SUMMARY, _json_bytes(summary.to_json()))
    files = [target / w for w in written] + [target / SUMMARY]
    return Reported(summary, target / name, files)
