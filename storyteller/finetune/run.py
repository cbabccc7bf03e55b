"""`storyteller finetune`: curated pairs → a run directory with checkpoints, logs and `final/`.

The only module of the stage that touches disk; it reads the curated directory, sets up the
model and the loop, and writes what the loop produces."""

from __future__ import annotations

import json
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from storyteller import console
from storyteller.config import to_dict
from storyteller.curated import (iter_located_pairs, iter_pairs, manifest_hash, read_data,
                                  read_split, split_files, split_label)
from storyteller.curated import read_pairs  # noqa: F401  (bench and tests import it from here)
from storyteller.errors import ConfigError, InputError, Problem
from storyteller.files import write_atomic
from storyteller.models import load_tokenizer, resolve_model
from storyteller.finetune import card, checkpoint as ckpt, prefrun
from storyteller.finetune.config import FinetuneConfig
from storyteller.finetune.data import Example, Rejection, pack_longest_first, tokenize_pairs
from storyteller.finetune.finish import describe_end, describe_start, write_final
from storyteller.finetune.progress import progress_bar
from storyteller.finetune.stream import StreamPlan

@dataclass
class FinetuneResult:
    run_dir: Path
    final: Path
    summary: dict[str, Any]


def run_dir_for(cfg: FinetuneConfig) -> Path:
    return Path(cfg.out.replace("{name}", cfg.name))


def select_pairs(pairs: list[dict[str, Any]], cfg: FinetuneConfig, limit: int) -> list[dict[str, Any]]:
    if cfg.data.kinds:
        pairs = [p for p in pairs if p.get("kind") in cfg.data.kinds]
    if limit and len(pairs) > limit:
        keep = sorted(np.random.default_rng(cfg.seed).permutation(len(pairs))[:limit].tolist())
        pairs = [pairs[i] for i in keep]
    return pairs


def make_packs(examples: list[Example], cfg: FinetuneConfig):
    """Longest first then first-fit: the fullest packs (least padding) for the data."""
    return pack_longest_first(examples, cfg.data.max_length, cfg.data.pack)


def fingerprint(cfg: FinetuneConfig, data_hash: str, world: int) -> dict[str, Any]:
    """Settings a resume must not change: the weights, data order or step size would differ."""
    return {"model.base": cfg.model.base, "model.method": cfg.model.method,
            "data.manifest_sha256": data_hash, "data.max_length": cfg.data.max_length,
            "data.pack": cfg.data.pack, "data.kinds": cfg.data.kinds,
            "data.max_train_pairs": cfg.data.max_train_pairs, "seed": cfg.seed,
            "lora.r": cfg.lora.r if cfg.adapter else None,
            "lora.target_modules": cfg.lora.target_modules if cfg.adapter else None,
            "lora.dora": cfg.lora.dora if cfg.adapter else None,
            "train.batch_size": cfg.train.batch_size, "train.grad_accum": cfg.train.grad_accum,
            "processes": world,
            # The best checkpoint is chosen by it; loss, the default, keeps the old fingerprint.
            **({"eval.select": cfg.eval.select} if cfg.eval.select != "loss" else {}),
            # Only when streaming, so that runs which hold their split whole keep the
            # fingerprint they always had (and stay resumable across this change).
            **({"data.streaming": True, "data.stream_buffer": cfg.data.stream_buffer}
               if cfg.data.streaming else {})}


def check_run_dir(run_dir: Path, resume: bool, current: dict[str, Any]) -> ckpt.Checkpoint | None:
    """The checkpoint to resume from, or None for a fresh start; refuses what would mix runs."""
    root = run_dir / "checkpoints"
    ckpt.clear_staging(root)
    found = ckpt.complete_checkpoints(root)
    if not resume:
        if found or (run_dir / "final").exists():
            raise InputError.at(str(run_dir), "this run directory already holds a run",
                                "pass --resume to continue it, or --out for a new run directory")
        return None
    if not found:
        return None
    latest = ckpt.load_checkpoint(found[-1])
    mismatches = ckpt.fingerprint_mismatches(latest.fingerprint, current)
    if mismatches:
        raise ConfigError(*[Problem(f"--resume {run_dir}", f"{m} since the run started",
                                    "resume with the same settings, or start a new run with --out")
                            for m in mismatches])
    return latest


def write_json_atomic(path: Path, data: Any) -> None:
    write_atomic(path, (json.dumps(data, indent=2, default=str) + "\n").encode())


def tokenize_splits(splits, cfg: FinetuneConfig, tokenizer):
    """Examples per split; pairs that cannot be trained on are reported by id."""
    examples: dict[str, list[Example]] = {}
    rejected: list[tuple[str, Rejection]] = []
    limits = {"train": cfg.data.max_train_pairs, "val": cfg.eval.max_pairs, "test": 0}
    for name, pairs in splits.items():
        chosen = select_pairs(pairs, cfg, limits[name])
        kept, bad = tokenize_pairs(chosen, tokenizer, cfg.data.max_length)
        examples[name] = kept
        rejected += [(name, r) for r in bad]
    if "train" in splits and not examples["train"]:  # a streamed train split is not here
        raise InputError.at(split_label(Path(cfg.data.dir), "train"),
                            "no training pair can be trained on",
                            f"first rejected: {rejected[0][1].id}: {rejected[0][1].reason}"
                            if rejected else "check data.kinds")
    return examples, rejected


def survey_train(data_dir: Path, cfg: FinetuneConfig) -> tuple[dict[str, int], dict[str, list[str]]]:
    """One pass over a streamed training split before the first step, in constant memory: every
    line is checked (a malformed one stops the run now, not hours into it), the pairs are
    counted, and the controls they carry gathered for storyteller.json as for a split held whole."""
    counts = {"pairs": 0, "selected": 0}

    def counted():
        for pair in iter_pairs(data_dir, "train"):
            counts["pairs"] += 1
            counts["selected"] += not cfg.data.kinds or pair.get("kind") in cfg.data.kinds
            yield pair

    seen = card.controls_seen(counted())
    where = split_label(data_dir, "train")
    if not counts["pairs"]:
        raise InputError.at(where, "no training pairs", "curate more stories, or check the curate report")
    if not counts["selected"]:
        raise InputError.at(where, "no training pair can be trained on", "check data.kinds")
    if cfg.data.max_train_pairs:
        counts["selected"] = min(counts["selected"], cfg.data.max_train_pairs)
    return counts, seen


def stream_plan(data_dir: Path, cfg: FinetuneConfig, tokenizer, world: int, main: bool) -> StreamPlan:
    """The plan of a streamed training split: its files read from any position, each buffer
    tokenised and packed exactly as a whole split is."""
    def prepare(pairs):
        examples, rejected = tokenize_pairs(pairs, tokenizer, cfg.data.max_length)
        return make_packs(examples, cfg), rejected

    met = [0]

    def warn(rejection: Rejection) -> None:
        # Met while training, so not listed in run.json: the first few, then one line.
        met[0] += 1
        if main and met[0] <= 5:
            console.console.print(f"[yellow]warning[/]: train pair {rejection.id} rejected: "
                                  f"{rejection.reason}")
        elif main and met[0] == 6:
            console.console.print("[yellow]warning[/]: more train pairs rejected (a streamed "
                                  "split's rejections are not all listed)")

    files = split_files(data_dir, "train")
    return StreamPlan(lambda start: iter_located_pairs(data_dir, "train", start), prepare,
                      cfg.train.batch_size, cfg.train.grad_accum, world, cfg.seed,
                      cfg.train.max_steps, cfg.data.stream_buffer, cfg.data.max_train_pairs,
                      cfg.data.kinds, [path.stat().st_size for path in files],
                      split_label(data_dir, "train"), warn)


def make_sampler(cfg: FinetuneConfig, accelerator, model, loss_model, tokenizer, val_packs):
    """The evaluation's sample story (samples.py), or None: no premise, no evaluation, not the
    main process, or FSDP (whose sharded weights only the whole group can run forward)."""
    from accelerate.utils import DistributedType

    from storyteller.finetune.samples import StorySampler

    if not cfg.eval.sample_prompt.strip() or not val_packs or not accelerator.is_main_process:
        return None
    if accelerator.distributed_type == DistributedType.FSDP:
        console.console.print("[yellow]note[/]: no sample stories under FSDP (eval.sample_prompt "
                              "is ignored); evaluate final/ to read what the model writes")
        return None
    return StorySampler(model, tokenizer, cfg.eval.sample_prompt.strip(), cfg.eval.sample_tokens,
                        accelerator.autocast, mode_of=loss_model)


def _sigterm_as_interrupt(signum, frame):
    raise KeyboardInterrupt


def run(cfg: FinetuneConfig, resume: bool = False) -> FinetuneResult:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import set_seed

    from storyteller.finetune.logs import MetricsLog, plot_metrics, plot_probe, read_metrics
    from storyteller.finetune.loop import Loop, evaluate_loss, make_optimizer
    from storyteller.finetune.model import (StoryLoss, add_neftune, choose_precision,
                                         count_parameters, load_trainable_state)
    from storyteller.finetune.plan import Plan
    from storyteller.finetune.probe import make_probe
    from storyteller.finetune.selection import selection_summary

    data_dir, run_dir = Path(cfg.data.dir), run_dir_for(cfg)
    cfg, start = prefrun.start_from(cfg)  # --from RUN: its base model and adapter
    survey = seen = provenance = None
    if cfg.preference_run:
        splits, data_hash, provenance = prefrun.read_data(cfg)
    elif cfg.data.streaming:
        # The training split is read as training goes (stream.py); validation and test are small.
        data_hash = manifest_hash(data_dir)
        splits = {"val": read_split(data_dir, "val"), "test": read_split(data_dir, "test")}
        survey, seen = survey_train(data_dir, cfg)
    else:
        splits, data_hash = read_data(data_dir)
    base_path = resolve_model(cfg.model.base)
    tokenizer = load_tokenizer(cfg.model.base)

    import torch

    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    precision = choose_precision(cfg.model.precision, device)
    if precision.name == "fp16" and device.type == "cpu":
        raise ConfigError.at("model.precision", "fp16 needs a GPU", "use auto, fp32 or bf16")
    mixed = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[precision.name]
    # The accelerator's settings are process-wide and refuse to change: a second run in the same
    # process (the bench, tests, a notebook) with another precision needs them started afresh.
    # The distributed state (processes, ranks) is kept.
    AcceleratorState._reset_state(reset_partial_state=False)
    # QLoRA's 4-bit layers compute in their own dtype; autocast on top would only add casts.
    accelerator = Accelerator(mixed_precision=mixed if cfg.model.method != "qlora" else "no",
                              cpu=device.type == "cpu")
    world, main = accelerator.num_processes, accelerator.is_main_process

    examples, rejected = (prefrun.tokenize_splits if cfg.preference_run else tokenize_splits)(
        splits, cfg, tokenizer)
    # A preference item (two whole sequences) is its own "pack".
    make = (lambda items, cfg: list(items)) if cfg.preference_run else make_packs
    if survey is not None:
        packs, plan = None, stream_plan(data_dir, cfg, tokenizer, world, main)
    else:
        packs = make(examples["train"], cfg)
        plan = Plan(tuple(packs), cfg.train.batch_size, cfg.train.grad_accum, world, cfg.seed,
                    cfg.train.epochs, cfg.train.max_steps)
    val_packs = make(examples["val"], cfg) if cfg.eval.every_steps or cfg.eval.patience else []
    test_packs = make_packs(examples["test"], cfg) if cfg.eval.test_at_end and \
        not cfg.preference_run else []
    current = {**fingerprint(cfg, data_hash, world), **prefrun.fingerprint_extra(cfg, start)}
    latest = check_run_dir(run_dir, resume, current)
    if latest is not None and (run_dir / "final" / ckpt.COMPLETE).exists():
        summary = json.loads((run_dir / "summary.json").read_text())
        console.console.print(f"{run_dir} is already complete; nothing to resume.")
        return FinetuneResult(run_dir, run_dir / "final", summary)

    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        resolved = to_dict(cfg)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
        write_json_atomic(run_dir / "run.json", {
            "name": cfg.name, "data": {"dir": str(data_dir), "manifest_sha256": data_hash},
            "base_model_path": str(base_path), "git": card.git_revision(),
            "environment": card.environment(accelerator.device),
            "precision": {"name": precision.name, "reason": precision.reason},
            "processes": world, "fingerprint": current,
            "pairs": {k: len(v) for k, v in examples.items()},
            "packs": {"train": len(packs) if packs is not None else None,
                      "padding_free": cfg.data.pack},
            **({"stream": {"files": [p.name for p in split_files(data_dir, "train")],
                           "pairs": survey["pairs"], "pairs_per_pass": survey["selected"],
                           "buffer": cfg.data.stream_buffer}} if survey is not None else {}),
            "rejected_pairs": [{"split": s, "id": r.id, "reason": r.reason} for s, r in rejected],
            "resumed_from": str(latest.path) if latest else None,
            "objective": cfg.objective, "from": start,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    if main:
        for split, rejection in rejected[:5]:
            console.console.print(f"[yellow]warning[/]: {split} pair {rejection.id} rejected: "
                                  f"{rejection.reason}")
        if len(rejected) > 5:
            console.console.print(f"[yellow]warning[/]: {len(rejected) - 5} more pairs rejected "
                                  f"(all listed in {run_dir / 'run.json'})")

    set_seed(cfg.seed)
    model = prefrun.build_model(cfg, base_path, precision, accelerator.device, start)
    if cfg.train.neftune_alpha:
        add_neftune(model, cfg.train.neftune_alpha)
    trainable, total = count_parameters(model)
    loss_model = prefrun.loss_model(model, cfg) if cfg.preference_run else StoryLoss(model)
    reference = prefrun.reference(cfg, run_dir, model, examples, accelerator, data_hash, start,
                                  precision.name, resume, main)
    optimizer, scheduler = make_optimizer(loss_model, cfg, plan.total_steps)
    loss_model, optimizer = accelerator.prepare(loss_model, optimizer)

    state = ckpt.TrainState()
    log = MetricsLog(run_dir, latest.state.step if latest else None, cfg.log.tensorboard) \
        if main else None
    loop = Loop(cfg, accelerator, model, loss_model, optimizer, scheduler, plan, val_packs,
                tokenizer.pad_token_id, run_dir, current, state, log,
                sampler=make_sampler(cfg, accelerator, model, loss_model, tokenizer, val_packs),
                probe=make_probe(cfg, accelerator, model, loss_model, tokenizer,
                                 splits.get("val", []) if val_packs else []),
                eval_extras=prefrun.eval_extras(loss_model, accelerator)
                if cfg.preference_run else None)
    if latest is not None:
        loop.restore(latest)
    elif test_packs:
        loop.state.base_test_loss, _ = evaluate_loss(loss_model, test_packs, cfg.eval.batch_size,
                                                     tokenizer.pad_token_id, accelerator, loop.packed)
    base_test = loop.state.base_test_loss

    describe_start(cfg, plan, precision, trainable, total, latest, world, main)
    previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        with progress_bar(plan.total_steps, loop.state.step, main) as on_step:
            loop.on_step = on_step
            loop.run()
    except KeyboardInterrupt:
        # The weights and optimizer are those of the last finished step: save them, then stop
        # (unless the interrupt fell inside an update; the previous checkpoint then stands).
        if not loop.updating:
            loop.optimizer.zero_grad(set_to_none=True)
            loop.save()
        if main:
            console.console.print(f"stopped after step {loop.state.step}; continue with the same "
                                  f"command and --resume (checkpoints in {run_dir / 'checkpoints'})")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        if log is not None:
            log.close()

    state = loop.state
    final_step = state.step
    if cfg.checkpoint.final_from_best and state.best_step is not None and \
            state.best_step != state.step:
        best = run_dir / "checkpoints" / ckpt.checkpoint_name(state.best_step)
        if best.exists():
            load_trainable_state(model, ckpt.load_weights(best))
            final_step = state.best_step
    tuned_test = None
    if test_packs:
        tuned_test, _ = evaluate_loss(loss_model, test_packs, cfg.eval.batch_size,
                                      tokenizer.pad_token_id, accelerator, loop.packed)
    summary = {
        "steps": state.step, "final_from_step": final_step, "stopped_early": state.stopped_early,
        "tokens": state.tokens, "supervised_tokens": state.supervised,
        "train_seconds": round(state.seconds, 1),
        "supervised_per_s": state.supervised / state.seconds if state.seconds else None,
        "precision": precision.name, "best_val_loss": state.best_loss, "best_step": state.best_step,
        "test_loss_base": base_test, "test_loss_tuned": tuned_test,
        "test_ppl_base": math.exp(base_test) if base_test is not None else None,
        "test_ppl_tuned": math.exp(tuned_test) if tuned_test is not None else None,
        "trainable_parameters": trainable, "parameters": total,
        **selection_summary(cfg.eval.select, cfg.checkpoint.final_from_best, state.best_step,
                            final_step, state.history),
    }
    if cfg.preference_run:
        summary.update(prefrun.summary_extra(read_metrics(run_dir / "metrics.jsonl"), reference),
                       **(prefrun.test_results(loss_model, examples["test"], cfg, accelerator)
                          if cfg.eval.test_at_end else {}))
    final = run_dir / "final"
    if main:
        if survey is None:
            seen = card.controls_seen(splits["train"])
        train_pairs = len(examples["train"]) if survey is None else survey["selected"]
        meta = card.model_metadata(
            cfg, base_path, seen,
            {"dir": str(data_dir), "manifest_sha256": data_hash, "train_pairs": train_pairs},
            summary)
        meta.update(prefrun.metadata_extra(cfg, start, provenance))
        write_final(final, accelerator.unwrap_model(loss_model).model, tokenizer, meta,
                    card.model_card(cfg, meta))
        write_json_atomic(run_dir / "summary.json", summary)
        if cfg.log.plots:
            plot_metrics(read_metrics(run_dir / "metrics.jsonl"), run_dir / "plots")
            plot_probe(read_metrics(run_dir / "metrics.jsonl"), run_dir / "plots", final_step)
        describe_end(summary, run_dir)
    accelerator.wait_for_everyone()
    return FinetuneResult(run_dir, final, summary)
