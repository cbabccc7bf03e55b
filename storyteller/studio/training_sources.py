"""What a writer's training job learns from: the files the writer uploads (stored under safe
names in the job's uploads/ folder, nothing elsewhere), the library's well-rated versions
exported for curate, or a folder curate already wrote; and curate's preview of each input,
so a writer sees what will be read before training starts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from storyteller.errors import InputError
from storyteller.files import write_atomic

if TYPE_CHECKING:
    from storyteller.studio.training import Job

DEFAULT_MAX_UPLOAD_MB = 50

# Every suffix some curate reader takes (storyteller.curate.sources): what an upload may be.
UPLOAD_SUFFIXES = (".txt", ".md", ".markdown", ".text", ".jsonl", ".ndjson", ".json", ".csv",
                   ".tsv", ".parquet", ".wp_source", ".wp_target", ".docx", ".odt", ".rtf",
                   ".epub", ".html", ".htm", ".xhtml")


def upload_name(name: str) -> str:
    """The name an upload is stored under: its base name, letters, digits and `._- ` only.
    A name that is empty, holds NUL, or is only dots (`..`) is refused; folders are dropped."""
    if "\x00" in name:
        raise InputError.at("upload", "the file name contains a NUL character", "rename it")
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if base in ("", ".", ".."):
        raise InputError.at(f"upload {name!r}", "not a file name", "rename the file")
    clean = re.sub(r"[^A-Za-z0-9._ -]+", "_", base).lstrip(". ")
    stem, dot, suffix = clean.rpartition(".")
    if dot and len(clean) > 120:
        clean = stem[:110] + "." + suffix[:9]
    if not clean or clean.strip("._ -") == "":
        raise InputError.at(f"upload {name!r}", "nothing is left of the name", "rename the file")
    return clean[:120]


def save_upload(job: Job, name: str, data: bytes, max_mb: int = DEFAULT_MAX_UPLOAD_MB) -> Path:
    """Store an uploaded file in the job's uploads/ folder (and nowhere else)."""
    stored = upload_name(name)
    if not stored.lower().endswith(UPLOAD_SUFFIXES):
        raise InputError.at(f"upload {stored}", "curate reads no file of this kind",
                            "upload " + ", ".join(UPLOAD_SUFFIXES))
    if len(data) > max_mb * 1024 * 1024:
        raise InputError.at(f"upload {stored}", f"{len(data) / 1024 / 1024:.1f} MB is over the "
                            f"limit of {max_mb} MB", "split the file, or raise max_upload_mb in "
                            "the studio config")
    folder = job.uploads.resolve()
    target = (folder / stored).resolve()
    if target.parent != folder:  # the name rules above make this impossible; checked anyway
        raise InputError.at(f"upload {name!r}", "would be stored outside the job's folder")
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(target, data)
    return target


def uploads(job: Job) -> list[Path]:
    return sorted(p for p in job.uploads.glob("*") if p.is_file() and not p.name.startswith("."))


def export_library(job: Job, library, min_stars: int) -> int:
    """The library's versions rated `min_stars` or more, as a file curate reads: the count."""
    from storyteller.studio.export import jsonl_bytes, sft_records

    rated = library.rated()
    versions = [v for story_id in {s.id for s, _ in rated} for v in library.generations(story_id)]
    records = sft_records(rated, min_stars, versions)
    if records:
        write_atomic(job.library_file, jsonl_bytes(records))
    elif job.library_file.exists():
        job.library_file.unlink()
    return len(records)


def source_paths(job: Job) -> list[Path]:
    """What curate reads for this job (empty when the job uses a curated folder)."""
    if job.sources.get("curated"):
        return []
    paths = list(uploads(job))
    if job.sources.get("library_stars") and job.library_file.exists():
        paths.append(job.library_file)
    return paths


def check_curated(path: str) -> Path:
    """A curated directory finetune can train on, or an error saying what is missing."""
    from storyteller.curated import split_files

    folder = Path(path).expanduser()
    if not (folder / "manifest.json").is_file():
        raise InputError.at(str(folder), "not a curated folder (no manifest.json)",
                            "give a folder `storyteller curate --out` wrote")
    for split in ("train", "val"):
        if not split_files(folder, split):
            raise InputError.at(str(folder), f"no {split} split", "curate it again")
    return folder.resolve()


@dataclass
class SourceReading:
    """What curate reads from one input: the stories found, what was set aside and why."""
    name: str
    format: str = ""
    why: str = ""
    stories: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)  # line, title, words, first words
    set_aside: dict[str, int] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)  # curate's messages, e.g. unreadable
    warnings: list[str] = field(default_factory=list)


def preview(paths: Sequence[Path], config=None) -> list[SourceReading]:
    """curate's preview of each input, one at a time, so a file curate refuses is one
    reading with curate's message and the others are still read."""
    from storyteller.curate.config import CurateConfig
    from storyteller.curate.preview import MATTER, Tally
    from storyteller.curate.records import RawStory, Rejected
    from storyteller.curate.sources import expand_inputs
    from storyteller.curate.stages.read import input_records

    config = config or CurateConfig()
    readings: list[SourceReading] = []
    for path in paths:
        shown = path.name
        try:
            inputs = expand_inputs([str(path)], config.source.format)
        except InputError as error:
            readings.append(SourceReading(shown, details=[p.message + (f" ({p.hint})" if p.hint
                                                                       else "")
                                                          for p in error.problems]))
            continue
        for location, fmt in inputs:
            records, reading = input_records(location, fmt, config.source)
            tally = Tally([{"path": location, "format": fmt,
                            **({"reading": reading} if reading else {})}], config.source.format)
            details = []
            for item in records:
                if isinstance(item, RawStory):
                    item.input = 0
                elif isinstance(item, Rejected) and item.reason not in MATTER and \
                        len(details) < 5:
                    where = f"line {item.line}: " if item.line else ""
                    details.append(f"{where}{item.reason.replace('_', ' ')}: {item.detail}")
                tally.add(item)
            [found] = tally.finish()
            readings.append(SourceReading(
                shown if location == str(path) else f"{shown}/{Path(location).name}",
                found.format, found.why, found.story_count,
                [{"line": r.line if r.line is not None else r.position, "title": r.title,
                  "words": r.words, "first words": r.first_words} for r in found.stories[:200]],
                dict(found.rejected), details, list(found.warnings)))
    return readings
