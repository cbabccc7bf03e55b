"""`storyteller ratings make → import → report` on real files: sheets filled the way raters
would (one in CSV, one in xlsx, one careless), imported, reported; malformed sheets; blinding."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sqlite3
from pathlib import Path
from statistics import mean

import pytest
from openpyxl import load_workbook
from scipy.stats import spearmanr
from typer.testing import CliRunner

from storyteller.cli import app
from storyteller.ratings.scales import DIMENSIONS
from tests.conftest import run_cli
from tests.unit.test_ratings_fixture import generations, write_generations

RATERS = ("rater-01", "rater-02", "rater-03")


def cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result


def explain(result) -> str:
    return f"exit {result.exit_code}\n{result.output}\n{getattr(result, 'stderr', '')}"


# ------------------------------------------------------------------------- how raters fill sheets


def quality(story: str) -> int:
    """What an attentive reader thinks of a fixture story: the plain filler is poor."""
    return 2 if "There was a person" in story else 5


def noise(rater: str, story: str) -> int:
    return -1 if rater == "rater-02" and int(hashlib.sha256(story.encode()).hexdigest(), 16) % 3 == 0 \
        else 0


def scores_for(rater: str, item: str, story: str, key: dict) -> dict[str, int]:
    info = key["items"][item]
    if info["type"] == "attention":
        if rater == "rater-03":  # careless: never notices anything
            return {d: 5 for d in info["dimensions"]}
        scores = {d: 3 for d in info["dimensions"]}
        scores[info["expect"]["dimension"]] = 1
        return scores
    value = quality(story)
    if rater == "rater-03":
        value = 6 - value  # and gets everything backwards
    value = max(1, min(5, value + noise(rater, story)))
    return {d: value for d in info["dimensions"]}


def choice_for(rater: str, story_a: str, story_b: str) -> str:
    qa, qb = quality(story_a), quality(story_b)
    pick = "tie" if qa == qb else "A" if qa > qb else "B"
    return {"A": "B", "B": "A", "tie": "tie"}[pick] if rater == "rater-03" else pick


def fill_csv(path: Path, rater: str, key: dict) -> None:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    for row in rows[1:]:
        if "preferred" in header:
            row[header.index("preferred")] = choice_for(rater, row[2], row[3])
            continue
        scores = scores_for(rater, row[0], row[2], key)
        for d in DIMENSIONS:
            if d in scores:
                row[header.index(d)] = str(scores[d])
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        csv.writer(handle).writerows(rows)


def fill_xlsx(path: Path, rater: str, key: dict) -> None:
    wb = load_workbook(path)
    ws = wb["Ratings"]
    header = [c.value for c in ws[1]]
    for r in range(2, ws.max_row + 1):
        scores = scores_for(rater, ws.cell(r, 1).value, ws.cell(r, 3).value, key)
        for d, value in scores.items():
            ws.cell(r, header.index(d) + 1).value = value
    ps = wb["Pairs"]
    for r in range(2, ps.max_row + 1):
        ps.cell(r, 5).value = choice_for(rater, ps.cell(r, 3).value, ps.cell(r, 4).value)
    wb.save(path)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """make (3 raters) → fill → import → report, once for the tests below."""
    out = tmp_path_factory.mktemp("eval")
    write_generations(out)
    made = cli("ratings", "make", "--from", str(out), "--raters", "3", "--seed", "7")
    assert made.exit_code == 0, explain(made)
    folder = out / "ratings"
    key = json.loads((folder / "key.json").read_text())
    sheets = folder / "sheets"
    fill_csv(sheets / "rater-01.csv", "rater-01", key)
    fill_csv(sheets / "rater-01-pairs.csv", "rater-01", key)
    fill_xlsx(sheets / "rater-02.xlsx", "rater-02", key)
    fill_csv(sheets / "rater-03.csv", "rater-03", key)
    fill_csv(sheets / "rater-03-pairs.csv", "rater-03", key)
    filled = [sheets / n for n in ("rater-01.csv", "rater-01-pairs.csv", "rater-02.xlsx",
                                   "rater-03.csv", "rater-03-pairs.csv")]
    imported = cli("ratings", "import", *map(str, filled))
    assert imported.exit_code == 0, explain(imported)
    reported = cli("ratings", "report", "--from", str(out))
    assert reported.exit_code == 0, explain(reported)
    summary = json.loads((folder / "ratings_summary.json").read_text())
    return {"out": out, "folder": folder, "key": key, "summary": summary,
            "report": reported.output, "made": made.output, "imported": imported.output}


def all_cells(folder: Path) -> list[str]:
    cells = []
    for path in sorted((folder / "sheets").glob("*.csv")):
        with path.open(encoding="utf-8-sig", newline="") as handle:
            cells += [c for row in csv.reader(handle) for c in row]
    for path in sorted((folder / "sheets").glob("*.xlsx")):
        wb = load_workbook(path, read_only=True)
        for ws in wb.worksheets:
            cells += [str(v) for row in ws.iter_rows(values_only=True) for v in row if v is not None]
        wb.close()
    return cells


def test_make_writes_sheets_key_and_instructions(study):
    folder = study["folder"]
    names = sorted(p.name for p in (folder / "sheets").iterdir())
    assert names == sorted([f"{r}{s}" for r in RATERS for s in (".csv", "-pairs.csv", ".xlsx")])
    assert (folder / "instructions.md").read_text().startswith("# Rating stories")
    assert "24 stories, 3 attention checks, 2 repeats, 6 pairs per rater" in study["made"]


def test_sheets_are_blind_and_the_key_holds_the_identities(study):
    cells = all_cells(study["folder"])
    assert len(cells) > 500
    secrets = {r["id"] for r in generations()} | {r["model_ref"] for r in generations()} \
        | {r["prompt_id"] for r in generations()}
    assert not [c for c in cells if any(s in c for s in secrets)]
    assert not [c for c in cells if re.search(r"\b(tuned|base)\b", c)]
    key = study["key"]
    stories = [i for i in key["items"].values() if i["type"] == "story"]
    assert {i["model"] for i in stories} == {"tuned", "base"}
    assert all(i["generation"] in secrets for i in stories)


def test_same_items_for_every_rater_in_different_orders(study):
    folder = study["folder"]
    orders = []
    for rater in RATERS:
        with (folder / "sheets" / f"{rater}.csv").open(encoding="utf-8-sig", newline="") as handle:
            orders.append([row[0] for row in list(csv.reader(handle))[1:]])
    assert len({tuple(sorted(o)) for o in orders}) == 1
    assert len({tuple(o) for o in orders}) == 3
    assert orders[0] == study["key"]["orders"]["rater-01"]["ratings"]


def test_pairs_counterbalanced_and_checks_about_a_tenth(study):
    key = study["key"]
    sides = [p["a"]["model"] for p in key["pairs"].values()]
    assert sides.count("tuned") == sides.count("base") == 3
    counts = key["counts"]
    assert 0.08 <= counts["attention"] / counts["rows"] <= 0.13
    assert counts["repeats"] >= 2


def test_the_careless_rater_is_flagged_and_left_out(study):
    summary = study["summary"]
    assert summary["flagged_raters"] == ["rater-03"]
    assert "failed 3 of 3 attention checks" in summary["raters"]["rater-03"]["reasons"][0]
    assert summary["included_raters"] == ["rater-01", "rater-02"]
    assert summary["raters"]["rater-01"]["repeat_gap"] == 0
    assert "flagged raters (left out): rater-03" in study["report"]
    report = (study["folder"] / "report.md").read_text()
    assert "rater-03 | " in report and "flagged: failed 3 of 3" in report


def test_means_order_models_and_use_only_kept_raters(study):
    summary, key = study["summary"], study["key"]
    means = summary["means"]
    for d in DIMENSIONS:
        assert means["tuned"][d]["value"] > means["base"][d]["value"]
        diff = summary["differences"]["tuned - base"][d]
        assert diff["low"] > 0 and diff["n"] == (9 if d == "style" else 12)  # paired prompts
    con = sqlite3.connect(study["folder"] / "ratings.sqlite")
    rows = con.execute("SELECT rater, item, score FROM scores WHERE dimension = 'overall'").fetchall()
    per_item: dict[str, list[int]] = {}
    for rater, item, score in rows:
        if rater != "rater-03" and key["items"][item]["type"] == "story" \
                and key["items"][item]["model"] == "tuned":
            per_item.setdefault(item, []).append(score)
    expected = mean(mean(v) for v in per_item.values())
    assert means["tuned"]["overall"]["value"] == pytest.approx(expected)
    assert means["tuned"]["overall"]["n"] == 12
    assert means["tuned"]["style"]["n"] == 9  # a quarter of the prompts ask for no style


def test_win_rates_alpha_and_metric_correlations(study):
    summary = study["summary"]
    (pair,) = summary["pairwise"]
    assert (pair["model"], pair["other"]) == ("tuned", "base")
    assert pair["win_rate"]["value"] > 0.5 and pair["win_rate"]["n"] == 6
    assert pair["losses"] == 0
    alpha = summary["alpha"]
    assert set(alpha) == set(DIMENSIONS)
    assert all(a["raters"] == 2 for a in alpha.values())
    assert alpha["overall"]["value"] > 0.6
    rel = next(c for c in summary["correlations"]
               if (c["metric"], c["dimension"]) == ("relevance", "relevance"))
    key = study["key"]
    con = sqlite3.connect(study["folder"] / "ratings.sqlite")
    rows = con.execute("SELECT rater, item, score FROM scores WHERE dimension = 'relevance'")
    human: dict[str, list[int]] = {}
    for rater, item, score in rows:
        if rater != "rater-03" and key["items"][item]["type"] == "story":
            human.setdefault(item, []).append(score)
    items = sorted(human)
    expected = spearmanr([key["items"][i]["metrics"]["relevance"] for i in items],
                         [mean(human[i]) for i in items])
    assert rel["n"] == 24 and rel["rho"] == pytest.approx(expected[0], abs=1e-6) and rel["rho"] > 0
    files = {p.name for p in (study["folder"] / "plots").iterdir()}
    assert files == {"means.png", "alpha.png"}
    report = (study["folder"] / "report.md").read_text()
    for section in ("## Raters", "## Scores", "## Side by side", "## Agreement",
                    "## Human scores and automatic metrics", "plots/means.png"):
        assert section in report


# -------------------------------------------------------------------------------- bad sheets


def test_malformed_sheet_stores_valid_rows_exits_1_and_reimport_is_idempotent(tmp_path):
    out = tmp_path / "eval"
    write_generations(out)
    assert cli("ratings", "make", "--from", str(out), "--raters", "2", "--items", "12").exit_code == 0
    folder = out / "ratings"
    key = json.loads((folder / "key.json").read_text())
    sheet = folder / "sheets" / "rater-02.csv"
    fill_csv(sheet, "rater-02", key)
    with sheet.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    rows[2][header.index("coherence")] = "9"
    rows[3][header.index("overall")] = ""
    rows[4][0] = "it-000000"
    with sheet.open("w", encoding="utf-8-sig", newline="") as handle:
        csv.writer(handle).writerows(rows)
    first = cli("ratings", "import", str(sheet))
    assert first.exit_code == 1
    lines = [line for line in first.output.splitlines() if line.startswith("error:")]
    assert lines == [
        f'error: {sheet}:3: column "coherence": 9 is out of range 1–5 (use a whole number 1–5)',
        f'error: {sheet}:4: column "overall": empty (rate it 1–5)',
        (f'error: {sheet}:5: column "item": unknown item "it-000000" (not in key.json) '
        f"(was the item id edited, or is the sheet from another ratings make?)")]
    store = folder / "ratings.sqlite"

    def stored() -> list[tuple]:
        con = sqlite3.connect(store)
        try:
            return con.execute("SELECT rater, item, dimension, score FROM scores "
                               "ORDER BY 1, 2, 3").fetchall()
        finally:
            con.close()

    once = stored()
    assert len({item for _, item, _, _ in once}) == len(rows) - 1 - 3
    again = cli("ratings", "import", str(sheet))
    assert again.exit_code == 1 and stored() == once
    rows[4][0] = key["orders"]["rater-02"]["ratings"][3]  # the id the row had
    with sheet.open("w", encoding="utf-8-sig", newline="") as handle:
        csv.writer(handle).writerows(rows)
    fill_csv(sheet, "rater-02", key)  # and the two bad cells rated again
    fixed = cli("ratings", "import", str(sheet))
    assert fixed.exit_code == 0, explain(fixed)
    assert len({item for _, item, _, _ in stored()}) == len(rows) - 1


def test_make_refuses_to_overwrite_a_key_without_force(tmp_path):
    write_generations(tmp_path)
    assert cli("ratings", "make", "--from", str(tmp_path), "--raters", "1").exit_code == 0
    again = cli("ratings", "make", "--from", str(tmp_path), "--raters", "1")
    assert again.exit_code == 1 and "already exists" in again.output
    forced = cli("ratings", "make", "--from", str(tmp_path), "--raters", "1", "--force")
    assert forced.exit_code == 0


def test_same_seed_same_bytes(tmp_path):
    for name in ("a", "b"):
        write_generations(tmp_path / name)
        assert cli("ratings", "make", "--from", str(tmp_path / name), "--raters", "2",
                   "--seed", "3").exit_code == 0
    for rel in ("key.json", "instructions.md", "sheets/rater-02.csv", "sheets/rater-01-pairs.csv"):
        assert (tmp_path / "a/ratings" / rel).read_bytes() == (tmp_path / "b/ratings" / rel).read_bytes()


def test_report_without_imports_says_what_to_do(tmp_path):
    write_generations(tmp_path)
    assert cli("ratings", "make", "--from", str(tmp_path), "--raters", "2").exit_code == 0
    result = cli("ratings", "report", "--from", str(tmp_path / "ratings"))
    assert result.exit_code == 1
    assert "no ratings imported yet (run storyteller ratings import" in result.output


def test_the_installed_command_has_teaching_help():
    result = run_cli("ratings", "--help")
    assert result.returncode == 0, result.stderr
    for command in ("make", "import", "report"):
        assert command in result.stdout
    help_text = run_cli("ratings", "import", "--help").stdout
    assert "Examples" in help_text and "storyteller ratings import" in help_text


def test_renamed_xlsx_is_known_by_its_rater_cell_and_strangers_are_refused(tmp_path):
    write_generations(tmp_path)
    assert cli("ratings", "make", "--from", str(tmp_path), "--raters", "2").exit_code == 0
    folder = tmp_path / "ratings"
    key = json.loads((folder / "key.json").read_text())
    renamed = folder / "sheets" / "my ratings (final).xlsx"
    (folder / "sheets" / "rater-02.xlsx").rename(renamed)
    fill_xlsx(renamed, "rater-02", key)
    result = cli("ratings", "import", str(renamed))
    assert result.exit_code == 0, explain(result)
    assert f"{renamed}:Ratings: rater-02, 29 rows stored" in result.output
    stranger = folder / "sheets" / "notes.csv"
    stranger.write_text("item,overall\n")
    refused = cli("ratings", "import", str(stranger))
    assert refused.exit_code == 1
    assert "cannot tell which rater filled this sheet" in refused.output
    unknown = cli("ratings", "import", str(stranger), "--rater", "rater-09")
    assert 'unknown rater "rater-09"' in unknown.output


def test_one_model_study_reports_without_pairs_or_differences(tmp_path):
    records = [r for r in generations() if r["model"] == "tuned"]
    write_generations(tmp_path, records)
    made = cli("ratings", "make", "--from", str(tmp_path / "generations.jsonl"), "--raters", "2",
               "--out", str(tmp_path / "human"))
    assert made.exit_code == 0, explain(made)
    key = json.loads((tmp_path / "human" / "key.json").read_text())
    assert key["pairs"] == {} and key["source"]["generations"] == "../generations.jsonl"
    sheets = tmp_path / "human" / "sheets"
    assert sorted(p.name for p in sheets.iterdir()) == ["rater-01.csv", "rater-01.xlsx",
                                                        "rater-02.csv", "rater-02.xlsx"]
    for rater in ("rater-01", "rater-02"):
        fill_csv(sheets / f"{rater}.csv", rater, key)
    store = tmp_path / "elsewhere.sqlite"
    assert cli("ratings", "import", str(sheets / "rater-01.csv"), str(sheets / "rater-02.csv"),
               "--store", str(store)).exit_code == 0
    custom = tmp_path / "reports" / "human.md"
    result = cli("ratings", "report", "--from", str(tmp_path / "human"), "--store", str(store),
                 "--out", str(custom))
    assert result.exit_code == 0, explain(result)
    assert custom.is_file() and (custom.parent / "plots" / "means.png").is_file()
    summary = json.loads((custom.parent / "ratings_summary.json").read_text())
    assert summary["models"] == ["tuned"] and summary["differences"] == {}
    assert summary["pairwise"] == [] and summary["flagged_raters"] == []
    assert "## Side by side" not in custom.read_text()


def test_a_store_made_for_another_key_is_refused(tmp_path):
    write_generations(tmp_path)
    assert cli("ratings", "make", "--from", str(tmp_path), "--raters", "1").exit_code == 0
    folder = tmp_path / "ratings"
    key = json.loads((folder / "key.json").read_text())
    fill_csv(folder / "sheets" / "rater-01.csv", "rater-01", key)
    assert cli("ratings", "import", str(folder / "sheets" / "rater-01.csv")).exit_code == 0
    assert cli("ratings", "make", "--from", str(tmp_path), "--raters", "1", "--seed", "2",
               "--force").exit_code == 0
    result = cli("ratings", "report", "--from", str(folder))
    assert result.exit_code == 1 and "holds answers for another key.json" in result.output
