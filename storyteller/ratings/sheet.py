"""Rating sheets: written as CSV and xlsx for each rater, read back as plain tables.

Writing returns bytes (run.py puts them on disk). Reading keeps each cell as the spreadsheet
holds it (text, number or empty) with its 1-based spreadsheet row, so that validation can say
exactly where a problem is; what a value means is validate.py's business."""

from __future__ import annotations

import csv
import io
import math
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyteller.errors import InputError, Problem
from storyteller.ratings.items import Item, Pair
from storyteller.ratings.scales import (
    DIMENSIONS,
    NOT_RATED,
    PAIR_CHOICES,
    SCALE_MAX,
    SCALE_MIN,
    input_message,
    instructions_rows,
)

RATING_COLUMNS: tuple[str, ...] = ("item", "prompt", "story", *DIMENSIONS, "comment")
PAIR_COLUMNS: tuple[str, ...] = ("item", "prompt", "story A", "story B", "preferred", "comment")
RATINGS_SHEET, PAIRS_SHEET, INSTRUCTIONS_SHEET = "Ratings", "Pairs", "Instructions"

WIDTHS = {"item": 11, "prompt": 45, "story": 90, "story A": 70, "story B": 70, "preferred": 11,
          "comment": 32}
MAX_ROW_HEIGHT = 409  # points; Excel's limit


def rating_rows(items: Sequence[Item]) -> list[list[str]]:
    return [[item.id, item.prompt, item.story,
             *("" if d in item.dimensions else NOT_RATED for d in DIMENSIONS), ""]
            for item in items]


def pair_rows(pairs: Sequence[Pair]) -> list[list[str]]:
    return [[pair.id, pair.prompt, pair.story_a, pair.story_b, "", ""] for pair in pairs]


def csv_bytes(header: Sequence[str], rows: Sequence[Sequence[str]]) -> bytes:
    """UTF-8 with a BOM and CRLF rows, which is what spreadsheet programs open without asking."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _height(row: Sequence[str], header: Sequence[str]) -> float:
    """A row height that shows the longest wrapped cell (Excel does not size rows it did not
    write itself)."""
    lines = 1
    for column, text in zip(header, row):
        per_line = max(8, int(WIDTHS.get(column, 12) * 1.15))
        count = sum(max(1, math.ceil(len(p) / per_line)) for p in str(text).split("\n"))
        lines = max(lines, count)
    return min(MAX_ROW_HEIGHT, 15 * lines + 4)


def _text(value: str) -> str:
    """A cell's text with the control characters xlsx cannot hold (model output may have some)
    removed."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("", value)


def _table_sheet(ws, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    ws.append(list(header))
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDE4EE")
    wrap = Alignment(wrap_text=True, vertical="top")
    grey = PatternFill("solid", fgColor="EEEEEE")
    for r, row in enumerate(rows, start=2):
        ws.append([_text(c) for c in row])
        ws.row_dimensions[r].height = _height(row, header)
        for cell in ws[r]:
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"  # a story that starts with "=" is text, not a formula
            cell.alignment = wrap
            if cell.value == NOT_RATED:
                cell.fill = grey
    for c, column in enumerate(header, start=1):
        ws.column_dimensions[get_column_letter(c)].width = WIDTHS.get(column, 12)
    ws.freeze_panes = "B2"  # the header row and the item column stay in view


def _ranges(letter: str, rows: Sequence[int]) -> list[str]:
    """Cell ranges of one column covering `rows` (ascending), runs collapsed: D2:D9 D11:D30."""
    ranges, start = [], None
    for n, row in enumerate(rows):
        start = row if start is None else start
        if n + 1 == len(rows) or rows[n + 1] != row + 1:
            ranges.append(f"{letter}{start}" if start == row else f"{letter}{start}:{letter}{row}")
            start = None
    return ranges


def _validation(ws, kind: str, title: str, prompt: str, cells: Sequence[str]):
    from openpyxl.worksheet.datavalidation import DataValidation

    if kind == "whole":
        dv = DataValidation(type="whole", operator="between", formula1=str(SCALE_MIN),
                            formula2=str(SCALE_MAX), allow_blank=True,
                            error=f"A whole number from {SCALE_MIN} to {SCALE_MAX}.")
    else:
        dv = DataValidation(type="list", formula1='"' + ",".join(PAIR_CHOICES) + '"',
                            allow_blank=True, error="A, B or tie.")
    dv.showInputMessage = dv.showErrorMessage = True
    dv.promptTitle, dv.prompt, dv.errorTitle = title, prompt, "Not a valid rating"
    ws.add_data_validation(dv)
    for cell in cells:
        dv.add(cell)


def xlsx_bytes(rater: str, items: Sequence[Item], pairs: Sequence[Pair]) -> bytes:
    """Instructions, Ratings and (with pairs) Pairs sheets; scores limited to whole 1–5."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    info = wb.active
    info.title = INSTRUCTIONS_SHEET
    for row in instructions_rows(rater, bool(pairs)):
        info.append(row)
    info["A1"].font = Font(bold=True, size=14)
    for row in info.iter_rows():
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    for column, width in zip("ABCDE", (12, 40, 30, 30, 30)):
        info.column_dimensions[column].width = width

    ws = wb.create_sheet(RATINGS_SHEET)
    _table_sheet(ws, RATING_COLUMNS, rating_rows(items))
    for d in DIMENSIONS:
        letter = get_column_letter(RATING_COLUMNS.index(d) + 1)
        cells = _ranges(letter, [r for r, item in enumerate(items, start=2) if d in item.dimensions])
        if cells:
            _validation(ws, "whole", *input_message(d), cells)
    if pairs:
        ps = wb.create_sheet(PAIRS_SHEET)
        _table_sheet(ps, PAIR_COLUMNS, pair_rows(pairs))
        letter = get_column_letter(PAIR_COLUMNS.index("preferred") + 1)
        _validation(ps, "list", "preferred", "A, B or tie: the story you would rather read.",
                    _ranges(letter, list(range(2, len(pairs) + 2))))
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Table:
    """One sheet as read: `where` prefixes every location (file, or file:sheet for xlsx)."""

    where: str
    kind: str  # ratings | pairs
    header: list[str]
    rows: list[tuple[int, list[Any]]]  # (1-based spreadsheet row, cells)


@dataclass(frozen=True)
class Workbook:
    path: Path
    tables: list[Table]
    rater_cell: str | None


def column_name(value: Any) -> str:
    """A header cell as a column name: case, spacing, underscores and a '(…)' note ignored."""
    text = re.sub(r"\(.*\)", "", str(value or "")).strip().lower()
    return re.sub(r"[\s_]+", " ", text)


def _kind(header: Sequence[str]) -> str:
    return "pairs" if "preferred" in header else "ratings"


def _blank(cells: Sequence[Any]) -> bool:
    return all(c is None or str(c).strip() == "" for c in cells)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:  # saved by a spreadsheet program in the local code page
        return data.decode("cp1252", errors="replace")


def read_csv(path: Path, shown: str) -> Workbook:
    text = _decode(path.read_bytes())
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)  # some locales save with ; or tabs
    records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    if not records:
        raise InputError(Problem(shown, "is empty"))
    header = [column_name(c) for c in records[0]]
    rows = [(n, list(r)) for n, r in enumerate(records[1:], start=2) if not _blank(r)]
    return Workbook(path, [Table(shown, _kind(header), header, rows)], None)


def read_xlsx(path: Path, shown: str) -> Workbook:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
        raise InputError(Problem(shown, f"cannot be read as an xlsx workbook ({error})",
                                 "save it from the spreadsheet program as .xlsx")) from None
    try:
        rater = None
        tables = []
        for ws in wb.worksheets:
            rows = [list(r) for r in ws.iter_rows(values_only=True)]
            if ws.title == INSTRUCTIONS_SHEET:
                for row in rows:
                    if row and str(row[0] or "").strip().lower() == "rater" and len(row) > 1:
                        rater = str(row[1] or "").strip() or None
                continue
            if not rows or "item" not in [column_name(c) for c in rows[0]]:
                continue
            header = [column_name(c) for c in rows[0]]
            kept = [(n, r) for n, r in enumerate(rows[1:], start=2) if not _blank(r)]
            tables.append(Table(f"{shown}:{ws.title}", _kind(header), header, kept))
    finally:
        wb.close()
    if not tables:
        raise InputError(Problem(shown, f"has no {RATINGS_SHEET} or {PAIRS_SHEET} sheet with an "
                                        f"\"item\" column", "use the sheet ratings make wrote"))
    return Workbook(path, tables, rater)


def read_sheet(path: Path, shown: str | None = None) -> Workbook:
    """A filled sheet, CSV or xlsx (by extension)."""
    shown = shown or str(path)
    if not path.is_file():
        raise InputError(Problem(shown, "no such file"))
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv(path, shown)
    if suffix in (".xlsx", ".xlsm"):
        return read_xlsx(path, shown)
    raise InputError(Problem(shown, f"unknown sheet type {suffix or '(none)'}",
                             "give the .csv or .xlsx that ratings make wrote"))
