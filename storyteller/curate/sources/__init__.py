"""One reader per input format, and detection of the format from the files themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Mapping, get_args

from storyteller.curate.config import Format
from storyteller.curate.decode import read_head
from storyteller.curate.records import Rejected, RawStory
from storyteller.curate.sources import gutenberg, structured, text, tinystories, writingprompts
from storyteller.errors import InputError

FORMATS: tuple[str, ...] = get_args(Format)


RECORD_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet", ".wp_source")


def _csv_is_writingprompts(path: Path) -> bool:
    sample = read_head(path, 8192)
    header = sample.split("\n", 1)[0].lower()
    return "prompt" in header and "story" in header and (
        "[ wp ]" in sample.lower() or "<newline>" in sample or " n't " in sample
        or "[wp]" in sample.lower())


def _is_saved_dataset(path: Path) -> bool:
    return any((path / name).exists() for name in ("dataset_info.json", "dataset_dict.json", "state.json"))


def _folder_files(path: Path) -> list[Path]:
    """Story and record files below `path`, and saved datasets as whole folders, in order."""
    found: list[Path] = []
    for child in sorted(path.iterdir()):
        if child.is_dir():
            found.extend([child] if _is_saved_dataset(child) else _folder_files(child))
        elif child.suffix.lower() in RECORD_SUFFIXES + text.STORY_SUFFIXES \
                and not child.stem.upper().startswith(text.NOT_STORIES):
            found.append(child)
    return found


def _looks_like_hub_id(location: str) -> bool:
    """`owner/name` that is not a path here: a missing path whose first part exists locally
    (`corpora/startr`) is a typo, not a hub id."""
    parts = location.split("/")
    return (len(parts) == 2 and all(parts) and not location.startswith((".", "/", "~"))
            and not Path(location).exists() and not Path(parts[0]).exists())


def detect_format(path: Path) -> str:
    """The format of `path` from its name and, for text files, its first bytes."""
    if path.is_dir():
        if _is_saved_dataset(path):
            return "datasets"
        files = _folder_files(path)
        story_files = [p for p in files if p.suffix.lower() in text.STORY_SUFFIXES]
        record_files = [p for p in files if p not in story_files]
        # A folder of plain story files is one story per file; as soon as it holds record files
        # or many-story text files (books, <|endoftext|> files), each file is read on its own.
        if story_files and not record_files and all(
                detect_format(p) == "text" for p in story_files):
            return "folder"
        return "files"
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "json"
    if suffix == ".parquet":
        return "parquet"
    if suffix in (".wp_source", ".wp_target"):
        return "writingprompts"
    if suffix in (".csv", ".tsv"):
        return "writingprompts" if _csv_is_writingprompts(path) else "csv"
    if suffix in (".txt", ".md", ".text", ""):
        head = read_head(path)
        if gutenberg.is_gutenberg(head):
            return "gutenberg"
        if text.ENDOFTEXT in head:
            return "tinystories"
        return "text"
    raise InputError.at(str(path), f"cannot tell the format of a {suffix or 'suffix-less'} file",
                        f"pass --format, one of: {', '.join(FORMATS[1:])}")


def expand_inputs(paths: list[str], fmt: str) -> list[tuple[str, str]]:
    """(location, format) for each input; a folder of record files expands into its files."""
    inputs: list[tuple[str, str]] = []
    for location in paths:
        path = Path(location)
        if fmt == "datasets" or (fmt == "auto" and _looks_like_hub_id(location)):
            inputs.append((location, "datasets"))
            continue
        if not path.exists():
            raise InputError.at(location, "no such file or folder", "check the path")
        chosen = fmt if fmt != "auto" else detect_format(path)
        if chosen == "files":
            readable = set(_folder_files(path))
            children = [c for c in sorted(path.iterdir())
                        if c in readable or (c.is_dir() and _folder_files(c))]
            if not children:
                raise InputError.at(location, "no story files in this folder",
                                    "point at the files, or pass --format")
            for child in children:
                inputs.extend(expand_inputs([str(child)], "auto"))
        elif path.is_dir() and chosen in ("jsonl", "json", "csv", "parquet", "gutenberg",
                                        "tinystories", "text"):
            suffixes = {"jsonl": (".jsonl",), "json": (".json",), "csv": (".csv",),
                        "parquet": (".parquet",)}.get(chosen, (".txt",))
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes)
            if not files:
                raise InputError.at(location, f"no {'/'.join(suffixes)} files for --format {chosen}")
            inputs.extend((str(p), chosen) for p in files)
        elif path.is_dir() and chosen == "writingprompts":
            inputs.extend((str(p), chosen) for p in sorted(path.glob("*.wp_source")))
        else:
            inputs.append((location, chosen))
    return inputs


def read_source(location: str, fmt: str, fields: Mapping[str, str], *, encoding: str = "auto",
                separator: str = "auto", separator_regex: str = "", min_blank_lines: int = 2,
                records_key: str = "", dataset_split: str = "train"
                ) -> Iterator[RawStory | Rejected]:
    """Every story (or rejected record) in one input of format `fmt`."""
    path = Path(location)
    if fmt == "jsonl":
        return structured.read_jsonl(path, fields, encoding)
    if fmt == "json":
        return structured.read_json(path, fields, encoding, records_key)
    if fmt == "csv":
        return structured.read_csv(path, fields, encoding)
    if fmt == "parquet":
        return structured.read_parquet(path, fields)
    if fmt == "datasets":
        return structured.read_datasets(location, fields, dataset_split)
    if fmt == "folder":
        return text.read_folder(path, encoding)
    if fmt == "text":
        return text.read_separated(path, separator, separator_regex, min_blank_lines, encoding)
    if fmt == "gutenberg":
        return gutenberg.read_gutenberg(path, encoding)
    if fmt == "tinystories":
        return tinystories.read_tinystories(path, encoding)
    if fmt == "writingprompts":
        return writingprompts.read_writingprompts(path, fields, encoding)
    raise InputError.at(location, f"unknown format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
