"""Readers for record formats: JSONL, JSON, CSV, Parquet and `datasets` (saved or hub).

Each record's fields are mapped to the pipeline's names (text, title, premise, genre, ...) by
`source.fields` in the config, falling back on common aliases (`fields.py`). The mapping is
checked against the file's columns (its header, or its first records) before any record is
read, so a file with no story column stops with one error naming its columns. A record that
cannot be read is a `Rejected` with its line or position; it never aborts the run.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from storyteller import console
from storyteller.curate.decode import LineCounter, decode_bytes, normalize_newlines
from storyteller.curate.records import Rejected, RawStory
from storyteller.curate.sources.fields import Fields, check_columns, map_record
from storyteller.errors import ConfigError, InputError

Record = Iterator[RawStory | Rejected]
# How many records (after the header) the mapping is checked against, and columns suggested from.
SAMPLE = 20


def _cp1252(data: bytes) -> str:
    """Windows-1252, the encoding a stray non-UTF-8 byte in a Western text nearly always comes
    from; its five undefined bytes are read as Latin-1."""
    return "".join(data[i:i + 1].decode("cp1252", errors="strict") if data[i] not in
                   b"\x81\x8d\x8f\x90\x9d" else chr(data[i]) for i in range(len(data)))


def _repair_line(line: bytes) -> str:
    """One line that is not valid UTF-8: its valid UTF-8 runs as UTF-8, the bytes between as
    Windows-1252, so a row pasted from another file keeps both its own and the file's accents."""
    parts, start = [], 0
    while start < len(line):
        try:
            parts.append(line[start:].decode("utf-8"))
            break
        except UnicodeDecodeError as exc:
            parts.append(line[start:start + exc.start].decode("utf-8"))
            parts.append(_cp1252(line[start + exc.start:start + exc.end]))
            start += exc.end
    return "".join(parts)


def decode_records(data: bytes, encoding: str = "auto") -> tuple[str, list[int], bool]:
    """(text, the 1-based lines that were not UTF-8, whether any line was UTF-8 beyond ASCII).

    `auto` reads UTF-8 (a BOM stripped; UTF-16 where it has a BOM). A file that is not valid
    UTF-8 is decoded line by line, not as a whole: each valid line as UTF-8, each other line
    with its bad bytes as Windows-1252. A file wholly in a legacy encoding reads as it would
    with `source.encoding: cp1252`; a mostly UTF-8 file with a few such rows (a spreadsheet
    pasted together from two sources) keeps every row, and the rows repaired are named."""
    if encoding != "auto":
        return decode_bytes(data, encoding)[0], [], False
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return normalize_newlines(data.decode("utf-16", errors="replace")), [], False
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return normalize_newlines(data.decode("utf-8")), [], False
    except UnicodeDecodeError:
        pass
    lines, repaired, utf8 = [], [], False
    for number, line in enumerate(data.split(b"\n"), start=1):
        try:
            lines.append(line.decode("utf-8"))
            utf8 = utf8 or not line.isascii()
        except UnicodeDecodeError:
            lines.append(_repair_line(line))
            repaired.append(number)
    return normalize_newlines("\n".join(lines)), repaired, utf8


def _lines_listed(lines: list[int], limit: int = 10) -> str:
    shown = ", ".join(map(str, lines[:limit]))
    return shown + (f" and {len(lines) - limit} more" if len(lines) > limit else "")


def read_records_text(path: Path, encoding: str = "auto") -> str:
    """A record file's text (`decode_records`); where some of its lines were not UTF-8 in an
    otherwise UTF-8 file, a warning names them, since those rows may hold a wrong letter."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError.at(str(path), f"cannot read: {exc.strerror or exc}") from None
    try:
        text, repaired, utf8 = decode_records(data, encoding)
    except LookupError:
        raise ConfigError.at("source.encoding", f"unknown encoding {encoding!r}",
                             "set source.encoding to auto, utf-8 or cp1252") from None
    if repaired and utf8:
        one = len(repaired) == 1
        console.console.print(
            f"warning: {path}: {'line' if one else 'lines'} {_lines_listed(repaired)} "
            f"{'is' if one else 'are'} not UTF-8 like the rest of the file; read as "
            f"Windows-1252 (check {'it' if one else 'them'}, or set source.encoding)",
            markup=False, highlight=False, soft_wrap=True)
    return text


def _checked(items: Iterable[tuple[int | None, int | None, Any]], fields: Fields, source: str,
             header: list[str] | None = None, where: str | None = None
             ) -> Iterator[tuple[int | None, int | None, Any]]:
    """`items` ((line, position, record)) passed through once the mapping has been checked
    against the columns: `header` where the file has one, else those of its first records."""
    items = iter(items)
    first = list(itertools.islice(items, SAMPLE))
    samples = [record for _, _, record in first if isinstance(record, Mapping)]
    if header is not None:
        check_columns(header, fields, where or source, samples)
    elif samples:
        columns = list(dict.fromkeys(key for record in samples for key in record))
        line, position = next((ln, pos) for ln, pos, r in first if isinstance(r, Mapping))
        at = f"{source}:{line}" if line is not None else source
        check_columns(columns, fields, at, samples, fixed=False)
    yield from first
    yield from items


def _jsonl_items(path: Path, text: str) -> Iterator[tuple[int, None, Any]]:
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield number, None, json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, None, Rejected(str(path), number, "malformed",
                                         f"invalid JSON: {exc.msg} at column {exc.colno}")


def _mapped(items: Iterable[tuple[int | None, int | None, Any]], fields: Fields,
            source: str) -> Record:
    for line, position, record in items:
        yield record if isinstance(record, Rejected) else \
            map_record(record, fields, source, line, position)


def read_jsonl(path: Path, fields: Fields, encoding: str = "auto") -> Record:
    text = read_records_text(path, encoding)
    yield from _mapped(_checked(_jsonl_items(path, text), fields, str(path)), fields, str(path))


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


def read_json(path: Path, fields: Fields, encoding: str = "auto",
              records_key: str = "") -> Record:
    text = read_records_text(path, encoding)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if "\n{" in text and text.lstrip().startswith("{"):
            yield from read_jsonl(path, fields, encoding)  # JSON Lines in a .json file
            return
        raise InputError.at(f"{path}:{exc.lineno}", f"invalid JSON: {exc.msg}",
                            "fix the file or use --format jsonl for one object per line") from None
    if isinstance(data, list):
        items = ((line, index, record)
                 for index, (line, record) in enumerate(_array_items(text)))
        yield from _mapped(_checked(items, fields, str(path)), fields, str(path))
        return
    if not isinstance(data, dict):
        raise InputError.at(str(path), "JSON must be a list of records or an object holding one")
    lists = [k for k, v in data.items() if isinstance(v, list)]
    key = records_key or (lists[0] if len(lists) == 1 else "")
    if not key or not isinstance(data.get(key), list):
        found = (f"it holds lists under {', '.join(map(repr, lists))}" if lists
                 else "it holds no list")
        raise InputError.at(str(path), f"a JSON object, not a list of records; {found}",
                            "set source.records_key to the key that holds the records")
    items = ((None, index, record) for index, record in enumerate(data[key]))
    yield from _mapped(_checked(items, fields, str(path)), fields, str(path))


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


def read_csv(path: Path, fields: Fields, encoding: str = "auto") -> Record:
    text = read_records_text(path, encoding)
    rows = csv_rows(path, text)
    first = next(rows, None)
    if first is None or isinstance(first[1], csv.Error):
        raise InputError.at(f"{path}:1", "no readable header row",
                            "the first row must name the columns")
    header = [h.strip() for h in first[1]]
    source = str(path)

    def records() -> Iterator[tuple[int, None, Any]]:
        for line, row in rows:
            if isinstance(row, csv.Error):
                yield line, None, Rejected(source, line, "malformed", f"unreadable CSV row: {row}")
            elif not any(cell.strip() for cell in row):
                continue
            elif len(row) != len(header):
                yield line, None, Rejected(source, line, "malformed",
                                           f"{len(row)} columns where the header has {len(header)}")
            else:
                yield line, None, dict(zip(header, row))

    yield from _mapped(_checked(records(), fields, source, header, f"{path}:1"), fields, source)


def read_parquet(path: Path, fields: Fields) -> Record:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise InputError.at(str(path), f"not a readable Parquet file: {exc}") from None
    check_columns(table.column_names, fields, str(path), table.slice(0, SAMPLE).to_pylist())
    for index, record in enumerate(table.to_pylist()):
        yield map_record(record, fields, str(path), None, index)


def read_datasets(location: str, fields: Fields, split: str = "train") -> Record:
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
                            "give a directory written by save_to_disk, or a reachable hub id"
                            ) from None
    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            raise InputError.at(location, f"no split {split!r} (has {', '.join(data)})",
                                "set source.dataset_split")
        data = data[split]
    check_columns(data.column_names, fields, location,
                  list(data.select(range(min(SAMPLE, len(data))))))
    for index, record in enumerate(data):
        yield map_record(record, fields, location, None, index)
