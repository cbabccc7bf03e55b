"""Sheets written for raters and read back: layout, validation in the xlsx, and every kind of
malformed row reported with its file, row and column while the valid rows are kept."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook

from storyteller.ratings.generations import parse_generation
from storyteller.ratings.items import build_plan
from storyteller.ratings.key import Key
from storyteller.ratings.scales import ANCHORS, DIMENSIONS, NOT_RATED
from storyteller.ratings.sheet import (
    PAIR_COLUMNS,
    RATING_COLUMNS,
    csv_bytes,
    pair_rows,
    rating_rows,
    read_sheet,
    xlsx_bytes,
)
from storyteller.ratings.validate import check_table, parse_score
from tests.unit.test_ratings_fixture import generations


@pytest.fixture(scope="module")
def plan():
    return build_plan([parse_generation(r) for r in generations()], raters=2, pairwise=4, seed=1)


@pytest.fixture(scope="module")
def key(plan):
    return Key.from_json(plan.key())


def filled(rows: list[list[str]]) -> list[list[str]]:
    """Every rateable cell set to 3."""
    return [[c if c == NOT_RATED or n < 3 or n > 9 else "3" for n, c in enumerate(row)]
            for row in rows]


def write_csv(path, header, rows):
    path.write_bytes(csv_bytes(header, rows))
    return path


@pytest.mark.parametrize("value, expected", [
    (4, (4, None)), (4.0, (4, None)), (" 5 ", (5, None)), ("2.0", (2, None)),
    (None, (None, "empty")), ("  ", (None, "empty")),
    (7, (None, "7 is out of range 1–5")), ("0", (None, "0 is out of range 1–5")),
    (3.5, (None, "3.5 is not a whole number 1–5")), ("3,5", (None, '"3,5" is not a whole number 1–5')),
    ("good", (None, '"good" is not a whole number 1–5')), (True, (None, "True is not a whole number 1–5")),
])
def test_parse_score(value, expected):
    assert parse_score(value, 1, 5) == expected


def test_csv_rows_are_spreadsheet_rows_even_with_multiline_cells(tmp_path, plan, key):
    items = plan.rater_items("rater-01")
    path = write_csv(tmp_path / "rater-01.csv", RATING_COLUMNS, filled(rating_rows(items)))
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    (table,) = read_sheet(path).tables
    assert table.kind == "ratings" and table.header == list(RATING_COLUMNS)
    assert [n for n, _ in table.rows] == list(range(2, len(items) + 2))
    assert table.rows[0][1][2] == items[0].story  # paragraph breaks survive
    checked = check_table(table, key)
    assert checked.problems == [] and len(checked.answers) == len(items)
    no_style = next(a for a in checked.answers if "style" not in key.applicable(a.item))
    assert "style" not in no_style.scores and no_style.scores["overall"] == 3


def test_semicolon_csv_from_a_spreadsheet_locale_is_read(tmp_path, key, plan):
    items = plan.rater_items("rater-01")[:3]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";")
    writer.writerow(RATING_COLUMNS)
    writer.writerows(filled(rating_rows(items)))
    path = tmp_path / "rater-01.csv"
    path.write_bytes(buffer.getvalue().encode("cp1252", errors="replace"))
    (table,) = read_sheet(path).tables
    assert len(check_table(table, key).answers) == 3


def test_xlsx_layout_validation_and_instructions(tmp_path, plan):
    rater = "rater-02"
    items, pairs = plan.rater_items(rater), plan.rater_pairs(rater)
    path = tmp_path / "rater-02.xlsx"
    path.write_bytes(xlsx_bytes(rater, items, pairs))
    wb = load_workbook(path)
    assert wb.sheetnames == ["Instructions", "Ratings", "Pairs"]
    info = [r for r in wb["Instructions"].iter_rows(values_only=True)]
    assert ("Rater", rater) == info[1][:2]
    for d in DIMENSIONS:
        row = next(r for r in info if r[0] == d)
        assert list(row[2:5]) == [ANCHORS[d][1], ANCHORS[d][3], ANCHORS[d][5]]
    ws = wb["Ratings"]
    assert ws.freeze_panes == "B2"
    assert [c.value for c in ws[1]] == list(RATING_COLUMNS)
    assert ws.column_dimensions["C"].width > ws.column_dimensions["B"].width > 20
    assert ws["C2"].alignment.wrap_text
    rules = {dv.promptTitle.split(" ")[0]: dv for dv in ws.data_validations.dataValidation}
    assert set(rules) == set(DIMENSIONS)
    for d, dv in rules.items():
        assert (dv.type, dv.operator, dv.formula1, dv.formula2) == ("whole", "between", "1", "5")
        assert dv.showInputMessage and len(dv.prompt) <= 255 and ANCHORS[d][5] in dv.prompt
        column = RATING_COLUMNS.index(d) + 1
        for r, item in enumerate(items, start=2):
            cell = ws.cell(r, column)
            covered = any(cell.coordinate in rng for rng in dv.sqref.ranges)
            assert covered == (d in item.dimensions)
            assert (cell.value == NOT_RATED) == (d not in item.dimensions)
    ps = wb["Pairs"]
    assert [c.value for c in ps[1]] == list(PAIR_COLUMNS) and ps.max_row == len(pairs) + 1
    (choice,) = ps.data_validations.dataValidation
    assert choice.type == "list" and choice.formula1 == '"A,B,tie"'


def test_xlsx_values_are_read_as_typed(tmp_path, plan, key):
    path = tmp_path / "sheet.xlsx"
    items, pairs = plan.rater_items("rater-01"), plan.rater_pairs("rater-01")
    path.write_bytes(xlsx_bytes("rater-01", items, pairs))
    wb = load_workbook(path)
    ws = wb["Ratings"]
    for r in range(2, ws.max_row + 1):
        for c in range(4, 11):
            if ws.cell(r, c).value != NOT_RATED:
                ws.cell(r, c).value = 4.0 if r == 2 else 4
    ws.cell(3, 4).value = 3.5
    for r in range(2, wb["Pairs"].max_row + 1):
        wb["Pairs"].cell(r, 5).value = ["A", "b", " tie "][r % 3]
    wb.save(path)
    book = read_sheet(path, "sheets/sheet.xlsx")
    assert book.rater_cell == "rater-01"
    ratings, pair_table = book.tables
    checked = check_table(ratings, key)
    assert [str(p) for p in checked.problems] == [
        ('sheets/sheet.xlsx:Ratings:3: column "fluency": 3.5 is not a whole number 1–5 '
        "(use a whole number 1–5)")]
    assert len(checked.answers) == len(items) - 1
    pair_check = check_table(pair_table, key)
    assert pair_check.problems == [] and {a.choice for a in pair_check.answers} == {"A", "B", "tie"}


def test_malformed_rows_are_located_and_valid_rows_kept(tmp_path, plan, key):
    items = plan.rater_items("rater-01")
    rows = filled(rating_rows(items))
    col = {name: n for n, name in enumerate(RATING_COLUMNS)}
    rows[1][col["coherence"]] = "7"  # spreadsheet row 3
    rows[2][col["fluency"]] = "3.5"  # row 4
    rows[3][col["overall"]] = ""  # row 5
    rows[4][col["item"]] = "it-zzzzzz"  # row 6
    rows[5] = [rows[5][0], rows[5][1], rows[5][2]] + [""] * 8  # row 7: not rated at all
    not_applicable = next(n for n, item in enumerate(items) if "style" not in item.dimensions)
    rows[not_applicable][col["style"]] = "whatever"  # n/a cells are ignored
    rows.append(list(rows[0]))  # a duplicate of row 2, at the end
    duplicate_row = len(rows) + 1
    path = write_csv(tmp_path / "rater-01.csv", RATING_COLUMNS, rows)
    (table,) = read_sheet(path, "sheets/rater-01.csv").tables
    checked = check_table(table, key)
    found = [(p.where, p.message) for p in checked.problems]
    assert found[:4] == [
        ("sheets/rater-01.csv:3", 'column "coherence": 7 is out of range 1–5'),
        ("sheets/rater-01.csv:4", 'column "fluency": "3.5" is not a whole number 1–5'),
        ("sheets/rater-01.csv:5", 'column "overall": empty'),
        ("sheets/rater-01.csv:6", 'column "item": unknown item "it-zzzzzz" (not in key.json)'),
    ]
    assert found[4][0] == "sheets/rater-01.csv:7" and "(the row was not rated)" in found[4][1]
    assert found[5] == (f"sheets/rater-01.csv:{duplicate_row}",
                        (f'column "item": {items[0].id} appears again (first on row 2); '
                        f"this row is ignored"))
    assert len(found) == 6 and checked.rejected == 6
    assert len(checked.answers) == len(items) - 5
    assert {a.item for a in checked.answers}.isdisjoint({items[n].id for n in (1, 2, 3, 5)})
    assert checked.missing == [items[4].id]  # its row carried an unknown id instead


def test_a_missing_column_rejects_the_table_and_says_so(tmp_path, plan, key):
    items = plan.rater_items("rater-01")
    header = [c for c in RATING_COLUMNS if c != "creativity"]
    rows = [[c for n, c in enumerate(r) if RATING_COLUMNS[n] != "creativity"]
            for r in filled(rating_rows(items))]
    (table,) = read_sheet(write_csv(tmp_path / "x.csv", header, rows), "x.csv").tables
    checked = check_table(table, key)
    assert [(p.where, p.message) for p in checked.problems] == [
        ("x.csv:1", 'column "creativity" missing from the header')]
    assert checked.answers == [] and not checked.header_ok


def test_pairs_rows_checked_and_items_on_the_wrong_sheet_caught(tmp_path, plan, key):
    pairs = plan.rater_pairs("rater-01")
    rows = pair_rows(pairs)
    for row, choice in zip(rows, ["A", "C", "", "tie"]):
        row[4] = choice
    rows.append([plan.items[0].id, "", "", "", "A", ""])
    path = write_csv(tmp_path / "rater-01-pairs.csv", PAIR_COLUMNS, rows)
    (table,) = read_sheet(path, "p.csv").tables
    assert table.kind == "pairs"
    checked = check_table(table, key)
    assert [(p.where, p.message) for p in checked.problems] == [
        ("p.csv:3", 'column "preferred": "C" is not A, B or tie'),
        ("p.csv:4", 'column "preferred": empty'),
        ("p.csv:6", f'column "item": {plan.items[0].id} belongs on the Ratings sheet')]
    assert [a.choice for a in checked.answers] == ["A", "tie"]


def test_texts_that_look_like_formulas_or_hold_control_characters_stay_text(tmp_path):
    from storyteller.ratings.items import Item

    item = Item("it-abcdef", "story", "=SUM(A1:A9)", "A bell\x07 rang.\x1b Then quiet.",
                ("overall",))
    path = tmp_path / "rater-01.xlsx"
    path.write_bytes(xlsx_bytes("rater-01", [item], []))
    (table,) = read_sheet(path).tables
    assert table.rows == [(2, ["it-abcdef", "=SUM(A1:A9)", "A bell rang. Then quiet.",
                               *[NOT_RATED] * 6, None, None])]


def test_unreadable_files_are_named(tmp_path):
    from storyteller.errors import InputError

    broken = tmp_path / "rater-01.xlsx"
    broken.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="cannot be read as an xlsx workbook"):
        read_sheet(broken)
    other = tmp_path / "rater-01.ods"
    other.write_text("")
    with pytest.raises(InputError, match="unknown sheet type .ods"):
        read_sheet(other)
    with pytest.raises(InputError, match="no such file"):
        read_sheet(tmp_path / "rater-02.csv")
