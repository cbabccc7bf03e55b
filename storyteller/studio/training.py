"""A writer's training job, without Streamlit: the folder it lives in, the stories it learns
from, the recipe it trains with, and reading back how far it got.

A job is a folder beside the story library, `<library dir>/training/<job-id>/`:

    job.json        what the writer chose: name, sources, recipe and its options
    uploads/        the files the writer uploaded (sanitised names, nothing outside)
    library.jsonl   the library's well-rated versions, exported for curate
    data/           the curated directory (storyteller curate's --out)
    finetune.yaml   the recipe with the writer's options, as `storyteller finetune` reads it
    run/            the run directory (storyteller finetune's --out); run/evaluation/ the report
    model/          the merged, verified model (storyteller merge's --out)
    status.json     what the runner (storyteller.studio.trainer) is doing or last did
    runner.json     the runner's pid and process start time; runner.log its output

Everything here reads or writes those files; the runner that fills them is `trainer.py`."""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from storyteller.catalog import read_json, read_yaml
from storyteller.errors import ConfigError, InputError, Problem
from storyteller.files import write_atomic

ROOT = Path(__file__).resolve().parents[2]
JOB_FILE, STATUS_FILE, RUNNER_FILE, LOG_FILE = "job.json", "status.json", "runner.json", \
    "runner.log"
DEFAULT_MAX_UPLOAD_MB = 50

# Every suffix some curate reader takes (storyteller.curate.sources): what an upload may be.
UPLOAD_SUFFIXES = (".txt", ".md", ".markdown", ".text", ".jsonl", ".ndjson", ".json", ".csv",
                   ".tsv", ".parquet", ".wp_source", ".wp_target", ".docx", ".odt", ".rtf",
                   ".epub", ".html", ".htm", ".xhtml")


# ------------------------------------------------------------------------------ recipes
@dataclass(frozen=True)
class Option:
    key: str  # the finetune config key it sets
    label: str
    meaning: str
    kind: type = int
    low: float = 0


# The options a writer may change, with what they mean in words.
OPTIONS: tuple[Option, ...] = (
    Option("train.max_steps", "Steps", "How many updates training makes. More steps learn "
           "your style more firmly and take proportionally longer.", int, 1),
    Option("train.lr", "Learning rate", "How big each update is. Higher learns faster but "
           "can overshoot; LoRA runs use about 1e-4 to 2e-3.", float, 1e-7),
    Option("lora.r", "LoRA rank", "How much the adapter can hold: 8–16 suits a style, 32–64 "
           "a large corpus. Higher costs a little more memory and time.", int, 1),
    Option("lora.alpha", "LoRA alpha", "Scales the adapter's effect; usually twice the rank.",
           int, 1),
    Option("data.max_length", "Longest example (tokens)", "Stories longer than this are "
           "left out of training; longer costs more memory per step.", int, 16),
    Option("eval.every_steps", "Check every (steps)", "How often the held-out loss is "
           "measured and a sample story written (0: only at the end).", int, 0),
    Option("eval.sample_prompt", "Sample premise", "At each check the model writes a story "
           "from this premise, so you can watch your style take shape.", str),
    Option("eval.sample_tokens", "Sample length (tokens)", "How long that sample story is; "
           "longer shows more and takes longer at each check.", int, 1),
    Option("model.base", "Base model", "The model your style is taught to: smollm2-135m "
           "(built in), a local model folder or a hub id.", str),
)


@dataclass(frozen=True)
class Recipe:
    name: str
    label: str
    description: str
    config: str  # under configs/finetune/
    overrides: dict[str, Any] = field(default_factory=dict)
    gpu_only: bool = False


RECIPES: tuple[Recipe, ...] = (
    Recipe("quickstart", "Quick start", "LoRA on the built-in SmolLM2-135M, 240 steps: about "
           "10–25 minutes on a 2-core CPU. Learns a house style's surface.", "quickstart.yaml"),
    Recipe("style", "Longer style run", "The quick start at three times the steps with a "
           "larger adapter and a gentler learning rate: an hour or more on a CPU, for a "
           "style the quick start only begins to learn.", "quickstart.yaml",
           {"train.max_steps": 720, "train.lr": 1.0e-3, "lora.r": 32, "lora.alpha": 64,
            "eval.every_steps": 120, "checkpoint.every_steps": 120}),
    Recipe("qlora", "QLoRA on the GPU", "The base in 4-bit with LoRA on top, one pass over "
           "the stories: for larger bases on a GPU.", "qlora.yaml", gpu_only=True),
)


def recipes(gpu: bool) -> list[Recipe]:
    """The recipes this machine can run (QLoRA only where a GPU is visible)."""
    return [r for r in RECIPES if gpu or not r.gpu_only]


def recipe(name: str) -> Recipe:
    for candidate in RECIPES:
        if candidate.name == name:
            return candidate
    raise InputError.at("recipe", f"no recipe named {name!r}",
                        f"pick one of: {', '.join(r.name for r in RECIPES)}")


def _get(data: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        data = data.get(part, {}) if isinstance(data, dict) else {}
    return None if data == {} else data


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[last] = value


def recipe_settings(chosen: Recipe) -> dict[str, Any]:
    """The recipe's whole finetune config as data: its file, then its overrides."""
    data = yaml.safe_load((ROOT / "configs" / "finetune" / chosen.config).read_text()) or {}
    for key, value in chosen.overrides.items():
        _set(data, key, value)
    return data


def option_defaults(chosen: Recipe) -> dict[str, Any]:
    """Each option's value in the recipe (the finetune default where the recipe sets none)."""
    from storyteller.finetune.config import FinetuneConfig

    settings, defaults = recipe_settings(chosen), _as_data(FinetuneConfig())
    return {o.key: _get(settings, o.key) if _get(settings, o.key) is not None
            else _get(defaults, o.key) for o in OPTIONS}


def _as_data(config) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(config)


def finetune_settings(chosen: Recipe, options: dict[str, Any], data_dir: Path,
                      run_dir: Path, name: str) -> dict[str, Any]:
    """The config `storyteller finetune` runs the job with: the recipe, the writer's options,
    this job's data and run folders. Checkpoints follow the checks, so Pause loses little."""
    settings = recipe_settings(chosen)
    for key, value in options.items():
        if key not in {o.key for o in OPTIONS}:
            raise InputError.at(key, "not an option a recipe offers",
                                f"use one of: {', '.join(o.key for o in OPTIONS)}")
        _set(settings, key, value)
    settings["name"] = slug(name) or "studio"
    _set(settings, "data.dir", str(data_dir))
    settings["out"] = str(run_dir)
    every = _get(settings, "eval.every_steps")
    if every:
        _set(settings, "checkpoint.every_steps", every)
    return settings


def check_settings(settings: dict[str, Any]) -> None:
    """Refuse settings finetune would refuse, naming the option by its label."""
    from storyteller.config import load_config
    from storyteller.finetune.config import FinetuneConfig

    labels = {o.key: o.label for o in OPTIONS}
    flags = {key: (labels[key], _get(settings, key)) for key in labels}
    base = {k: v for k, v in settings.items()}
    for key in labels:  # the flags carry these, named by their labels
        *parents, last = key.split(".")
        node = base
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node.get(part), dict) else {}
        node.pop(last, None)
    load_config(FinetuneConfig, None, flags=flags, defaults=base)


# ------------------------------------------------------------------------------ jobs
def training_root(library: str | Path) -> Path:
    """The studio's training folder: beside the library file."""
    return Path(library).expanduser().resolve().parent / "training"


def slug(text: str) -> str:
    """A name safe as a folder and a served model name: lower case, letters, digits, dashes."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40]


@dataclass
class Job:
    dir: Path
    name: str = ""
    created: str = ""
    sources: dict[str, Any] = field(default_factory=dict)  # library_stars, curated
    recipe: str = "quickstart"
    options: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=lambda: {"prompts": 6, "max_tokens": 400})

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def model_name(self) -> str:
        """The name the endpoint serves the job's model under."""
        return slug(self.name) or self.id

    uploads = property(lambda self: self.dir / "uploads")
    data = property(lambda self: Path(self.sources["curated"]) if self.sources.get("curated")
                    else self.dir / "data")
    run = property(lambda self: self.dir / "run")
    evaluation_dir = property(lambda self: self.dir / "run" / "evaluation")
    model = property(lambda self: self.dir / "model")
    config = property(lambda self: self.dir / "finetune.yaml")
    log = property(lambda self: self.dir / LOG_FILE)
    library_file = property(lambda self: self.dir / "library.jsonl")

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        data = {"name": self.name, "created": self.created, "sources": self.sources,
                "recipe": self.recipe, "options": self.options, "evaluation": self.evaluation}
        write_atomic(self.dir / JOB_FILE, (json.dumps(data, indent=2) + "\n").encode())

    @property
    def started(self) -> bool:
        """Training began: the stories and the recipe are fixed from here on."""
        return (self.dir / STATUS_FILE).exists()


def new_job(root: Path, name: str) -> Job:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    job = Job(root / f"{stamp}-{slug(name) or 'job'}-{secrets.token_hex(2)}", name=name.strip(),
              created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    job.uploads.mkdir(parents=True, exist_ok=True)
    job.save()
    return job


def open_job(directory: Path) -> Job:
    path = directory / JOB_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError.at(str(path), f"not a training job ({error})",
                            "start a new training") from None
    return Job(directory, **{k: data[k] for k in ("name", "created", "sources", "recipe",
                                                  "options", "evaluation") if k in data})


def list_jobs(root: Path) -> list[Job]:
    """The jobs under `root`, newest first; folders that are not jobs are passed over."""
    if not root.is_dir():
        return []
    jobs = [open_job(d) for d in sorted(root.iterdir(), reverse=True)
            if (d / JOB_FILE).is_file()]
    return jobs


# ------------------------------------------------------------------------------ uploads
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


# ------------------------------------------------------------------------------ preview
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


# ------------------------------------------------------------------------------ progress
@dataclass
class Progress:
    step: int = 0
    total: int = 0
    train: list[tuple[int, float]] = field(default_factory=list)  # (step, loss)
    val: list[tuple[int, float]] = field(default_factory=list)  # (step, validation loss)
    tokens_per_s: float | None = None
    seconds_per_step: float | None = None
    sample: dict[str, Any] | None = None  # the latest {"step", "prompt", "story"}
    checkpoints: list[int] = field(default_factory=list)

    @property
    def eta_s(self) -> float | None:
        if self.seconds_per_step is None or not self.total:
            return None
        return max(0, self.total - self.step) * self.seconds_per_step


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The whole lines of a JSONL file another process is appending to (a cut last line is
    left for the next read)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            break
    return records


def progress_of(records: list[dict[str, Any]], total: int) -> Progress:
    """The curve, the pace and the time left from metrics.jsonl's records."""
    train = [(r["step"], r["loss"]) for r in records
             if r.get("kind") == "train" and isinstance(r.get("loss"), (int, float))
             and math.isfinite(r["loss"])]
    val = [(r["step"], r["val_loss"]) for r in records
           if r.get("kind") == "eval" and isinstance(r.get("val_loss"), (int, float))]
    timed = [r for r in records if r.get("kind") == "train" and r.get("seconds") is not None]
    rates = [r["tokens_per_s"] for r in timed[-5:] if r.get("tokens_per_s")]
    per_step = None
    if len(timed) >= 2 and timed[-1]["step"] > timed[0]["step"]:
        recent = timed[-10:]
        per_step = (recent[-1]["seconds"] - recent[0]["seconds"]) / \
            (recent[-1]["step"] - recent[0]["step"]) if len(recent) >= 2 and \
            recent[-1]["step"] > recent[0]["step"] else None
    elif len(timed) == 1 and timed[0]["step"]:
        per_step = timed[0]["seconds"] / timed[0]["step"]
    return Progress(step=max([s for s, _ in train] + [s for s, _ in val] + [0]), total=total,
                    train=train, val=val, tokens_per_s=sum(rates) / len(rates) if rates else None,
                    seconds_per_step=per_step)


def read_progress(job: Job) -> Progress:
    return run_progress(job.run, job.config)


def run_progress(run: Path, config: Path | None = None) -> Progress:
    """Any fine-tune run's progress from its folder: the curve, pace, ETA, latest sample and
    complete checkpoints. `config` gives the planned steps (default: the run's config.yaml)."""
    from storyteller.finetune.checkpoint import complete_checkpoints

    try:
        total = int(_get(read_yaml(config or run / "config.yaml"), "train.max_steps") or 0)
    except (ValueError, TypeError, AttributeError):
        total = 0
    progress = progress_of(read_jsonl(run / "metrics.jsonl"), total)
    samples = read_jsonl(run / "samples.jsonl")
    progress.sample = samples[-1] if samples else None
    root = run / "checkpoints"
    progress.checkpoints = [int(p.name.rsplit("-", 1)[-1]) for p in complete_checkpoints(root)] \
        if root.is_dir() else []
    return progress


def runs_in_progress(runs: Path, within_s: float = 600.0, now: float | None = None) -> list[Path]:
    """Runs under `runs` (started from a terminal or a script, such as the demo's quickstart)
    that are training now: no final/COMPLETE and metrics written within `within_s` seconds."""
    now = time.time() if now is None else now
    found = []
    for metrics in sorted(runs.glob("*/metrics.jsonl")) if runs.is_dir() else []:
        run = metrics.parent
        if (run / "final" / "COMPLETE").is_file():
            continue
        if now - metrics.stat().st_mtime <= within_s:
            found.append(run)
    return found


def usable_model(job: Job) -> Path | None:
    """The job's merged model, only once it passed verification: never a half-written one."""
    verification = read_json(job.model / "verification.json")
    return job.model if verification.get("passed") is True else None


def evaluation_result(job: Job) -> dict[str, Any] | None:
    """Headline figures and one prompt's two stories (base and tuned) from the report."""
    try:
        metrics = json.loads((job.evaluation_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    headline = []
    for key in ("perplexity", "style_pass", "genre_match", "words", "distinct_2", "stop_rate"):
        entry = metrics.get("metrics", {}).get(key)
        if entry:
            values = entry.get("values", {})
            headline.append({"figure": entry.get("label", key),
                             "base": (values.get("base") or {}).get("value"),
                             "yours": (values.get("tuned") or {}).get("value"),
                             "better": entry.get("better") or ""})
    by_prompt: dict[str, dict[str, dict]] = {}
    for record in read_jsonl(job.evaluation_dir / "generations.jsonl"):
        by_prompt.setdefault(record.get("prompt_id", ""), {}).setdefault(record["model"], record)
    pair = next((p for p in by_prompt.values() if "base" in p and "tuned" in p), None)
    return {"headline": headline, "findings": list(metrics.get("findings", []))[:5],
            "prompt": (pair or {}).get("tuned", {}).get("prompt", ""),
            "base_story": (pair or {}).get("base", {}).get("text", ""),
            "tuned_story": (pair or {}).get("tuned", {}).get("text", "")}


def log_tail(job: Job, lines: int = 25) -> str:
    try:
        text = job.log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def error_lines(text: str) -> list[str]:
    """The `error: …` lines a stage printed: what went wrong, in its words."""
    return [line[len("error: "):] for line in text.splitlines() if line.startswith("error: ")]


def problems_text(error: InputError | ConfigError) -> list[str]:
    return [str(p) for p in error.problems]


__all__ = ["Job", "Option", "Problem", "Progress", "Recipe", "SourceReading"]
