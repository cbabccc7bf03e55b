"""The rater page's data: a rater's blinded items in their own order, and their answers.

The items are read from the rater's own sheet that `storyteller ratings make` wrote
(DIR/sheets/rater-NN.csv and -pairs.csv), so a rater sees in the studio exactly what their
spreadsheet would show, in the same order, with the same ids and nothing more: which model wrote
what stays in key.json. Answers go to DIR/ratings.sqlite through RatingsStore, the store that
`storyteller ratings import` writes and `storyteller ratings report` reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from storyteller.errors import InputError, Problem
from storyteller.ratings.run import KEY, STORE, load_key, open_store
from storyteller.ratings.scales import DIMENSIONS, NOT_RATED
from storyteller.ratings.sheet import read_sheet
from storyteller.ratings.store import RatingsStore

SOURCE = "studio"


@dataclass(frozen=True)
class RateItem:
    id: str
    prompt: str
    story: str
    dimensions: tuple[str, ...]


@dataclass(frozen=True)
class PairItem:
    id: str
    prompt: str
    story_a: str
    story_b: str


def _cell(row: list, header: list[str], name: str) -> str:
    index = header.index(name) if name in header else -1
    value = row[index] if 0 <= index < len(row) else ""
    return "" if value is None else str(value)


class RatingsFolder:
    """A folder written by `storyteller ratings make`, opened for the rater page."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self.key_path = self.folder / KEY
        if not self.key_path.is_file():
            raise InputError(Problem(str(self.folder), "holds no key.json",
                                     "point the studio at the folder `storyteller ratings make` "
                                     "wrote (--ratings DIR)"))
        self.key = load_key(self.key_path)
        self._stores: dict[Path, RatingsStore] = {}

    @property
    def raters(self) -> tuple[str, ...]:
        return self.key.raters

    def knows(self, rater: str) -> bool:
        return rater in self.key.raters

    def _sheet(self, rater: str, suffix: str = "") -> Path:
        if not self.knows(rater):
            raise InputError(Problem(rater, "is not a rater id of this study",
                                     "use the id on your sheet or in your invitation, e.g. "
                                     "rater-01"))
        return self.folder / "sheets" / f"{rater}{suffix}.csv"

    def items(self, rater: str) -> list[RateItem]:
        """The rater's story items in their order, each with the dimensions it is rated on."""
        book = read_sheet(self._sheet(rater))
        items = []
        for table in book.tables:
            for _, row in table.rows:
                item = _cell(row, table.header, "item").strip()
                if not item:
                    continue
                dimensions = tuple(d for d in DIMENSIONS
                                   if _cell(row, table.header, d).strip().lower() != NOT_RATED)
                items.append(RateItem(item, _cell(row, table.header, "prompt"),
                                      _cell(row, table.header, "story"), dimensions))
        return items

    def pairs(self, rater: str) -> list[PairItem]:
        path = self._sheet(rater, "-pairs")
        if not path.is_file():
            return []
        book = read_sheet(path)
        return [PairItem(_cell(row, t.header, "item"), _cell(row, t.header, "prompt"),
                         _cell(row, t.header, "story a"), _cell(row, t.header, "story b"))
                for t in book.tables for _, row in t.rows if _cell(row, t.header, "item")]

    def store(self) -> RatingsStore:
        """The study's store, tied to this key.json (a store for other sheets is refused)."""
        return open_store(self.folder / STORE, self.key_path, self._stores)

    def progress(self, rater: str) -> tuple[int, int]:
        """(answered, total) over the rater's stories and pairs."""
        ids = {i.id for i in self.items(rater)} | {p.id for p in self.pairs(rater)}
        return len(ids & self.store().answered(rater)), len(ids)

    def next_open(self, rater: str) -> int:
        """Index (over items, then pairs) of the first thing the rater has not answered; the
        total count when everything is done. This is where a returning rater resumes."""
        answered = self.store().answered(rater)
        everything = [i.id for i in self.items(rater)] + [p.id for p in self.pairs(rater)]
        for index, item in enumerate(everything):
            if item not in answered:
                return index
        return len(everything)

    def save_scores(self, rater: str, item: str, scores: dict[str, int], comment: str = "") -> None:
        self.store().add_scores(rater, item, scores, comment, SOURCE)

    def save_preference(self, rater: str, item: str, choice: str, comment: str = "") -> None:
        self.store().add_preference(rater, item, choice, comment, SOURCE)

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()
