"""One reader per input format, and detection of the format from the files themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, get_args

from storyteller.curate.config import Format
from storyteller.curate.decode import read_head
from storyteller.curate.records import Rejected, RawStory
from storyteller.curate.sources import (documents, epub, gutenberg, html, office, structured,
                                        text, tinystories, writingprompts)
from storyteller.errors import InputError

FORMATS: tuple[str, ...] = get_args(Format)


RECORD_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet", ".wp_source")
# Documents and books, each read on its own (a folder of them is read file by file).
DOCUMENT_SUFFIXES = {".docx": "docx", ".odt": "odt", ".rtf": "rtf", ".epub": "epub",
                     ".html": "html", ".htm": "html", ".xhtml": "html"}
# Formats whose content says what they are, whatever the file is called.
_SNIFFED = {"docx", "odt", "epub", "rtf", "html"}


def _csv_is_writingprompts(path: Path) -> bool:
    sample = read_head(path, 8192)
    header = sample.split("\n", 1)[0].lower()
    return "prompt" in header and "story" in header and (
        "[ wp ]" in sample.lower() or "<newline>" in sample or " n't " in sample
        or "[wp]" in sample.lower())


def _is_saved_dataset(path: Path) -> bool:
    return any((path / name).exists()
               for name in ("dataset_info.json", "dataset_dict.json", "state.json"))


def _is_page_assets(path: Path) -> bool:
    """`Page_files/`, the scripts, styles and pictures a browser saves beside `Page.html`."""
    return path.name.endswith("_files") and any(
        path.with_name(path.name[:-len("_files")] + suffix).exists()
        for suffix in (".html", ".htm", ".xhtml"))


def _folder_files(path: Path) -> list[Path]:
    """Story, record and document files below `path`, and saved datasets as whole folders, in
    order."""
    found: list[Path] = []
    for child in sorted(path.iterdir()):
        if child.is_dir():
            if not _is_page_assets(child):
                found.extend([child] if _is_saved_dataset(child) else _folder_files(child))
        elif child.suffix.lower() in (*RECORD_SUFFIXES, *text.STORY_SUFFIXES, *DOCUMENT_SUFFIXES) \
                and not child.stem.upper().startswith(text.NOT_STORIES) \
                and not child.name.startswith("~$"):  # Word's lock file beside an open document
            found.append(child)
    return found


def _sniff(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            return documents.sniff(handle.read(4096))
    except OSError as exc:
        raise InputError.at(str(path), f"cannot read: {exc.strerror or exc}") from None


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
    if suffix in DOCUMENT_SUFFIXES:
        return DOCUMENT_SUFFIXES[suffix]
    if suffix == ".doc":
        raise InputError.at(str(path), "an old binary Word file (.doc) is not read",
                            "save it as .docx (or .odt, .rtf) and curate that")
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
    sniffed = _sniff(path) if path.is_file() else None
    if sniffed in _SNIFFED:  # a suffix-less or mislabelled document: its content decides
        return sniffed
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
                        if c in readable or (c.is_dir() and not _is_page_assets(c)
                                                 and _folder_files(c))]
            if not children:
                raise InputError.at(location, "no story files in this folder",
                                    "point at the files, or pass --format")
            for child in children:
                inputs.extend(expand_inputs([str(child)], "auto"))
        elif path.is_dir() and chosen in ("jsonl", "json", "csv", "parquet", "gutenberg",
                                        "tinystories", "text", *set(DOCUMENT_SUFFIXES.values())):
            suffixes = {"jsonl": (".jsonl",), "json": (".json",), "csv": (".csv", ".tsv"),
                        "parquet": (".parquet",)}.get(chosen) or tuple(
                s for s, f in DOCUMENT_SUFFIXES.items() if f == chosen) or (".txt",)
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes
                           and not p.name.startswith("~$"))
            if not files:
                raise InputError.at(location,
                                    f"no {'/'.join(suffixes)} files for --format {chosen}")
            inputs.extend((str(p), chosen) for p in files)
        elif path.is_dir() and chosen == "writingprompts":
            inputs.extend((str(p), chosen) for p in sorted(path.glob("*.wp_source")))
        else:
            inputs.append((location, chosen))
    return inputs


def read_source(location: str, fmt: str, fields: structured.Fields, *, encoding: str = "auto",
                separator: str = "auto", separator_regex: str = "", min_blank_lines: int = 2,
                records_key: str = "", dataset_split: str = "train"
                ) -> Iterator[RawStory | Rejected]:
    """Every story (or rejected record) in one input of format `fmt`."""
    path = Path(location)
    if path.is_file() and path.stat().st_size == 0:
        # Every format alike: an empty file is one located reject, whatever it should have held.
        return iter([Rejected(location, None, "empty", "the file is empty")])
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
    if fmt == "docx":
        return office.read_docx(path)
    if fmt == "odt":
        return office.read_odt(path)
    if fmt == "rtf":
        return documents.read_rtf(path, encoding)
    if fmt == "epub":
        return epub.read_epub(path)
    if fmt == "html":
        return html.read_html(path, encoding)
    raise InputError.at(location, f"unknown format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
