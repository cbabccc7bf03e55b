"""What models there are: fine-tune runs (runs/NAME) and merged models (models/NAME), each with
its base, data, steps, method, headline scores and whether it is verified and served now.

Everything here reads the artifacts the stages write — run.json, config.yaml, summary.json,
final/storyteller.json, a model's storyteller.json and verification.json, evaluate's
metrics.json — and nothing else, so `storyteller models` and the studio's model picker give the
same answer. `scan` and `mark_served` are pure over folders and data; `served_models` is the one
function that talks to an endpoint."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

RUN, MODEL = "run", "model"


@dataclass(frozen=True)
class Entry:
    kind: str  # "run" (a fine-tune run directory) or "model" (a merged model directory)
    name: str
    path: str
    base_model: str | None = None
    data: str | None = None
    steps: int | None = None
    method: str | None = None  # lora, qlora, full
    objective: str | None = None  # what training optimised: sft unless the run says otherwise
    # A run: final/ written (training finished). A model: always (merge publishes whole folders).
    complete: bool = False
    best_val_loss: float | None = None
    # Headline scores of the newest evaluation of this model (evaluate's metrics.json).
    style_followed: float | None = None  # share of stories that follow their house style
    # The same share per house style (moral, refrain, noir, log): a model can follow the easy
    # styles and never the hard one, which one overall share hides.
    styles_followed: dict[str, float] | None = None
    perplexity: float | None = None  # held-out story perplexity
    evaluation: str | None = None  # that metrics.json
    # A model: verification.json says the merge passed (False: failed or missing). A run: None.
    verified: bool | None = None
    merged_from: str | None = None
    served: bool = False
    served_as: str | None = None  # the endpoint's name for it

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object, or {} where the file is missing or unreadable (a run still being written,
    a file cut short by a kill): the catalog lists what it can."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _get(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _last_checkpoint_step(run_dir: Path) -> int | None:
    """The step of the newest complete checkpoint: how far an unfinished run has come."""
    steps = []
    for state in (run_dir / "checkpoints").glob("step-*/state.json"):
        if (state.parent / "COMPLETE").exists():
            step = read_json(state).get("step")
            if isinstance(step, int):
                steps.append(step)
    return max(steps, default=None)


def run_entry(run_dir: Path) -> Entry | None:
    """A fine-tune run directory's entry; None for a folder that is not one (evaluate's default
    --out also lives under runs/)."""
    run_json, config = read_json(run_dir / "run.json"), read_yaml(run_dir / "config.yaml")
    if not run_json and not (run_dir / "final" / "storyteller.json").exists():
        return None
    meta = read_json(run_dir / "final" / "storyteller.json")
    summary = read_json(run_dir / "summary.json")
    steps = summary.get("steps")
    return Entry(
        kind=RUN, name=run_dir.name, path=str(run_dir),
        base_model=meta.get("base_model") or _get(config, "model", "base"),
        data=_get(run_json, "data", "dir") or _get(meta, "data", "dir"),
        steps=steps if isinstance(steps, int) else _last_checkpoint_step(run_dir),
        method=meta.get("method") or _get(config, "model", "method"),
        objective=meta.get("objective") or _get(config, "objective") or "sft",
        complete=(run_dir / "final" / "COMPLETE").exists(),
        best_val_loss=summary.get("best_val_loss"))


def model_entry(model_dir: Path) -> Entry | None:
    """A merged model directory's entry; None for a folder without storyteller.json."""
    meta = read_json(model_dir / "storyteller.json")
    if not meta:
        return None
    results = meta.get("results") or {}
    verification = read_json(model_dir / "verification.json")
    return Entry(
        kind=MODEL, name=model_dir.name, path=str(model_dir),
        base_model=meta.get("base_model"), data=_get(meta, "data", "dir"),
        steps=results.get("steps"),
        method=_get(meta, "trained_with", "method") or meta.get("method"),
        objective=meta.get("objective") or "sft", complete=True,
        best_val_loss=results.get("best_val_loss"),
        verified=verification.get("passed") is True, merged_from=meta.get("merged_from"))


def _same_path(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, RuntimeError):
        return False


def evaluations(folders: Iterable[Path]) -> list[Path]:
    """Every evaluate metrics.json one or two levels below `folders` (runs/NAME/evaluation/,
    or evaluate's default runs/evaluation/)."""
    found = []
    for folder in folders:
        found += folder.glob("*/metrics.json")
        found += folder.glob("*/*/metrics.json")
    return sorted(set(found))


def evaluation_of(entry: Entry, reports: Sequence[Path]) -> Path | None:
    """The newest report whose evaluated model ("tuned") is this entry: its path, a run's
    final/, or a folder inside it."""
    targets = [entry.path] + ([str(Path(entry.path) / "final")] if entry.kind == RUN else [])
    matching = []
    for report in reports:
        ref = _get(read_json(report), "models", "tuned", "ref")
        if isinstance(ref, str) and any(_same_path(ref, t) for t in targets):
            matching.append(report)
    return max(matching, key=lambda p: p.stat().st_mtime, default=None)


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """House style followed (overall and per style) and perplexity of the evaluated model, from
    a metrics.json."""
    def number(value: Any) -> float | None:
        return float(value) if isinstance(value, (int, float)) else None

    def value(name: str) -> float | None:
        return number(_get(metrics, "metrics", name, "values", "tuned", "value"))

    per_style = {style: number(_get(cells, "tuned", "value"))
                 for style, cells in (metrics.get("house_styles") or {}).items()}
    per_style = {style: v for style, v in per_style.items() if v is not None}
    return {"style_followed": value("style_pass"), "perplexity": value("perplexity"),
            "styles_followed": per_style or None}


def scan(runs: Path = Path("runs"), models: Path = Path("models")) -> list[Entry]:
    """Every run under `runs` and merged model under `models`, with its evaluation's headline
    scores; runs first, each kind by name. Missing folders are simply empty."""
    entries: list[Entry] = []
    for folder, read in ((runs, run_entry), (models, model_entry)):
        if folder.is_dir():
            entries += [e for e in (read(d) for d in sorted(folder.iterdir()) if d.is_dir()) if e]
    reports = evaluations([f for f in (runs, models) if f.is_dir()])
    scored = []
    for entry in entries:
        report = evaluation_of(entry, reports)
        if report is not None:
            entry = replace(entry, evaluation=str(report), **headline(read_json(report)))
        scored.append(entry)
    return scored


# --- what an endpoint serves -----------------------------------------------------------------

@dataclass(frozen=True)
class Served:
    """What an endpoint's /v1/models answered: each model's id and its storyteller metadata;
    `problem` says why there is nothing (unreachable, refused the key …)."""
    endpoint: str
    models: tuple[tuple[str, dict[str, Any]], ...] = ()
    problem: str = ""


def served_models(endpoint: str, api_key: str | None = None, timeout: float = 3.0) -> Served:
    """Ask `endpoint` which models it serves. Never raises for an endpoint that is down or
    refuses: the catalog then says nothing is served, and why."""
    from storyteller.client import ClientError, StoryClient

    client = StoryClient(endpoint, api_key=api_key, timeout=timeout, max_retries=0,
                         connect_timeout=min(timeout, 2.0))
    try:
        return Served(endpoint, tuple((m.id, dict(m.storyteller)) for m in client.models()))
    except ClientError as error:
        return Served(endpoint, (), error.message)
    finally:
        client.close()


def served_name(entry: Entry, served: Served) -> str | None:
    """The name under which `served` serves this entry, if it does. A served model matches by
    name or path; where the endpoint says whether it is merged (storyteller's merged_from), a
    merged model matches only a model directory and an adapter only a run."""
    for name, meta in served.models:
        if name != entry.name and not _same_path(name, entry.path):
            continue
        if meta:
            merged = bool(meta.get("merged_from"))
            if merged != (entry.kind == MODEL):
                continue
            if merged and entry.merged_from and not _same_path(meta["merged_from"],
                                                               entry.merged_from):
                continue
        return name
    return None


def mark_served(entries: Sequence[Entry], served: Served) -> list[Entry]:
    marked = []
    for entry in entries:
        name = served_name(entry, served)
        marked.append(replace(entry, served=name is not None, served_as=name))
    return marked


def catalog(runs: Path = Path("runs"), models: Path = Path("models"), endpoint: str | None = None,
            api_key: str | None = None) -> tuple[list[Entry], Served | None]:
    """`scan`, and with an endpoint, which entries it serves now."""
    entries = scan(runs, models)
    if not endpoint:
        return entries, None
    served = served_models(endpoint, api_key)
    return mark_served(entries, served), served
