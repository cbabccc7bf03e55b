"""Which checkpoint each `eval.select` rule keeps, and how each kept checkpoint writes.

A finished (or still running) run directory holds its complete checkpoints (checkpoints/step-N/
with COMPLETE) and, in metrics.jsonl, the validation loss of every evaluation. For each complete
checkpoint this bench loads the run's model (its base and final/'s adapter, or final/ itself for
full fine-tuning), puts the checkpoint's trainable weights in, and runs the probe the training
loop runs (storyteller/finetune/probe.py: the same validation prompts, the run's eval.probe_*
settings, greedy by default, one CPU thread, judged by storyteller.judge). Then it replays each
rule (storyteller/finetune/selection.py) over those checkpoints in step order, as the loop would
have chosen had it probed at those steps: only among the checkpoints that still exist (a pruned
one cannot be probed), each ranked against the evaluations before it (for `mixed`, the lowest
validation loss so far counts every evaluation in metrics.jsonl, kept or not).

--export DIR writes each chosen checkpoint as DIR/step-N/: a copy of final/ whose weights are
the checkpoint's (saved by PeftModel.save_pretrained, or save_pretrained of the full model),
storyteller.json noting the step and the rules that chose it, COMPLETE written last, so
`storyteller evaluate --model DIR/step-N` evaluates exactly that checkpoint.

    .venv/bin/python -m bench.selection [RUN] [--data DIR] [--export DIR] [--json FILE]
        [--probe-tokens N] [--write docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.results import command_line, machine, replace_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Checkpoint selection (eval.select)"
# Keys of an evaluation record that are the probe's (the rest are the loss's and bookkeeping).
PROBE_KEYS = ("style_adherence", "stop_rate", "hollow_rate", "judge_score")


@dataclass
class RunInfo:
    run_dir: Path
    cfg: Any  # FinetuneConfig as config.yaml resolved it (probe settings possibly overridden)
    evaluations: dict[int, dict[str, Any]]  # step → the last eval record of metrics.jsonl
    checkpoints: list[Path]  # complete checkpoints, oldest first
    val_records: list[dict[str, Any]]
    data_dir: Path
    data_note: str | None  # why the probe prompts may not be the run's, or None


# ----------------------------------------------------------------------------- pure: the choice

def evaluations_of(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Each step's evaluation record; a resumed run that evaluated a step again keeps its last."""
    return {r["step"]: r for r in records if r.get("kind") == "eval" and "val_loss" in r}


def choose(select: str, rows: list[dict[str, Any]], evaluations: dict[int, dict[str, Any]],
           margin: float, min_delta: float) -> int | None:
    """The step rule `select` keeps among `rows` (one per checkpoint: step, val_loss and the
    probe's scores), replayed in step order as Loop.evaluate ranks: each row against the
    evaluations before it. None: no row can be chosen (no validation loss, or none in mixed's
    margin)."""
    from storyteller.finetune.selection import improves, rank

    best, best_step = None, None
    for row in sorted(rows, key=lambda r: r["step"]):
        if row.get("val_loss") is None:
            continue
        before = [e for step, e in sorted(evaluations.items()) if step < row["step"]]
        new = rank(select, row, before, margin)
        if improves(select, new, best, min_delta):
            best, best_step = new, row["step"]
    return best_step


def choices(rows: list[dict[str, Any]], evaluations: dict[int, dict[str, Any]], e) -> dict[str, int | None]:
    from storyteller.finetune.selection import SELECTIONS

    return {select: choose(select, rows, evaluations, e.select_margin, e.min_delta)
            for select in SELECTIONS}


def chosen_by(step: int, chosen: dict[str, int | None]) -> list[str]:
    return [select for select, s in chosen.items() if s == step]


# ------------------------------------------------------------------------------- the run's parts

def read_run(run_dir: Path, data: Path | None = None, overrides: dict[str, Any] | None = None) -> RunInfo:
    """The run's resolved config, evaluations, complete checkpoints and validation records."""
    from storyteller.config import load_config
    from storyteller.curated import manifest_hash, read_split
    from storyteller.errors import InputError
    from storyteller.finetune import checkpoint as ckpt
    from storyteller.finetune.config import FinetuneConfig
    from storyteller.finetune.logs import read_metrics

    if not (run_dir / "config.yaml").is_file():
        raise InputError.at(str(run_dir), "not a run directory (no config.yaml)",
                            "name a directory written by storyteller finetune")
    cfg = load_config(FinetuneConfig, run_dir / "config.yaml")
    if overrides:
        cfg = replace(cfg, eval=replace(cfg.eval, **overrides))
    found = ckpt.complete_checkpoints(run_dir / "checkpoints")
    if not found:
        raise InputError.at(str(run_dir / "checkpoints"), "no complete checkpoint",
                            "keep checkpoints (checkpoint.every_steps, keep_last, keep_best)")
    metrics = run_dir / "metrics.jsonl"
    evaluations = evaluations_of(read_metrics(metrics) if metrics.is_file() else [])
    data_dir = data or Path(cfg.data.dir)
    if cfg.preference_run:
        from storyteller.finetune.prefdata import read_preference_data

        val = read_preference_data(data_dir)[0].get("val", [])
    else:
        val = read_split(data_dir, "val")
    note = None
    trained_on = json.loads((run_dir / "run.json").read_text()).get("data", {}) \
        if (run_dir / "run.json").is_file() else {}
    if trained_on.get("manifest_sha256") and trained_on["manifest_sha256"] != manifest_hash(data_dir):
        note = (f"{data_dir} is not the data the run was trained on (its manifest differs from "
                "run.json's): the probe prompts may differ from those the run would have used")
    return RunInfo(run_dir, cfg, evaluations, found, val, data_dir, note)


def load_model(info: RunInfo):
    """(model, tokenizer, device, autocast): the run's model as training built it, in training
    precision, with final/'s adapter (trainable, so a checkpoint must cover every weight) or,
    where the run has no final/ yet, the adapter the run's config builds."""
    import torch

    from storyteller.finetune import prefrun
    from storyteller.finetune.model import apply_method, choose_precision, load_base
    from storyteller.models import load_tokenizer, resolve_model

    cfg, final = info.cfg, info.run_dir / "final"
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    precision = choose_precision(cfg.model.precision, device)
    if (final / "COMPLETE").exists():
        meta = json.loads((final / "storyteller.json").read_text())
        cfg = replace(cfg, model=replace(cfg.model, base=meta.get("base_model", cfg.model.base)))
        if (final / "adapter_config.json").exists():
            from peft import PeftModel

            base = load_base(cfg, resolve_model(cfg.model.base), precision, device)
            model = PeftModel.from_pretrained(base, final, is_trainable=True)
        else:  # full fine-tuning: final/ is the whole model, every weight trainable
            model = apply_method(load_base(cfg, final, precision, device), cfg)
    else:
        cfg, start = prefrun.start_from(cfg)
        model = prefrun.build_model(cfg, resolve_model(cfg.model.base), precision, device, start)
    if cfg.model.method != "qlora":
        model.to(device)
    autocast = (lambda: torch.autocast(device.type, dtype=precision.dtype)) \
        if precision.name != "fp32" else None
    return model, load_tokenizer(cfg.model.base), device, autocast


def put_checkpoint(model, path: Path) -> None:
    from storyteller.finetune.checkpoint import load_weights
    from storyteller.finetune.model import load_trainable_state

    load_trainable_state(model, load_weights(path))


def probe_checkpoints(info: RunInfo, model, tokenizer, autocast, say=print) -> list[dict[str, Any]]:
    """One row per complete checkpoint: its step, the validation loss metrics.jsonl has for it
    (None: no evaluation at that step), the probe's scores, what the run itself logged at that
    evaluation (`logged`, where it probed), and the stories."""
    from storyteller.errors import InputError
    from storyteller.finetune.checkpoint import PREFIX
    from storyteller.finetune.probe import Probe, probe_prompts

    e = info.cfg.eval
    prompts = probe_prompts(info.val_records, e.probe_styled, e.probe_plain, e.probe_seed)
    if not prompts:
        raise InputError.at(str(info.data_dir), "no whole-story validation prompt to probe with",
                            "pass --data with the curated directory the run was trained on")
    probe = Probe(model, tokenizer, prompts, e.probe_tokens, e.probe_temperature, autocast)
    rows = []
    for index, path in enumerate(info.checkpoints, 1):
        step = int(path.name[len(PREFIX):])
        put_checkpoint(model, path)
        scores, stories = probe(step)
        evaluation = info.evaluations.get(step, {})
        logged = {k: v for k, v in evaluation.items()
                  if k in PROBE_KEYS or k.startswith("adherence_")}
        rows.append({"step": step, "val_loss": evaluation.get("val_loss"), **scores,
                     "logged": logged or None, "stories": stories})
        say(f"[{index}/{len(info.checkpoints)}] step {step}: house style "
            f"{_rate(scores.get('style_adherence'))}, ended {_rate(scores.get('stop_rate'))}, "
            f"hollow {_rate(scores.get('hollow_rate'))} ({scores['probe_seconds']:.1f} s)")
    return rows


# ------------------------------------------------------------------------------------- export

def export(info: RunInfo, model, rows: list[dict[str, Any]], chosen: dict[str, int | None],
           out: Path) -> dict[int, Path]:
    """OUT/step-N/ for every chosen step: final/ with the checkpoint's weights (see the module
    docstring). Returns step → directory."""
    from storyteller.errors import InputError
    from storyteller.files import sha256_of
    from storyteller.finetune.checkpoint import COMPLETE, checkpoint_name

    final = info.run_dir / "final"
    if not (final / COMPLETE).exists():
        raise InputError.at(f"--export {out}", f"{final} is not complete: an export is a copy "
                            "of final/ (tokenizer, chat template, storyteller.json)",
                            f"finish the run (storyteller finetune --resume) first")
    by_step = {r["step"]: r for r in rows}
    written = {}
    out.mkdir(parents=True, exist_ok=True)
    for step in sorted({s for s in chosen.values() if s is not None}):
        source = info.run_dir / "checkpoints" / checkpoint_name(step)
        target = out / checkpoint_name(step)
        staging = out / f".staging-{target.name}"
        if staging.exists():
            shutil.rmtree(staging)
        shutil.copytree(final, staging)
        (staging / COMPLETE).unlink()
        put_checkpoint(model, source)
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            model.save_pretrained(tmp)
            # The weight files only: final/'s configs, tokenizer and card stay as they were.
            weights = [p for p in Path(tmp).iterdir()
                       if p.suffix == ".safetensors" or p.name.endswith(".safetensors.index.json")]
            for old in staging.iterdir():
                if old.suffix == ".safetensors" or old.name.endswith(".safetensors.index.json"):
                    old.unlink()
            for path in weights:
                shutil.copy2(path, staging / path.name)
        meta_path = staging / "storyteller.json"
        meta = json.loads(meta_path.read_text())
        row = by_step[step]
        rules = chosen_by(step, chosen)
        scores = {k: v for k, v in row.items() if k not in ("step", "val_loss", "logged", "stories")}
        meta["checkpoint"] = {"run": str(info.run_dir), "step": step, "chosen_by": rules,
                              "weights_sha256": sha256_of(source / "weights.safetensors"),
                              "val_loss": row["val_loss"], "probe": scores}
        # results described final/'s weights: say which step these are; the test loss measured
        # final/'s weights, not these.
        results = meta.setdefault("results", {})
        results.update({"final_from_step": step, "selected_by": rules[0],
                        "final_val_loss": row["val_loss"], "final_probe": scores,
                        "test_loss_tuned": None, "test_ppl_tuned": None})
        meta_path.write_text(json.dumps(meta, indent=2, default=str) + "\n")
        (staging / COMPLETE).write_text("ok\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        written[step] = target
    return written


# ------------------------------------------------------------------------------------- report

def _rate(value) -> str:
    return "-" if value is None else f"{value:.0%}"


def styles_of(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({k[len("adherence_"):] for r in rows for k in r if k.startswith("adherence_")})


def table(rows: list[dict[str, Any]], chosen: dict[str, int | None]) -> str:
    styles = styles_of(rows)
    head = ["step", "val loss", "house style", *styles, "ended", "hollow", "judge", "chosen by"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        loss = f"{r['val_loss']:.4f}" if r.get("val_loss") is not None else "- (not evaluated)"
        judge = f"{r['judge_score']:.3f}" if r.get("judge_score") is not None else "-"
        cells = [str(r["step"]), loss, _rate(r.get("style_adherence")),
                 *(_rate(r.get(f"adherence_{s}")) for s in styles), _rate(r.get("stop_rate")),
                 _rate(r.get("hollow_rate")), judge, ", ".join(chosen_by(r["step"], chosen)) or ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report(info: RunInfo, rows: list[dict[str, Any]], chosen: dict[str, int | None],
           prompts: int, exported: dict[int, Path] | None) -> str:
    e = info.cfg.eval
    kept = [r["step"] for r in rows]
    evaluated = sorted(info.evaluations)
    summary_path = info.run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    lines = [table(rows, chosen),
             f"Run {shown(info.run_dir)} (eval.select {e.select}; "
             + (f"final/ from step {summary.get('final_from_step')}, "
                f"selected by {summary.get('selected_by', e.select)}" if summary
                else "not finished") + "). "
             f"The rules choose among the {len(kept)} checkpoints kept (steps "
             f"{', '.join(map(str, kept))}) of the {len(evaluated)} evaluations in metrics.jsonl"
             + (f" (steps {', '.join(map(str, evaluated))})" if evaluated else "")
             + ": a pruned checkpoint cannot be probed, so a rule may have kept another step "
               "had the run probed at every evaluation. `mixed`'s margin "
               f"({e.select_margin:.0%}) is measured from the lowest validation loss of all "
               "evaluations up to each step.",
             "",
             f"Probe: {prompts} validation prompts of {shown(info.data_dir)} "
             f"(eval.probe_styled {e.probe_styled}, probe_plain {e.probe_plain}, probe_seed "
             f"{e.probe_seed}), {e.probe_tokens} tokens at most, "
             + ("greedy" if e.probe_temperature <= 0 else f"temperature {e.probe_temperature}")
             + "; house style, ended and hollow are shares of the probe's stories "
               "(storyteller.judge).",
             ""]
    if info.data_note:
        lines += [f"Note: {info.data_note}.", ""]
    steps = sorted({s for s in chosen.values() if s is not None})
    out = next(iter(exported.values())).parent if exported else Path("DIR")
    lines += ["Evaluate numbers of the chosen checkpoints (to add): export them, then evaluate "
              "each against the base:", "", "```",
              command_line("bench.selection", str(shown(info.run_dir)), "--export", str(out)),
              *(f"storyteller evaluate --model {out}/step-{s:06d} --data {shown(info.data_dir)} "
                f"--out {out}/step-{s:06d}-evaluation" for s in steps),
              "```", ""]
    return "\n".join(lines)


def shown(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def describe_machine() -> str:
    from bench.matmul import cpu_flags

    return f"{machine()}, CPU flags {' '.join(cpu_flags()) or '-'}"


def write_section(path: Path, body: str, where: str, seconds: float, argv: list[str]) -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT, check=False).stdout.strip() or "-"
    section = (
        f"{SECTION} (`bench/selection.py`)\n\n"
        "Each kept checkpoint of a run probed as the training loop probes (the same validation "
        "prompts, greedy, one CPU thread, storyteller.judge), and the checkpoint each "
        "`eval.select` rule keeps (docs/finetune.md, \"Choosing the checkpoint by what it "
        "writes\").\n\n"
        f"```\n{command_line('bench.selection', *argv)}\n```\n\n"
        f"{datetime.date.today()}, commit {commit}, {where}; {seconds:.0f} s in all:\n\n{body}")
    replace_section(path, SECTION, section)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.selection",
        description="Probe every kept checkpoint of a run as training does, and say which one "
                    "each eval.select rule keeps (loss, style, mixed).",
        epilog="Example: .venv/bin/python -m bench.selection runs/quickstart --export "
               "runs/quickstart/selected --write docs/BENCHMARKS.md")
    parser.add_argument("run", type=Path, nargs="?", default=Path("runs/quickstart"),
                        help="run directory with checkpoints/ and metrics.jsonl")
    parser.add_argument("--data", type=Path, help="curated directory whose validation split the "
                        "probe takes its prompts from (default: the run's data.dir)")
    parser.add_argument("--probe-tokens", type=int, help="story length (default: the run's "
                        "eval.probe_tokens); another length is not what the loop would have seen")
    parser.add_argument("--probe-styled", type=int, help="default: the run's eval.probe_styled")
    parser.add_argument("--probe-plain", type=int, help="default: the run's eval.probe_plain")
    parser.add_argument("--export", type=Path, help="write each chosen checkpoint as DIR/step-N/, "
                        "a model directory storyteller evaluate --model accepts")
    parser.add_argument("--json", type=Path, help="also write the rows, choices and stories here")
    parser.add_argument("--write", type=Path, help=f"insert/replace the '{SECTION}' section of "
                        "this Markdown file")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    for flag, value, least in (("--probe-tokens", args.probe_tokens, 1),
                               ("--probe-styled", args.probe_styled, 0),
                               ("--probe-plain", args.probe_plain, 0)):
        if value is not None and value < least:
            parser.error(f"{flag} {value}: must be at least {least}")
    from storyteller.errors import StorytellerError

    overrides = {k: v for k, v in (("probe_tokens", args.probe_tokens),
                                   ("probe_styled", args.probe_styled),
                                   ("probe_plain", args.probe_plain)) if v is not None}
    started = time.perf_counter()
    try:
        info = read_run(args.run, args.data, overrides)
        if info.data_note:
            print(f"warning: {info.data_note}", flush=True)
        print(f"loading {args.run}'s model; probing {len(info.checkpoints)} checkpoints …",
              flush=True)
        model, tokenizer, _, autocast = load_model(info)
        rows = probe_checkpoints(info, model, tokenizer, autocast,
                                 say=lambda text: print(text, flush=True))
        chosen = choices(rows, info.evaluations, info.cfg.eval)
        exported = export(info, model, rows, chosen, args.export) if args.export else None
    except StorytellerError as exc:
        sys.exit(f"error: {exc}")
    from storyteller.finetune.probe import probe_prompts

    e = info.cfg.eval
    prompts = len(probe_prompts(info.val_records, e.probe_styled, e.probe_plain, e.probe_seed))
    body = report(info, rows, chosen, prompts, exported)
    where = describe_machine()
    print(f"\n{datetime.date.today()}, {where}\n\n{body}")
    for select, step in chosen.items():
        print(f"{select}: step {step}" + (f" → {exported[step]}" if exported and step in exported
                                          else ""))
    if args.json:
        args.json.write_text(json.dumps({"run": str(args.run), "machine": where,
                                         "choices": chosen, "rows": rows}, indent=1, default=str))
    if args.write:
        write_section(args.write, body, where, time.perf_counter() - started, argv)
        print(f"wrote the '{SECTION}' section of {args.write}")


if __name__ == "__main__":
    main()
