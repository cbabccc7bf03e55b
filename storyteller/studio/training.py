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

Everything here reads or writes those files; the runner that fills them is `trainer.py`. The
recipes are `training_recipes.py`, what a job learns from `training_sources.py`, and how far a
run got `training_progress.py`."""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyteller.catalog import read_json
from storyteller.errors import ConfigError, InputError, Problem
from storyteller.files import write_atomic
from storyteller.studio.training_progress import Progress, read_jsonl, run_progress
from storyteller.studio.training_recipes import (OPTIONS, Recipe, config_value, recipe_settings,
                                                 set_config_value)
# The app's Train page, the trainer and the tests use these as training.<name>.
from storyteller.studio.training_progress import progress_of, runs_in_progress  # re-exported
from storyteller.studio.training_recipes import (  # re-exported
    ROOT, Option, check_settings, option_defaults, recipe, recipes)
from storyteller.studio.training_sources import (  # re-exported
    DEFAULT_MAX_UPLOAD_MB, SourceReading, check_curated, export_library, preview, save_upload,
    source_paths, upload_name, uploads)

JOB_FILE, STATUS_FILE, RUNNER_FILE, LOG_FILE = "job.json", "status.json", "runner.json", \
    "runner.log"


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


# ------------------------------------------------------------------------------ its config
def finetune_settings(chosen: Recipe, options: dict[str, Any], data_dir: Path,
                      run_dir: Path, name: str) -> dict[str, Any]:
    """The config `storyteller finetune` runs the job with: the recipe, the writer's options,
    this job's data and run folders. Checkpoints follow the checks, so Pause loses little."""
    settings = recipe_settings(chosen)
    for key, value in options.items():
        if key not in {o.key for o in OPTIONS}:
            raise InputError.at(key, "not an option a recipe offers",
                                f"use one of: {', '.join(o.key for o in OPTIONS)}")
        set_config_value(settings, key, value)
    settings["name"] = slug(name) or "studio"
    set_config_value(settings, "data.dir", str(data_dir))
    settings["out"] = str(run_dir)
    every = config_value(settings, "eval.every_steps")
    if every:
        set_config_value(settings, "checkpoint.every_steps", every)
    return settings


# ------------------------------------------------------------------------------ progress
def read_progress(job: Job) -> Progress:
    return run_progress(job.run, job.config)


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
