"""Preference tuning throughput: storyteller's DPO against TRL's DPOTrainer, side by side.

One invocation trains each contender on the same model, the same preference pairs, the same LoRA
settings, the same beta and the same number of pairs (one pair per optimizer step):

- storyteller: the real `storyteller finetune` code path (`load_config` + `run`) with
  objective dpo: the reference log-probabilities are computed once, before the first step;
- TRL default: `trl.DPOTrainer` with `DPOConfig` defaults (precompute_ref_log_probs=False: the
  reference forward, the adapter switched off, runs inside every step);
- TRL precompute: the same with precompute_ref_log_probs=True (TRL's own one-off reference pass).

The pairs: a preference directory (the curated preference format) built from a curated SFT
directory. For each pair, chosen = its story; rejected = a story of another style and similar
length from the same split (or, where none exists, the same story cut short). Deterministic for
a seed; pairs whose prompt + chosen or prompt + rejected do not fit max_length are left out
(rejects.jsonl), so no contender truncates or drops a pair the others train on.

Throughput is pair tokens (prompt + chosen and prompt + rejected, as the chat template tokenises
them, counted once by this script for every contender) over the seconds spent in optimizer steps:
no model loading, data preparation or reference precompute. The one-off reference pass is timed
on its own and shown beside it, and a second rate charges it to the run.

Every trained adapter is scored the same way on held-out pairs (the test split): the policy and
reference (adapter switched off) log-probabilities of each story, summed over its tokens, give
the DPO rewards beta x (policy - reference); reward accuracy is the share of pairs whose chosen
reward is higher, the margin the mean chosen - rejected reward.

    .venv/bin/python -m bench.preference [--model smollm2-135m] [--steps 32] [--pairs N]
        [--sft data/starter | --data PREFERENCE_DIR] [--only storyteller --only trl-default]
        [--write docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from bench.results import command_line, machine, replace_section

ROOT = Path(__file__).resolve().parents[1]

CONTENDERS = {"storyteller": "storyteller", "trl-default": "TRL default",
              "trl-precompute": "TRL precompute"}
SECTION = "## Preference tuning throughput"
NEAREST = 4  # rejected: drawn from this many other-style stories nearest in length
SPLITS = ("train", "val", "test")


# ---------------------------------------------------------------------------- the pairs (pure)

def prompt_group(prompt: list[dict[str, str]]) -> str:
    """The preference record's group: one prompt, one group, never in two splits."""
    return "p-" + hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()[:16]


def cut_short(text: str) -> str:
    """The first half of a story: whole paragraphs where it has several, else whole words."""
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    if len(paragraphs) >= 2:
        return "\n\n".join(paragraphs[:len(paragraphs) // 2])
    words = text.split()
    return " ".join(words[:max(1, len(words) // 2)])


def story_of(pair: dict[str, Any]) -> str:
    return pair["messages"][-1]["content"]


def pick_rejected(pair: dict[str, Any], pool: list[dict[str, Any]], seed: int) -> str:
    """The rejected story for one SFT pair: a story of another style from
    `pool` (other stories of the same split), among the NEAREST closest in length, drawn with a
    generator seeded by (seed, pair id) so the choice does not depend on the order of pairs;
    the same story cut short where no other-style story exists."""
    story, style = story_of(pair), (pair.get("controls") or {}).get("style")
    own = pair.get("story_id") or pair["group"]
    candidates = [c for c in pool if (c.get("story_id") or c["group"]) != own
                  and (c.get("controls") or {}).get("style") not in (None, style)]
    if not candidates:
        return cut_short(story)
    candidates.sort(key=lambda c: (abs(len(story_of(c)) - len(story)), c["id"]))
    other = random.Random(f"{seed}:{pair['id']}").choice(candidates[:NEAREST])
    return story_of(other)


def build_split(located: list[tuple[dict[str, Any], dict[str, Any]]], seed: int,
                check: Callable[[list[dict], list[dict]], tuple[str, str] | None] | None = None,
                taken: dict[str, str] | None = None, split: str = "train") -> tuple[list[dict], list[dict]]:
    """Preference records for one split of (source, SFT pair), and standard rejects.

    `check(prompt, completion)` returns None where prompt + completion can be trained on, else
    (reject reason, detail). `taken` maps groups already written to their split (a prompt seen in an
    earlier split is left out here, so a group never spans splits)."""
    taken = {} if taken is None else taken
    # One entry per story: augmented variants of a story repeat it under other prompts.
    pool = list({(p.get("story_id") or p["group"]): p for _, p in located}.values())
    records, rejects = [], []
    for source, pair in located:
        prompt = pair["messages"][:-1]
        reject = {"source": source["file"], "line": source["line"]}
        if not pair["messages"] or pair["messages"][-1].get("role") != "assistant" \
                or not prompt or prompt[-1].get("role") == "assistant":
            rejects.append({**reject, "reason": "malformed", "detail": "the last message is not "
                            "the assistant's story after a prompt"})
            continue
        group = prompt_group(prompt)
        if group in taken:
            rejects.append({**reject, "reason": "duplicate_exact",
                            "detail": f"the same prompt is in the {taken[group]} split"})
            continue
        chosen = [{"role": "assistant", "content": story_of(pair)}]
        other = [{"role": "assistant", "content": pick_rejected(pair, pool, seed)}]
        problem = check and (check(prompt, chosen) or check(prompt, other))
        if problem:
            rejects.append({**reject, "reason": problem[0], "detail": problem[1]})
            continue
        taken.setdefault(group, split)
        records.append({
            "id": f"{pair['id']}~pref", "group": group, "kind": "pair", "prompt": prompt,
            "chosen": chosen, "rejected": other, "controls": pair.get("controls") or {},
            "source": source, "judgement": "style check", "scores": None})
    return records, rejects


def choose(records: list[dict], count: int, seed: int) -> list[dict]:
    """`count` records drawn with the seed, kept in their order; all of them where count is 0
    or not below their number."""
    if not count or count >= len(records):
        return records
    keep = sorted(random.Random(seed).sample(range(len(records)), count))
    return [records[i] for i in keep]


def write_preference_dir(out: Path, splits: dict[str, list[dict]], rejects: list[dict],
                         inputs: list[dict], config: dict) -> Path:
    """The curated preference directory: splits, rejects.jsonl, manifest.json, report.md."""
    out.mkdir(parents=True, exist_ok=True)
    outputs = {}
    for name, rows in [*((f"{s}.jsonl", splits.get(s, [])) for s in SPLITS), ("rejects.jsonl", rejects)]:
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
        (out / name).write_bytes(data)
        outputs[name] = hashlib.sha256(data).hexdigest()
    counts = {s: {"pair": len(splits.get(s, [])), "unpaired": 0} for s in SPLITS}
    counts["rejected"] = dict(Counter(r["reason"] for r in rejects))
    how = Counter("cut short" if r["chosen"][0]["content"].startswith(r["rejected"][0]["content"])
                  else "another style" for rows in splits.values() for r in rows)
    report = ["# Preference pairs (bench.preference)", "",
              "chosen: the curated story; rejected: a story of another style and similar length "
              "from the same split, or the same story cut short.", "",
              *(f"- {s}: {counts[s]['pair']} pairs" for s in SPLITS),
              f"- rejected: {sum(counts['rejected'].values())} "
              f"({', '.join(f'{k} {v}' for k, v in counts['rejected'].items()) or 'none'})",
              f"- rejected stories: {how['another style']} of another style, "
              f"{how['cut short']} cut short", ""]
    (out / "report.md").write_text("\n".join(report), encoding="utf-8")
    (out / "manifest.json").write_text(json.dumps(
        {"kind": "preference", "inputs": inputs, "counts": counts, "outputs": outputs,
         "config": config, "made_by": "bench.preference"}, indent=1), encoding="utf-8")
    return out


def build_from_sft(sft: Path, out: Path, tokenizer, max_length: int, pairs: int, heldout: int,
                   seed: int) -> Path:
    """A preference directory from the curated SFT directory `sft` (see the module docstring):
    `pairs` train pairs, at most `heldout` validation and test pairs."""
    from storyteller.curated import iter_located_pairs, manifest_hash, split_files
    from storyteller.finetune.data import Example, tokenize_pair

    def check(prompt, completion):
        # One token short of max_length: TRL also feeds the newline its template puts after
        # the end of turn, and would cut the sequence where storyteller does not.
        example = tokenize_pair({"id": "-", "messages": prompt + completion}, tokenizer, max_length - 1)
        if isinstance(example, Example):
            return None
        if "max_length" in example.reason:
            return "too_many_tokens", f"{example.reason.split(',')[0]}, over {max_length - 1}"
        return "malformed", example.reason

    taken, splits, rejects = {}, {}, []
    for split in SPLITS:
        files = split_files(sft, split)
        located = [({"file": os.path.relpath(files[pos.file], ROOT) if files[pos.file].is_relative_to(ROOT)
                     else str(files[pos.file]), "line": pos.line}, pair)
                   for pos, pair in iter_located_pairs(sft, split)]
        records, bad = build_split(located, seed, check, taken, split)
        splits[split] = choose(records, pairs if split == "train" else heldout, seed)
        rejects += bad
    if len(splits["train"]) < pairs:
        sys.exit(f"{sft} gives {len(splits['train'])} train pairs that fit max_length {max_length}; "
                 f"asked for {pairs} (lower --pairs)")
    return write_preference_dir(
        out, splits, rejects,
        [{"path": str(sft), "manifest_sha256": manifest_hash(sft), "format": "curated"}],
        {"seed": seed, "pairs": pairs, "heldout": heldout, "max_length": max_length,
         "nearest": NEAREST})


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def read_records(directory: Path, split: str) -> list[dict]:
    return read_jsonl(Path(directory) / f"{split}.jsonl")


# ---------------------------------------------------------------------------- shared by workers

def example_of(record: dict, side: str, tokenizer, max_length: int):
    """prompt + one side as storyteller tokenises a story: prompt masked, the story and its
    end-of-turn token supervised."""
    from storyteller.finetune.data import Example, tokenize_pair

    example = tokenize_pair({"id": record["id"], "messages": record["prompt"] + record[side]},
                            tokenizer, max_length)
    if not isinstance(example, Example):
        raise SystemExit(f"held-out pair {record['id']} ({side}): {example.reason}")
    return example


def pair_tokens(records: list[dict], tokenizer, max_length: int) -> int:
    """Tokens of prompt + chosen and prompt + rejected over `records`: the work per pair that every
    contender is credited with."""
    return sum(len(example_of(r, side, tokenizer, max_length).input_ids)
               for r in records for side in ("chosen", "rejected"))


def sequence_logp(model, example) -> float:
    """The summed log-probability of the supervised tokens of one example (fp32, no autocast)."""
    import torch

    ids = torch.tensor([example.input_ids])
    labels = torch.tensor(example.labels[1:])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1].float()
    keep = labels != -100
    logps = torch.log_softmax(logits[keep], dim=-1)
    return float(logps.gather(1, labels[keep][:, None]).sum())


def dpo_scores(chosen, rejected, ref_chosen, ref_rejected, beta: float) -> dict[str, float]:
    """Reward accuracy, margin and sigmoid-DPO loss of summed log-probabilities (lists of
    floats), through storyteller's own pure DPO functions (TRL's formula and beta convention)."""
    import torch

    from storyteller.finetune.preference import dpo_loss, metrics

    tensors = (torch.tensor(v, dtype=torch.float64) for v in (chosen, rejected, ref_chosen, ref_rejected))
    out = dpo_loss(*tensors, beta)
    return {**metrics(out.stats), "dpo_loss": float(out.loss.mean())}


def heldout_scores(model, records: list[dict], tokenizer, max_length: int, beta: float) -> dict[str, float]:
    """DPO rewards of the held-out pairs for a PEFT model: the policy with its adapter, the
    reference with the adapter switched off; the same function for every contender."""
    model.eval()
    logps = {k: [] for k in ("chosen", "rejected", "ref_chosen", "ref_rejected")}
    for record in records:
        for side in ("chosen", "rejected"):
            example = example_of(record, side, tokenizer, max_length)
            logps[side].append(sequence_logp(model, example))
            with model.disable_adapter():
                logps[f"ref_{side}"].append(sequence_logp(model, example))
    return {**dpo_scores(logps["chosen"], logps["rejected"], logps["ref_chosen"],
                         logps["ref_rejected"], beta), "pairs": len(records)}


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30


def load_cfg(args, extra=()):
    """The storyteller config of the run: the LoRA and data settings of --config with objective
    dpo, beta, one pair per step and --steps steps."""
    from storyteller.config import load_config
    from storyteller.finetune.config import FinetuneConfig

    return load_config(FinetuneConfig, args.config, [
        f"model.base={args.model}", f"data.dir={args.data}", "objective=dpo",
        f"preference.beta={args.beta}", "train.batch_size=1", "train.grad_accum=1",
        f"train.max_steps={args.steps}", *([f"train.lr={args.lr}"] if args.lr else []), *extra])


# ---------------------------------------------------------------------------- workers

def storyteller_worker(args) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from storyteller.models import load_tokenizer, resolve_model
    from storyteller.finetune.run import run

    with tempfile.TemporaryDirectory() as out:
        cfg = load_cfg(args, [f"out={out}/run", "eval.every_steps=0", "eval.test_at_end=false",
                              "eval.patience=0", "log.plots=false", "log.tensorboard=false",
                              "checkpoint.every_steps=0", "checkpoint.keep_best=false"])
        result = run(cfg)
        peak = peak_gib()  # loading, reference pass and steps; not the scoring below
        summary = result.summary
        base = AutoModelForCausalLM.from_pretrained(resolve_model(cfg.model.base), dtype=torch.float32)
        model = PeftModel.from_pretrained(base, result.final)
        tokenizer = load_tokenizer(cfg.model.base)
        scores = heldout_scores(model, read_jsonl(args.heldout_file), tokenizer,
                                cfg.data.max_length, args.beta)
    # One item (pair) per step is one "supervised" unit: the run's exact step seconds (its
    # train_seconds is rounded to 0.1 s) are items / items per second.
    seconds = summary["supervised_tokens"] / summary["supervised_per_s"]
    return {"steps": summary["steps"], "seconds": seconds,
            "reference_seconds": summary["reference_seconds"], "run_tokens": summary["tokens"],
            "precision": summary["precision"], "lr": cfg.train.lr, "peak_gib": peak,
            "padding": 0, "heldout": scores,
            "settings": {"lr_schedule": cfg.train.schedule, "warmup_steps": cfg.train.warmup_steps,
                         "gradient_checkpointing": cfg.model.gradient_checkpointing},
            "summary": {k: v for k, v in summary.items() if isinstance(v, (int, float, str, type(None)))}}


def trl_worker(args, precompute: bool) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from storyteller.models import cpu_has_native_bf16, load_tokenizer, resolve_model

    cfg = load_cfg(args)
    train = read_records(args.data, "train")
    # TRL's conversational preference shape is the record's: prompt, chosen, rejected messages.
    dataset = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in train])
    cuda = torch.cuda.is_available()

    class Meter(TrainerCallback):
        """Times optimizer steps, counts what each step feeds the model, and times TRL's one-off
        reference pass (precompute_ref_log_probs)."""
        tokens = padding = 0
        seconds = reference_seconds = 0.0
        started = None

        def see(self, inputs):
            mask = inputs["attention_mask"]  # [chosen rows, rejected rows], padded to the longest
            self.tokens += int(mask.sum())
            self.padding += int((mask == 0).sum())

        def on_step_begin(self, args_, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args_, state, control, **kwargs):
            self.seconds += time.perf_counter() - self.started

    meter = Meter()

    class MeteredDPOTrainer(DPOTrainer):
        def training_step(self, model, inputs, *rest, **kwargs):
            meter.see(inputs)
            return super().training_step(model, inputs, *rest, **kwargs)

        def _precompute_ref_logps(self, *a, **kw):
            start = time.perf_counter()
            try:
                return super()._precompute_ref_logps(*a, **kw)
            finally:
                meter.reference_seconds += time.perf_counter() - start

    lora = cfg.lora
    with tempfile.TemporaryDirectory() as out:
        # What must change from DPOConfig's defaults to run here, and to see the same pairs.
        changed = {"output_dir": out, "report_to": "none", "save_strategy": "no", "seed": cfg.seed,
                   "max_length": cfg.data.max_length, "max_steps": args.steps,
                   "per_device_train_batch_size": 1, "disable_tqdm": True,
                   "beta": args.beta, "precompute_ref_log_probs": precompute}
        if args.trl_lr:
            changed["learning_rate"] = args.trl_lr
        if not cuda:
            changed["use_cpu"] = True
            if not cpu_has_native_bf16():
                changed["bf16"] = False  # TRL's default bf16 would be emulated here, ~100x slower
        model_path = str(resolve_model(cfg.model.base))
        trainer = MeteredDPOTrainer(
            model=model_path, args=DPOConfig(**changed), train_dataset=dataset, callbacks=[meter],
            peft_config=LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                   target_modules=lora.target_modules, task_type="CAUSAL_LM"))
        trainer.train()
        peak = peak_gib()
        tokenizer = load_tokenizer(cfg.model.base)  # the scorer's tokenizer, as for storyteller
        scores = heldout_scores(trainer.model, read_jsonl(args.heldout_file), tokenizer,
                                cfg.data.max_length, args.beta)
    targs = trainer.args
    return {"steps": trainer.state.global_step, "seconds": meter.seconds,
            "reference_seconds": meter.reference_seconds if precompute else None,
            "precision": "bf16" if targs.bf16 else "fp16" if targs.fp16 else "fp32",
            "lr": targs.learning_rate, "peak_gib": peak, "padding": meter.padding,
            "fed_tokens": meter.tokens, "heldout": scores,
            "settings": {k: v for k, v in changed.items() if k != "output_dir"},
            "defaults_kept": {"gradient_checkpointing": targs.gradient_checkpointing,
                              "lr_scheduler_type": getattr(targs.lr_scheduler_type, "value",
                                                           str(targs.lr_scheduler_type)),
                              "warmup_steps": targs.warmup_steps, "loss_type": list(targs.loss_type)}}


def worker(args) -> None:
    from storyteller.models import load_tokenizer

    result = storyteller_worker(args) if args.worker == "storyteller" else \
        trl_worker(args, precompute=args.worker == "trl-precompute")
    # Every contender is credited with the same work: the train pairs, once per epoch.
    train = read_records(args.data, "train")
    cfg = load_cfg(args)
    per_epoch = pair_tokens(train, load_tokenizer(cfg.model.base), cfg.data.max_length)
    result["pairs"] = result["steps"]  # one pair per optimizer step
    result["tokens"] = per_epoch * result["steps"] // len(train)
    if "run_tokens" in result and result["run_tokens"] != result["tokens"]:
        raise SystemExit(f"storyteller fed {result['run_tokens']} tokens, the bench counts "
                         f"{result['tokens']} for the same pairs: the two counts disagree")
    Path(args.result).write_text(json.dumps(result, indent=2))


# ---------------------------------------------------------------------------- the benchmark

def run_worker(name: str, args, tmp: Path) -> dict:
    result, log = tmp / f"{name}.json", tmp / f"{name}.log"
    command = [sys.executable, "-m", "bench.preference", "--worker", name, "--result", str(result),
               "--model", args.model, "--data", str(args.data), "--config", str(args.config),
               "--heldout-file", str(args.heldout_file), "--steps", str(args.steps),
               "--beta", str(args.beta)]
    command += ["--lr", str(args.lr)] if args.lr else []
    command += ["--trl-lr", str(args.trl_lr)] if args.trl_lr else []
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "STORYTELLER_QUIET": "1"}
    start = time.perf_counter()
    with log.open("w") as handle:
        code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                              check=False).returncode
    if code != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-40:])
        sys.exit(f"{name} failed (exit {code}); the end of its output:\n{tail}")
    data = json.loads(result.read_text())
    data["wall"] = time.perf_counter() - start
    return data


def shown(path: Path) -> str:
    path = Path(path)
    return os.path.relpath(path, ROOT) if path.is_relative_to(ROOT) else str(path)


def rates(r: dict) -> tuple[float, float]:
    """Pair tokens/s over the steps, and with the one-off reference pass charged to the run."""
    steps = r["tokens"] / r["seconds"] if r["seconds"] else float("nan")
    total = r["seconds"] + (r["reference_seconds"] or 0.0)
    return steps, (r["tokens"] / total if total else float("nan"))


def report(results: dict, args) -> str:
    step_rate = {n: rates(r)[0] for n, r in results.items()}
    run_rate = {n: rates(r)[1] for n, r in results.items()}
    ours = "storyteller" in results
    lines = ["| contender | pair tok/s (steps) | reference pass s | pair tok/s (with reference pass) "
             "| storyteller ÷ this | padding | peak RSS GiB | held-out reward acc | held-out margin "
             "| held-out DPO loss | lr | precision | steps | pair tokens | train s | wall s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for name, r in results.items():
        h = r["heldout"]
        ratio = f"{run_rate['storyteller'] / run_rate[name]:.2f}x" if ours else "-"
        ref = f"{r['reference_seconds']:.1f}" if r["reference_seconds"] is not None else "in every step"
        padding = r["padding"] / (r.get("fed_tokens", r["tokens"]) + r["padding"])
        lines.append(f"| {CONTENDERS[name]} | {step_rate[name]:,.1f} | {ref} | {run_rate[name]:,.1f} "
                     f"| {ratio} "
                     f"| {padding:.1%} | {r['peak_gib']:.2f} | {h['reward_accuracy']:.1%} "
                     f"| {h['reward_margin']:+.3f} | {h['dpo_loss']:.4f} | {r['lr']:g} | {r['precision']} "
                     f"| {r['steps']} | {r['tokens']:,} | {r['seconds']:.1f} | {r['wall']:.0f} |")
    lines += [""]
    if ours:
        for name in ("trl-default", "trl-precompute"):
            if name in results:
                x, xs = run_rate["storyteller"] / run_rate[name], step_rate["storyteller"] / step_rate[name]
                lines.append(f"- storyteller ÷ {CONTENDERS[name]}: {x:.2f}x with the reference pass, "
                             f"{xs:.2f}x over the steps alone")
        for name in ("trl-default", "trl-precompute"):
            if name in results:
                same_lr = abs(results[name]["lr"] - results["storyteller"]["lr"]) < 1e-12
                a, b = (results[n]["heldout"]["reward_accuracy"] for n in ("storyteller", name))
                lr_note = "same learning rate" if same_lr else \
                    "at different learning rates (each its own default; --lr / --trl-lr align them)"
                lines.append(f"- held-out reward accuracy, storyteller vs {CONTENDERS[name]}: {a:.1%} vs "
                             f"{b:.1%}, {lr_note}")
    trl = next((r for n, r in results.items() if n != "storyteller"), None)
    notes = [
        (f"Same model ({args.model}), pairs ({args.source}: {args.pairs} train pairs; held-out: "
         f"{results_heldout(results)} pairs of its test split), LoRA settings and seed (from "
         f"{shown(args.config)}), beta {args.beta}, "
         f"one pair per optimizer step, {args.steps} steps for all."),
        ("Pair tokens: prompt + chosen and prompt + rejected as storyteller tokenises them, counted "
         "by the bench for every contender (TRL also feeds the newline after each `<|im_end|>`). "
         "Train s: storyteller's step clock; TRL from on_step_begin to on_step_end. Reference pass: "
         "the one-off reference log-probabilities before the first step (storyteller always; TRL "
         "only with precompute_ref_log_probs=True, otherwise a no-grad reference forward with the "
         "adapter switched off runs inside every step). Wall s: the whole worker process."),
        ("Padding: TRL batches [chosen, rejected] as two rows padded to the longer; storyteller "
         "lays the sequences end to end."),
        ("Peak RSS: the worker's maximum resident memory when training ends (loading, reference "
         "pass, steps), before the held-out scoring."),
        ("Held-out: every adapter scored by the same function (summed story log-probabilities in "
         "fp32, reference = adapter off), on the test split's pairs."),
    ]
    if ours:
        st = results["storyteller"]["settings"]
        notes.append(f"storyteller: {shown(args.config)} through `storyteller.finetune.run.run` with "
                     f"objective=dpo, one pair per step, max_steps={args.steps}; evaluation, checkpoints, "
                     f"plots and tensorboard off (lr {results['storyteller']['lr']:g} {st['lr_schedule']}, "
                     f"{st['warmup_steps']} warmup steps, gradient checkpointing "
                     f"{'on' if st['gradient_checkpointing'] else 'off'}; the pair's two sequences end to "
                     f"end in one padding-free row).")
    if trl:
        settings = ", ".join(f"{k}={v}" for k, v in trl["settings"].items()
                             if k != "precompute_ref_log_probs")
        kept = trl["defaults_kept"]
        bf16 = (" bf16=False: this CPU has no native bf16 (AVX512-BF16/AMX); TRL's default bf16=True "
                "would run emulated bf16 autocast, about 100x slower than fp32."
                if trl["settings"].get("bf16") is False else "")
        notes.append(
            f"TRL: DPOConfig defaults (lr {trl['lr']:g} unless --trl-lr, {kept['lr_scheduler_type']} "
            f"schedule, {kept['warmup_steps']} warmup steps, gradient checkpointing "
            f"{'on' if kept['gradient_checkpointing'] else 'off'}, loss {'+'.join(kept['loss_type'])}, "
            f"sdpa attention) except {settings}: per_device_train_batch_size=1 so that both see one "
            f"pair per step, max_length as storyteller's, beta stated explicitly (the default)."
            f"{bf16}")
    lines += ["", "Notes:", "", *(f"- {note}" for note in notes)]
    return "\n".join(lines) + "\n"


def results_heldout(results: dict) -> int:
    return next(iter(results.values()))["heldout"]["pairs"] if results else 0


def describe_machine() -> str:
    from bench.matmul import cpu_flags

    return f"{machine()}, CPU flags {' '.join(cpu_flags()) or '-'}"


def write_section(path: Path, body: str, where: str) -> None:
    """Insert or replace the preference section of the benchmarks document."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT, check=False).stdout.strip() or "-"
    section = (
        f"{SECTION} (`bench/preference.py`)\n\n"
        "storyteller's DPO (`storyteller finetune` with objective dpo: reference log-probabilities "
        "computed once) against TRL's `DPOTrainer` (defaults: a reference forward in every step; "
        "and with precompute_ref_log_probs) on the same model, pairs, LoRA settings and beta, each "
        "in its own process; every adapter scored by the same held-out reward function.\n\n"
        f"```\n{command_line('bench.preference', *sys.argv[1:])}\n```\n\n"
        f"{datetime.date.today()}, commit {commit}, {where}:\n\n{body}")
    replace_section(path, SECTION, section)


def prepare_data(args, tmp: Path) -> None:
    """The pairs: the preference directory --data, or one built from --sft (curating the starter
    corpus first where no SFT directory is given and data/starter is absent). The contenders
    train on a copy holding its train split only (args.data), so that storyteller's reference
    pass, which covers every split it reads, does the same work as TRL's (the train split); the
    held-out pairs, its test split, go to args.heldout_file for the scoring."""
    from storyteller.curated import manifest_hash

    if args.data:
        manifest = args.data / "manifest.json"
        if not manifest.is_file() or json.loads(manifest.read_text()).get("kind") != "preference":
            sys.exit(f"--data {args.data}: not a preference directory (manifest.json with kind "
                     "'preference'); leave --data out to build one from --sft")
        pairs_dir, args.source = args.data, shown(args.data)
    else:
        from storyteller.models import load_tokenizer

        sft = args.sft
        if sft is None:
            sft = ROOT / "data" / "starter"
            if not (sft / "manifest.json").is_file():
                sft = tmp / "starter"
                print(f"curating corpora/starter into {sft} …", flush=True)
                done = subprocess.run(
                    [sys.executable, "-m", "storyteller.cli", "curate", str(ROOT / "corpora" / "starter"),
                     "--config", str(ROOT / "configs" / "curate" / "starter.yaml"), "--out", str(sft)],
                    cwd=ROOT, check=False)
                if done.returncode:
                    sys.exit("curating the starter corpus failed (see above)")
        elif not (sft / "manifest.json").is_file():
            sys.exit(f"--sft {sft}: not a curated data directory (no manifest.json); run "
                     f"storyteller curate corpora/starter --config configs/curate/starter.yaml --out {sft}")
        cfg = load_cfg(args)
        pairs_dir = build_from_sft(sft.resolve(), tmp / "pairs", load_tokenizer(args.model),
                                   cfg.data.max_length, args.pairs, args.heldout, cfg.seed)
        args.source = f"built from {shown(sft)} by this script"
    train = read_records(pairs_dir, "train")
    heldout = choose(read_records(pairs_dir, "test"), args.heldout, 0)
    if not heldout:
        sys.exit(f"{pairs_dir}: the test split is empty; the held-out scoring needs pairs there")
    args.pairs = len(train)
    args.heldout_file = tmp / "heldout.jsonl"
    args.heldout_file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in heldout),
                                 encoding="utf-8")
    args.data = write_preference_dir(
        tmp / "training", {"train": train}, [],
        [{"path": str(pairs_dir), "manifest_sha256": manifest_hash(pairs_dir), "format": "preference"}],
        {"split": "train only (the held-out pairs are scored by the bench, not read by the run)"})
    print(f"preference pairs ({args.source}): {len(train)} train, {len(heldout)} held out", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.preference",
        description="storyteller's DPO against TRL's DPOTrainer (defaults, and precomputed "
                    "reference): pair tokens/s, reference pass, peak memory, held-out rewards.",
        epilog="Example: .venv/bin/python -m bench.preference --model tiny-random --steps 3")
    parser.add_argument("--model", default="smollm2-135m",
                        help="model name (smollm2-135m, tiny-random), directory or hub id")
    parser.add_argument("--sft", type=Path, help="curated SFT directory to build the pairs from "
                        "(default data/starter, else the starter corpus curated into a temp dir)")
    parser.add_argument("--data", type=Path, help="an existing preference directory instead of --sft")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "finetune" / "quickstart.yaml",
                        help="storyteller finetune config; its LoRA, seed and data.max_length "
                             "apply to TRL too")
    parser.add_argument("--steps", type=int, default=32, help="optimizer steps, one pair each")
    parser.add_argument("--pairs", type=int, help="train pairs to build (default --steps: each seen once); "
                        "--steps must be a multiple")
    parser.add_argument("--heldout", type=int, default=0, help="at most this many validation and test "
                        "pairs (0: all)")
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--lr", type=float, help="storyteller's learning rate (default: --config's)")
    parser.add_argument("--trl-lr", type=float, help="TRL's learning rate (default: DPOConfig's)")
    parser.add_argument("--only", action="append", choices=list(CONTENDERS),
                        help="run only this contender (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--write", type=Path,
                        help=f"insert/replace the '{SECTION}' section of this Markdown file")
    parser.add_argument("--worker", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--heldout-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    args.config = args.config.resolve()
    if not args.config.is_file():
        sys.exit(f"--config {args.config}: not found")
    if args.data:
        args.data = args.data.resolve()
    args.pairs = args.pairs or args.steps
    if args.steps < 1 or args.steps % args.pairs:
        sys.exit(f"--steps {args.steps} must be a positive multiple of --pairs {args.pairs} (every "
                 "pair seen the same number of times by every contender)")
    chosen = [n for n in CONTENDERS if not args.only or n in args.only]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        prepare_data(args, Path(tmp))
        if args.steps % args.pairs:
            sys.exit(f"--steps {args.steps} is not a multiple of the {args.pairs} train pairs "
                     f"({args.source})")
        for index, name in enumerate(chosen, 1):
            print(f"[{index}/{len(chosen)}] {CONTENDERS[name]}: {args.steps} DPO steps of "
                  f"{args.model} …", flush=True)
            results[name] = r = run_worker(name, args, Path(tmp))
            step_rate, run_rate = rates(r)
            print(f"      {step_rate:,.1f} pair tokens/s over the steps, {run_rate:,.1f} with the reference "
                  f"pass; held-out reward accuracy {r['heldout']['reward_accuracy']:.1%} ({r['wall']:.0f} s)",
                  flush=True)
        body = report(results, args)
        data_dir = args.data
        if args.json:
            args.json.write_text(json.dumps({"machine": describe_machine(), "data": str(data_dir),
                                             "results": results}, indent=2))
    where = describe_machine()
    print(f"\n{datetime.date.today()}, {where}\n\n{body}")
    if args.write:
        write_section(args.write, body, where)
        print(f"wrote the '{SECTION}' section of {args.write}")


if __name__ == "__main__":
    main()
