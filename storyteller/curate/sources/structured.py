"""Readers for record formats: JSONL, JSON, CSV, Parquet and `datasets` (saved or hub).

Each record's fields are mapped to the pipeline's names (text, title, premise, genre, ...) by
`source.fields` in the config, falling back on common aliases. A record that cannot be read is a
`Rejected` with its line or position; it never aborts the run.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping

from storyteller.curate.decode import LineCounter, read_text
from storyteller.curate.records import META_KEYS, Rejected, RawStory
from storyteller.errors import InputError

# Where a field is not mapped in the config, the first alias present in the record is used.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "text": ("text", "story", "body", "content", "fable", "target", "completion_text"),
    "title": ("title", "name"),
    "premise": ("premise", "prompt", "summary", "source_prompt"),
    "genre": ("genre", "kind", "category"),
    "style": ("style",),
    "tone": ("tone",),
    "pov": ("pov", "point_of_view"),
    "audience": ("audience",),
    "moral": ("moral", "lesson"),
    "id": ("id", "story_id", "row_id"),
}

Record = Iterator[RawStory | Rejected]


def _pick(record: Mapping[str, Any], name: str, fields: Mapping[str, str]) -> tuple[str | None, Any]:
    if name in fields:
        key = fields[name]
        return key, record.get(key)
    for alias in FIELD_ALIASES.get(name, (name,)):
        if alias in record:
            return alias, record[alias]
    return None, None


def map_record(record: Any, fields: Mapping[str, str], source: str, line: int | None,
               position: int | None) -> RawStory | Rejected:
    """A parsed record → a RawStory, or a Rejected saying which field is wrong."""
    if not isinstance(record, Mapping):
        return Rejected(source, line, "malformed",
                        f"expected an object with a text field, got {type(record).__name__}",
                        position)
    key, text = _pick(record, "text", fields)
    if key is None or text is None:
        wanted = fields.get("text") or "/".join(FIELD_ALIASES["text"])
        return Rejected(source, line, "missing_text", f"no {wanted} field", position)
    if not isinstance(text, str):
        return Rejected(source, line, "not_text",
                        f"field {key!r} holds {type(text).__name__}, not text", position)
    meta: dict[str, Any] = {}
    for name in META_KEYS:
        _, value = _pick(record, name, fields)
        if value is not None and value != "" and not (isinstance(value, float) and value != value):
            meta[name] = value if isinstance(value, (list, dict)) else str(value)
    return RawStory(text=text, source=source, line=line, position=position, meta=meta)


def read_jsonl(path: Path, fields: Mapping[str, str], encoding: str = "auto") -> Record:
    text, _ = read_text(path, encoding)
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Rejected(str(path), number, "malformed", f"invalid JSON: {exc.msg} at column {exc.colno}")
            continue
        yield map_record(record, fields, str(path), number, None)


def _array_items(text: str) -> Iterator[tuple[int, Any]]:
    """(1-based start line, value) of each item of the top-level JSON array, in one pass."""
    decoder = json.JSONDecoder()
    lines = LineCounter(text)
    index = text.index("[") + 1
    while True:
        while index < len(text) and text[index] in " \t\n\r,":
            index += 1
        if index >= len(text) or text[index] == "]":
            return
        value, end = decoder.raw_decode(text, index)
        yield lines.line_at(index), value
        index = end


def read_json(path: Path, fields: Mapping[str, str], encoding: str = "auto",
              records_key: str = "") -> Record:
    text, _ = read_text(path, encoding)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if "\n{" in text and text.lstrip().startswith("{"):
            yield from read_jsonl(path, fields, encoding)  # JSON Lines in a .json file
            return
        raise InputError.at(f"{path}:{exc.lineno}", f"invalid JSON: {exc.msg}",
                            "fix the file or use --format jsonl for one object per line") from None
    if isinstance(data, list):
        for index, (line, record) in enumerate(_array_items(text)):
            yield map_record(record, fields, str(path), line, index)
        return
    if not isinstance(data, dict):
        raise InputError.at(str(path), "JSON must be a list of records or an object holding one")
    lists = [k for k, v in data.items() if isinstance(v, list)]
    key = records_key or (lists[0] if len(lists) == 1 else "")
    if not key or not isinstance(data.get(key), list):
        found = f"it holds lists under {', '.join(map(repr, lists))}" if lists else "it holds no list"
        raise InputError.at(str(path), f"a JSON object, not a list of records; {found}",
                            "set source.records_key to the key that holds the records")
    for index, record in enumerate(data[key]):
        yield map_record(record, fields, str(path), None, index)


def csv_rows(path: Path, text: str) -> Iterator[tuple[int, list[str] | csv.Error]]:
    """(start line, row) for each row after the header, or (line, error) for a row the csv
    module cannot parse; the header first as (1, header). Tab-separated for .tsv files."""
    csv.field_size_limit(sys.maxsize)  # stories can be longer than the module's 128 KiB default
    reader = csv.reader(io.StringIO(text, newline=""),
                        delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    line_end = 0
    while True:
        start = line_end + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line_end = reader.line_num
            yield start, exc
            continue
        line_end = reader.line_num
        yield start, row


def read_csv(path: Path, fields: Mapping[str, str], encoding: str = "auto") -> Record:
    text, _ = read_text(path, encoding)
    rows = csv_rows(path, text)
    first = next(rows, None)
    if first is None or isinstance(first[1], csv.Error):
        raise InputError.at(f"{path}:1", "no readable header row", "the first row must name the columns")
    header = [h.strip() for h in first[1]]
    for line, row in rows:
        if isinstance(row, csv.Error):
            yield Rejected(str(path), line, "malformed", f"unreadable CSV row: {row}")
        elif not any(cell.strip() for cell in row):
            continue
        elif len(row) != len(header):
            yield Rejected(str(path), line, "malformed",
                           f"{len(row)} columns where the header has {len(header)}")
        else:
            yield map_record(dict(zip(header, row)), fields, str(path), line, None)


def read_parquet(path: Path, fields: Mapping[str, str]) -> Record:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise InputError.at(str(path), f"not a readable Parquet file: {exc}") from None
    for index, record in enumerate(table.to_pylist()):
        yield map_record(record, fields, str(path), None, index)


def read_datasets(location: str, fields: Mapping[str, str], split: str = "train") -> Record:
    """A dataset saved with `save_to_disk` (a directory), or a hub id where the hub is reachable."""
    import datasets

    path = Path(location)
    try:
        if path.exists():
            data = datasets.load_from_disk(str(path))
        else:
            data = datasets.load_dataset(location, split=split)
    except Exception as exc:  # network, format and missing-split errors all end up here
        raise InputError.at(location, f"cannot load dataset: {str(exc).splitlines()[0]}",
                            "give a directory written by save_to_disk, or a reachable hub id") from None
    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            raise InputError.at(location, f"no split {split!r} (has {', '.join(data)})",
                                "set source.dataset_split")
        data = data[split]
    for index, record in enumerate(data):
        yield map_record(record, fields, location, None, index)
