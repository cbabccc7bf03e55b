"""Filled sheets checked row by row: every problem located (file:row, column), valid rows kept.

A row with any problem is rejected as a whole (half a rating is not a rating) and every problem
in it is reported, so a rater fixes a sheet in one pass. Cells of dimensions the request did not
ask for (`n/a` in the sheet) are not rated: whatever is typed there is ignored."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from storyteller.errors import Problem
from storyteller.ratings.key import Key
from storyteller.ratings.scales import DIMENSIONS, PAIR_CHOICES
from storyteller.ratings.sheet import PAIR_COLUMNS, RATING_COLUMNS, Table

_INTEGER = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)$")


@dataclass(frozen=True)
class ScoreAnswer:
    item: str
    scores: dict[str, int]
    comment: str
    row: int


@dataclass(frozen=True)
class PairAnswer:
    item: str
    choice: str  # A | B | tie
    comment: str
    row: int


@dataclass
class Checked:
    """One table's verdict: answers to store, problems to print, key items it lacks."""

    where: str
    kind: str
    answers: list = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    rejected: int = 0
    missing: list[str] = field(default_factory=list)
    header_ok: bool = True  # False: nothing in the table could be read, so nothing replaces


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value.strip()}"'
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_score(value: Any, low: int, high: int) -> tuple[int | None, str | None]:
    """(score, None) or (None, why not) for one cell."""
    if _empty(value):
        return None, "empty"
    number: float | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str) and _NUMBER.match(value.strip()):
        text = value.strip().replace(",", ".")
        number = float(int(text)) if _INTEGER.match(text) else float(text)
    if number is None or not number.is_integer():
        return None, f"{_shown(value)} is not a whole number {low}–{high}"
    if not low <= number <= high:
        return None, f"{int(number)} is out of range {low}–{high}"
    return int(number), None


def _cell(row: list[Any], header: list[str], column: str) -> Any:
    index = header.index(column)
    return row[index] if index < len(row) else None


def _item_id(row: list[Any], header: list[str]) -> str:
    value = _cell(row, header, "item")
    return "" if _empty(value) else str(value).strip()


def check_table(table: Table, key: Key) -> Checked:
    """Validate one table against the key; pairs tables and ratings tables alike."""
    result = Checked(table.where, table.kind)
    columns = PAIR_COLUMNS if table.kind == "pairs" else RATING_COLUMNS
    needed = [c for c in columns if c not in ("prompt", "story", "story A", "story B", "comment")]
    absent = [c for c in needed if c not in table.header]
    if absent:
        names = ", ".join(f'"{c}"' for c in absent)
        noun = "column" if len(absent) == 1 else "columns"
        result.problems.append(Problem(f"{table.where}:1", f"{noun} {names} missing from the header",
                                       "keep the header row that ratings make wrote"))
        result.rejected = len(table.rows)
        result.header_ok = False
        return result
    own = key.pairs if table.kind == "pairs" else key.items
    other = key.items if table.kind == "pairs" else key.pairs
    first_row: dict[str, int] = {}
    for number, row in table.rows:
        where = f"{table.where}:{number}"
        problems: list[Problem] = []
        item = _item_id(row, table.header)
        if not item:
            problems.append(Problem(where, 'column "item": empty',
                                    "restore the item id this row had"))
        elif item in first_row:
            problems.append(Problem(where, f'column "item": {item} appears again (first on row '
                                           f"{first_row[item]}); this row is ignored",
                                    "keep one row per item"))
        elif item not in own:
            if item in other:
                place = "Pairs sheet" if table.kind == "ratings" else "Ratings sheet"
                message = f'column "item": {item} belongs on the {place}'
            else:
                message = f'column "item": unknown item "{item}" (not in key.json)'
            problems.append(Problem(where, message, "was the item id edited, or is the sheet "
                                                    "from another ratings make?"))
        if item and item not in first_row:
            first_row[item] = number
        comment = _cell(row, table.header, "comment") if "comment" in table.header else None
        comment = "" if _empty(comment) else str(comment).strip()
        if table.kind == "pairs":
            answer = _check_pair(row, table.header, where, item, comment, number, problems)
        else:
            answer = _check_scores(row, table.header, where, item, comment, number, key, problems)
        if problems:
            result.problems += problems
            result.rejected += 1
        elif answer is not None:
            result.answers.append(answer)
    result.missing = [i for i in own if i not in first_row]
    return result


def _check_scores(row, header, where, item, comment, number, key: Key,
                  problems) -> ScoreAnswer | None:
    low, high = key.scale
    dims = key.applicable(item) if item in key.items else DIMENSIONS
    scores: dict[str, int] = {}
    empty: list[str] = []
    for d in dims:
        value = _cell(row, header, d)
        score, why = parse_score(value, low, high)
        if why == "empty":
            empty.append(d)
        elif why:
            problems.append(Problem(where, f'column "{d}": {why}', f"use a whole number {low}–{high}"))
        else:
            scores[d] = score  # type: ignore[assignment]
    if empty and len(empty) == len(dims):
        problems.append(Problem(where, f"columns {', '.join(empty)}: empty (the row was not rated)",
                                f"rate each {low}–{high}"))
    else:
        problems += [Problem(where, f'column "{d}": empty', f"rate it {low}–{high}") for d in empty]
    return ScoreAnswer(item, scores, comment, number)


def _check_pair(row, header, where, item, comment, number, problems) -> PairAnswer | None:
    value = _cell(row, header, "preferred")
    choices = {c.lower(): c for c in PAIR_CHOICES}
    if _empty(value):
        problems.append(Problem(where, 'column "preferred": empty', "write A, B or tie"))
        return None
    choice = choices.get(str(value).strip().lower())
    if choice is None:
        problems.append(Problem(where, f'column "preferred": {_shown(value)} is not A, B or tie',
                                "write A, B or tie"))
        return None
    return PairAnswer(item, choice, comment, number)
