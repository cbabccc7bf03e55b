"""`storyteller improve`: one command from a fine-tuned run to a better one, or a clear no.

    self-judged pairs (storyteller pairs) + the studio's preferences (library export)
      → preference tuning from the run (storyteller finetune, objective dpo/kto/…, --from RUN)
      → evaluation of new against old on the same test prompts (storyteller evaluate)
      → the verdict of decide.py → merge, verify and hand to the endpoint, only when accepted.

Every stage writes into OUT/ what its own command writes, so each can be read (and rerun) on its
own; a stage whose output is complete is skipped, so a killed `improve` continues where it
stopped when run again with the same options. OUT/improve.json records every stage and the
verdict with the numbers it rests on."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyteller import console
from storyteller.errors import InputError
from storyteller.files import write_atomic
from storyteller.improve.decide import Decision, decide

OBJECTIVES = ("dpo", "kto", "orpo", "simpo")


@dataclass
class ImproveOptions:
    run: Path  # the run (or merged model) to improve
    data: Path | None = None  # its curated SFT data; default: what the run was trained on
    out: Path | None = None  # default runs/<run name>-<objective>
    objective: str = "dpo"
    finetune_config: Path = Path("configs/finetune/preference.yaml")
    finetune_sets: list[str] = field(default_factory=list)
    samples: int = 4  # stories per prompt for the self-judged pairs
    # Train prompts sampled, house styles first: a few dozen pairs teach a style (the issue a
    # writer has), and every prompt of a corpus is hours of sampling on a CPU.
    prompts: int = 48
    max_tokens: int = 640  # longest sampled story: most starter stories end well before it
    pairs_sets: list[str] = field(default_factory=list)
    library: Path | None = None  # the studio library whose preferences join the pairs
    eval_limit: int = 0  # test prompts evaluated (0: all)
    eval_config: Path | None = Path("configs/evaluate/improve.yaml")
    eval_sets: list[str] = field(default_factory=list)  # --set overrides of the evaluation
    models: Path = Path("models")
    endpoint: str | None = None  # hand an accepted model to this endpoint (serve's admin route)
    api_key: str | None = None

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise InputError.at("--objective", f"{self.objective!r} is not a preference objective",
                                f"use one of {', '.join(OBJECTIVES)}")


@dataclass
class ImproveResult:
    out: Path
    decision: Decision
    model: Path | None  # the merged model, when accepted
    stages: dict[str, Any]


def trained_on(run: Path) -> Path:
    """The curated SFT data a run was trained on, as its run.json (or final/'s metadata) says."""
    for path, keys in ((run / "run.json", ("data", "dir")),
                       (run / "final" / "storyteller.json", ("data", "dir"))):
        try:
            value: Any = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str) and value:
            return Path(value)
    raise InputError.at(str(run), "does not say which curated data it was trained on",
                        "pass --data DIR, the curated directory of its training pairs")


def resolve(options: ImproveOptions) -> tuple[Path, Path, Path]:
    run = options.run
    if not (run / "final" / "COMPLETE").exists():
        raise InputError.at(str(run), "is not a finished run (no final/COMPLETE)",
                            "finish it with storyteller finetune --resume, or pass a run "
                            "directory written by storyteller finetune")
    data = options.data or trained_on(run)
    if not (data / "manifest.json").exists():
        raise InputError.at(str(data), "is not a curated data directory (no manifest.json)",
                            "pass --data, the directory storyteller curate wrote for the run")
    out = options.out or run.parent / f"{run.name}-{options.objective}"
    return run, data, out


def _complete(directory: Path, marker: str) -> bool:
    return (directory / marker).exists()


def self_judged_pairs(options: ImproveOptions, run: Path, data: Path, out: Path) -> Path:
    from storyteller.config import load_config
    from storyteller.selfjudge.config import PairsConfig
    from storyteller.selfjudge.run import run as make_pairs

    target = out / "pairs"
    if _complete(target, "manifest.json"):
        return target
    flags = {"model": ("--run", str(run)), "data": ("--data", str(data)),
             "out": ("--out", str(target)), "resume": ("--resume", target.exists()),
             "generation.samples": ("--samples", options.samples),
             "prompts": ("--prompts", options.prompts),
             "generation.max_tokens": ("--max-tokens", options.max_tokens or None)}
    make_pairs(load_config(PairsConfig, None, options.pairs_sets, flags))
    return target


def studio_preferences(options: ImproveOptions, out: Path) -> Path | None:
    """The library's pairs (stars, picks, edits) or thumbs as a file curate reads; None where
    there is no library or nothing in it to learn from."""
    from storyteller.studio.export import jsonl_bytes, library_records
    from storyteller.studio.library import StoryLibrary

    if options.library is None or not options.library.exists():
        return None
    with StoryLibrary(options.library) as lib:
        records = library_records(lib, "kto" if options.objective == "kto" else "preference")
    if not records:
        return None
    path = out / "studio-preferences.jsonl"
    write_atomic(path, jsonl_bytes(records))
    return path


def preference_data(pairs: Path, studio: Path | None, out: Path) -> Path:
    """The self-judged pairs as they are, or curated together with the studio's preferences
    (grouped by prompt again, so no prompt is in two splits)."""
    if studio is None:
        return pairs
    from storyteller.config import load_config
    from storyteller.curate.config import CurateConfig
    from storyteller.curate.preference_run import run as curate_preferences

    target = out / "preferences"
    if not _complete(target, "manifest.json"):
        inputs = [str(p) for p in sorted(pairs.glob("*.jsonl"))
                  if p.name in ("train.jsonl", "val.jsonl")] + [str(studio)]
        curate_preferences(inputs, target, load_config(CurateConfig), "style check")
    return target


def preference_tuning(options: ImproveOptions, run: Path, prefs: Path, out: Path) -> Path:
    from storyteller.config import load_config
    from storyteller.finetune.config import FinetuneConfig
    from storyteller.finetune.run import run as finetune

    target = out / "run"
    if _complete(target / "final", "COMPLETE"):
        return target
    cfg = load_config(FinetuneConfig, options.finetune_config, options.finetune_sets,
                      {"data.dir": ("--data", str(prefs)), "out": ("--out", str(target)),
                       "start_from": ("--run", str(run)),
                       "objective": ("--objective", options.objective),
                       "name": ("--out", target.parent.name)})
    finetune(cfg, resume=target.exists())
    return target


def evaluation(options: ImproveOptions, run: Path, tuned: Path, data: Path, out: Path
               ) -> dict[str, Any]:
    """New ("tuned") against old ("base") on the SFT data's test prompts, the same samples."""
    from storyteller.config import load_config
    from storyteller.evaluate.config import EvaluateConfig
    from storyteller.evaluate.run import run as evaluate

    target = out / "evaluation"
    if _complete(target, "metrics.json"):
        return json.loads((target / "metrics.json").read_text(encoding="utf-8"))
    config = options.eval_config if options.eval_config and options.eval_config.exists() else None
    cfg = load_config(EvaluateConfig, config, options.eval_sets,
                      {"model": ("--run", str(tuned)), "baseline": ("--run", str(run)),
                       "data": ("--data", str(data)), "out": ("--out", str(target)),
                       "limit": ("--eval-limit", options.eval_limit)})
    return evaluate(cfg).summary


def hand_over(options: ImproveOptions, tuned: Path, data: Path, name: str) -> Path:
    """Merge (verified on the SFT test prompts), then serve it where an endpoint is given."""
    from storyteller.merge import merge

    target = options.models / name
    if not _complete(target, "verification.json"):
        merge(str(tuned), target, data=data)
    if options.endpoint:
        from storyteller.client import load_model

        load_model(options.endpoint, name, str(target.resolve()), options.api_key)
    return target


def run(options: ImproveOptions) -> ImproveResult:
    run_dir, data, out = resolve(options)
    out.mkdir(parents=True, exist_ok=True)
    stages: dict[str, Any] = {"run": str(run_dir), "data": str(data),
                              "objective": options.objective}
    timer = time.perf_counter()

    def stage(name: str, value: Any) -> Any:
        nonlocal timer
        stages[name] = {"output": str(value) if isinstance(value, Path) else value,
                        "seconds": round(time.perf_counter() - timer, 1)}
        timer = time.perf_counter()
        write_atomic(out / "improve.json", (json.dumps(stages, indent=2) + "\n").encode())
        return value

    say = (lambda text: None) if console.quiet() else console.console.print
    say(f"improve {run_dir}: 1/4 self-judged pairs from its own stories")
    pairs = stage("pairs", self_judged_pairs(options, run_dir, data, out))
    studio = stage("studio", studio_preferences(options, out))
    prefs = stage("preferences", preference_data(pairs, studio, out))
    say(f"improve {run_dir}: 2/4 preference tuning ({options.objective}) from it")
    tuned = stage("finetune", preference_tuning(options, run_dir, prefs, out))
    say(f"improve {run_dir}: 3/4 evaluation, new against old")
    summary = evaluation(options, run_dir, tuned, data, out)
    decision = decide(summary)
    stage("evaluation", str(out / "evaluation"))
    stages["decision"] = decision.to_json()
    model = None
    if decision.accept:
        say(f"improve {run_dir}: 4/4 accepted ({decision.reason}); merging and handing over")
        model = stage("model", hand_over(options, tuned, data, out.name))
    else:
        say(f"improve {run_dir}: 4/4 not handed over: {decision.reason}")
        stage("model", None)
    say(console.table("improve: new against old", ["metric", "old", "new", "new − old", "verdict"],
                      [(f.label, _num(f.old), _num(f.new), _interval(f.difference), f.verdict)
                       for f in decision.findings]))
    return ImproveResult(out, decision, model, stages)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _interval(diff: dict[str, Any] | None) -> str:
    if not diff or not isinstance(diff.get("value"), (int, float)):
        return "-"
    return f"{diff['value']:+.3f} [{diff['low']:+.3f}, {diff['high']:+.3f}]"
