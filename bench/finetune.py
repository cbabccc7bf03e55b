"""Fine-tuning throughput: storyteller's trainer against TRL's SFTTrainer, side by side.

One invocation trains three contenders on the same model, the same curated pairs, the same LoRA
settings and (to within one optimizer step) the same number of supervised story tokens:

- storyteller: the real `storyteller finetune` code path (`load_config` + `run`) with the
  config given (quickstart: padding-free packed rows of up to data.max_length tokens, batch 1);
- TRL default: `trl.SFTTrainer` with `SFTConfig` defaults, on the pairs as conversational
  prompt-completion records (so TRL's completion-only loss supervises the story, as we do);
- TRL packing: the same with `packing=True` (TRL's default strategy, best-fit decreasing, which
  turns on padding-free batches).

Each contender runs in its own process (peak memory per contender), and every trained adapter
is scored the same way: mean story-token cross-entropy on the test split with storyteller's
evaluator (`StoryLoss` + `evaluate_loss`).

Throughput is supervised tokens / seconds spent in optimizer steps (no model loading, data
preparation or evaluation). MFU uses model FLOPs (no recomputation counted) over the real,
non-padding tokens, per token:

    4 * N_frozen + 6 * N_lora + 4 * V * d * (logit tokens / tokens) + 6 * layers * d_attn * L

N_frozen: the frozen weight matrices of the transformer blocks (forward 2N, backward only the
input gradients, 2N); N_lora: the adapter weights (forward 2N, backward input and weight
gradients, 4N); the output layer (frozen: 2Vd forward + 2Vd backward) only on the positions
that get logits (storyteller: supervised positions; TRL: every position on CPU, supervised ones
on CUDA); attention scores and values 4 * d_attn * L per token and layer for a pair of L tokens,
halved for causality, times 3 for the backward. Norms, activations and the optimizer are left out.
MFU is shown against this machine's measured bf16 and fp32 matmul peaks (bench/matmul.py).

    .venv/bin/python -m bench.finetune [--model smollm2-135m] [--supervised-tokens 12000]
        [--only storyteller --only trl-packing] [--write docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import nullcontext
from itertools import pairwise
from pathlib import Path

from bench.results import command_line, replace_section

ROOT = Path(__file__).resolve().parents[1]

CONTENDERS = {"storyteller": "storyteller", "trl-default": "TRL default", "trl-packing": "TRL packing"}
TARGETS = "≥ 2.0x TRL-default and ≥ 1.2x TRL-packing throughput, padding < 5%, held-out loss no " \
          "worse than TRL's, MFU ≥ 35%"


# ---------------------------------------------------------------------------- shared by workers

def load_cfg(args, extra=()):
    from storyteller.config import load_config
    from storyteller.finetune.config import FinetuneConfig

    return load_config(FinetuneConfig, args.config,
                       [f"model.base={args.model}", f"data.dir={args.data}", *extra])


def flop_shape(model) -> dict:
    """What the FLOP estimate needs, read off the (adapter-wrapped) model."""
    from storyteller.finetune.model import causal_lm

    config = causal_lm(model).config
    # By name, not requires_grad: an adapter loaded for evaluation is frozen too.
    params = dict(model.named_parameters())
    lora = sum(p.numel() for name, p in params.items() if "lora_" in name)
    frozen = sum(p.numel() for name, p in params.items() if p.ndim == 2 and
                 not any(part in name for part in ("lora_", "embed", "lm_head")))
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return {"frozen": frozen, "lora": lora, "vocab": config.vocab_size, "hidden": config.hidden_size,
            "layers": config.num_hidden_layers, "d_attn": config.num_attention_heads * head_dim}


def model_flops(shape: dict, tokens: int, logit_tokens: int, attention_sq: int) -> float:
    """Training FLOPs (see the module docstring); `attention_sq` is the sum of squared pair lengths."""
    return ((4 * shape["frozen"] + 6 * shape["lora"]) * tokens
            + 4 * shape["vocab"] * shape["hidden"] * logit_tokens
            + 6 * shape["layers"] * shape["d_attn"] * attention_sq)


class SingleProcess:
    """The little of an accelerate.Accelerator that `evaluate_loss` uses, so evaluation does not
    depend on (or clash with) the accelerator state the trainer left behind."""
    process_index, num_processes = 0, 1

    def __init__(self, device, dtype):
        self.device, self.dtype = device, dtype

    def autocast(self):
        import torch

        return torch.autocast(self.device.type, dtype=self.dtype) if self.dtype else nullcontext()


def heldout_loss(model, cfg) -> float:
    """Mean story-token loss on the test split, exactly as `storyteller finetune` scores it:
    padding-free packs through storyteller's packed attention."""
    from storyteller.models import load_tokenizer
    from storyteller.finetune.attention import register
    from storyteller.finetune.data import tokenize_pairs
    from storyteller.finetune.loop import evaluate_loss
    from storyteller.finetune.model import StoryLoss, causal_lm, choose_precision
    from storyteller.finetune.run import make_packs, read_data, select_pairs

    tokenizer = load_tokenizer(cfg.model.base)
    pairs = select_pairs(read_data(Path(cfg.data.dir))[0]["test"], cfg, 0)
    examples, _ = tokenize_pairs(pairs, tokenizer, cfg.data.max_length)
    device = next(model.parameters()).device
    causal_lm(model).set_attn_implementation(register())  # TRL trained with sdpa; same weights
    precision = choose_precision(cfg.model.precision, device)
    dtype = None if precision.name == "fp32" else precision.dtype
    loss, _ = evaluate_loss(StoryLoss(model), make_packs(examples, cfg), cfg.eval.batch_size,
                            tokenizer.pad_token_id, SingleProcess(device, dtype), packed=True)
    return loss


# ---------------------------------------------------------------------------- workers

def storyteller_worker(args) -> dict:
    import torch
    from peft import PeftModel

    from storyteller.models import load_tokenizer, resolve_model
    from storyteller.finetune.model import choose_precision, load_base
    from storyteller.finetune.plan import Plan
    from storyteller.finetune.run import make_packs, read_data, run, tokenize_splits

    cfg = load_cfg(args)
    # The Plan the run will build: enough steps to reach the budget, and what each step processes.
    examples, _ = tokenize_splits(read_data(Path(cfg.data.dir))[0], cfg, load_tokenizer(cfg.model.base))
    plan = Plan(tuple(make_packs(examples["train"], cfg)), cfg.train.batch_size, cfg.train.grad_accum,
                1, cfg.seed, cfg.train.epochs, 0)
    steps = supervised = tokens = logits = attention_sq = padding = 0
    while supervised < args.supervised_tokens:
        for batch in plan.step_micro_batches(steps):
            packs = [plan.packs[i] for i in batch]
            lengths = [len(p) for p in packs]
            tokens += sum(lengths)
            logits += sum(p.supervised for p in packs)  # StoryLoss scores supervised positions only
            attention_sq += sum(n * n for p in packs for n in Counter(p.segments).values())
            if cfg.model.attention != "packed":  # padded rows otherwise
                padding += max(lengths) * len(lengths) - sum(lengths)
        supervised += plan.step_supervised(steps)
        steps += 1
    with tempfile.TemporaryDirectory() as out:
        cfg = load_cfg(args, [f"out={out}/run", "eval.every_steps=0", "eval.test_at_end=false",
                              "log.plots=false", "log.tensorboard=false", "checkpoint.every_steps=0",
                              "checkpoint.keep_best=false", f"train.max_steps={steps}"])
        result = run(cfg)
        summary = result.summary
        assert summary["supervised_tokens"] == supervised and summary["tokens"] == tokens, summary
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        base = load_base(cfg, resolve_model(cfg.model.base), choose_precision(cfg.model.precision, device),
                         device).to(device)
        model = PeftModel.from_pretrained(base, result.final)
        loss = heldout_loss(model, cfg)
        base_loss = None
        if args.base_loss:
            with model.disable_adapter():
                base_loss = heldout_loss(model, cfg)
    return {"supervised": supervised, "tokens": tokens, "padding": padding, "steps": steps,
            # summary's train_seconds is rounded to 0.1 s; supervised_per_s is not
            "seconds": supervised / summary["supervised_per_s"], "precision": summary["precision"],
            "flops": model_flops(flop_shape(model), tokens, logits, attention_sq),
            "loss": loss, "base_loss": base_loss}


def trl_worker(args, packing: bool) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from storyteller.models import resolve_model
    from storyteller.models import cpu_has_native_bf16
    from storyteller.finetune.run import read_data, select_pairs

    cfg = load_cfg(args)
    pairs = select_pairs(read_data(Path(cfg.data.dir))[0]["train"], cfg, cfg.data.max_train_pairs)
    # Conversational prompt-completion: TRL's default completion_only_loss then supervises the story.
    dataset = Dataset.from_list([{"prompt": p["messages"][:-1], "completion": p["messages"][-1:]}
                                 for p in pairs])
    cuda = torch.cuda.is_available()

    class Meter(TrainerCallback):
        """Counts what each micro-batch feeds the model, times optimizer steps, stops at the budget."""
        supervised = tokens = padding = logits = attention_sq = 0
        seconds, started = 0.0, None

        def see(self, inputs):
            labels = inputs["labels"]
            supervised = int((labels[:, 1:] != -100).sum())  # the model predicts token t+1 at t
            if "attention_mask" in inputs:  # padded rows, one pair each
                mask = inputs["attention_mask"]
                lengths = mask.sum(1).tolist()
                self.padding += int((mask == 0).sum())
            else:  # padding-free: one row, pairs delimited by cu_seq_lens_q
                bounds = inputs["cu_seq_lens_q"].tolist()
                lengths = [b - a for a, b in pairwise(bounds)]
                self.padding += labels.numel() - sum(lengths)
            self.supervised += supervised
            self.tokens += sum(lengths)
            self.attention_sq += sum(n * n for n in lengths)
            # TRL's fused LM head scores only supervised positions on CUDA/XPU, every position elsewhere
            self.logits += supervised if cuda else sum(lengths) - labels.shape[0]

        def on_step_begin(self, args_, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args_, state, control, **kwargs):
            self.seconds += time.perf_counter() - self.started
            if self.supervised >= args.supervised_tokens:
                control.should_training_stop = True

    meter = Meter()

    class MeteredSFTTrainer(SFTTrainer):
        def training_step(self, model, inputs, *rest, **kwargs):
            meter.see(inputs)
            return super().training_step(model, inputs, *rest, **kwargs)

    with tempfile.TemporaryDirectory() as out:
        changed = {"output_dir": out, "report_to": "none", "save_strategy": "no", "seed": cfg.seed,
                   "max_length": cfg.data.max_length, "packing": packing, "disable_tqdm": True,
                   # far more than the budget needs: the Meter stops training
                   "num_train_epochs": 1000}
        if not cuda:
            changed["use_cpu"] = True
            if not cpu_has_native_bf16():
                changed["bf16"] = False  # TRL's default bf16 would be emulated here, ~100x slower
        lora = cfg.lora
        trainer = MeteredSFTTrainer(
            model=str(resolve_model(cfg.model.base)), args=SFTConfig(**changed), train_dataset=dataset,
            callbacks=[meter],
            peft_config=LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                   target_modules=lora.target_modules, task_type="CAUSAL_LM"))
        trainer.train()
        model = trainer.model
        loss = heldout_loss(model, cfg)
        base_loss = None
        if args.base_loss:
            with model.disable_adapter():
                base_loss = heldout_loss(model, cfg)
    return {"supervised": meter.supervised, "tokens": meter.tokens, "padding": meter.padding,
            "steps": trainer.state.global_step, "seconds": meter.seconds,
            "precision": "bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else "fp32",
            "flops": model_flops(flop_shape(model), meter.tokens, meter.logits, meter.attention_sq),
            "loss": loss, "base_loss": base_loss,
            "settings": {k: v for k, v in changed.items() if k != "output_dir"}}


def worker(args) -> None:
    result = storyteller_worker(args) if args.worker == "storyteller" else \
        trl_worker(args, packing=args.worker == "trl-packing")
    result["peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30
    Path(args.result).write_text(json.dumps(result, indent=2))


# ---------------------------------------------------------------------------- the benchmark

def measure_peaks() -> tuple[float, float, str]:
    """fp32 and bf16 matmul GFLOP/s of the device the contenders train on, and a description."""
    import torch

    if torch.cuda.is_available():
        def peak(dtype, size=8192, runs=20):
            a, b = (torch.randn(size, size, device="cuda", dtype=dtype) for _ in range(2))
            a @ b
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(runs):
                a @ b
            torch.cuda.synchronize()
            return 2 * size**3 * runs / (time.perf_counter() - start) / 1e9
        return peak(torch.float32), peak(torch.bfloat16), torch.cuda.get_device_name()
    from bench.matmul import cpu_flags, peak_gflops

    what = (f"{platform.node() or 'this machine'} ({os.cpu_count()} cores, flags "
            f"{' '.join(cpu_flags()) or '-'}), torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")
    return peak_gflops(torch.float32, 2048), peak_gflops(torch.bfloat16, 512, seconds=1.0), what


def run_worker(name: str, args, tmp: Path, base_loss: bool) -> dict:
    result, log = tmp / f"{name}.json", tmp / f"{name}.log"
    # This module again in a fresh interpreter, from the same working directory (the root).
    command = [sys.executable, "-m", "bench.finetune", "--worker", name, "--result", str(result),
               "--model", args.model, "--data", str(args.data),
               "--config", str(args.config), "--supervised-tokens", str(args.supervised_tokens)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    with log.open("w") as handle:
        code = subprocess.run(command + (["--base-loss"] if base_loss else []), stdout=handle,
                              stderr=subprocess.STDOUT, env=env, check=False).returncode
    if code != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-40:])
        sys.exit(f"{name} failed (exit {code}); the end of its output:\n{tail}")
    data = json.loads(result.read_text())
    data["wall"] = time.perf_counter() - start
    return data


def shown(path: Path) -> str:
    return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)


def report(results: dict, peaks: tuple[float, float, str], args) -> str:
    fp32, bf16, _ = peaks
    ours = results.get("storyteller")
    rate = {n: r["supervised"] / r["seconds"] for n, r in results.items()}
    header = ("| contender | supervised tok/s | storyteller ÷ this | padding | peak GiB | held-out loss "
              "| MFU (bf16 peak) | MFU (fp32 peak) | precision | steps | supervised tokens | train s | wall s |")
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for name, r in results.items():
        r["padding_share"] = r["padding"] / (r["tokens"] + r["padding"])
        r["mfu_bf16"], r["mfu_fp32"] = (r["flops"] / r["seconds"] / (peak * 1e9) for peak in (bf16, fp32))
        ratio = f"{rate['storyteller'] / rate[name]:.2f}x" if ours else "-"
        lines.append(f"| {CONTENDERS[name]} | {rate[name]:,.1f} | {ratio} | {r['padding_share']:.1%} "
                     f"| {r['peak_gib']:.2f} | {r['loss']:.4f} | {r['mfu_bf16']:.1%} | {r['mfu_fp32']:.1%} "
                     f"| {r['precision']} | {r['steps']} | {r['supervised']:,} | {r['seconds']:.1f} "
                     f"| {r['wall']:.0f} |")
    base = next((r["base_loss"] for r in results.values() if r.get("base_loss") is not None), None)
    if base is not None:
        lines += ["", f"Base model held-out loss (before training): {base:.4f}."]
    lines += ["", f"Matmul peaks measured now: fp32 {fp32:.1f} GFLOP/s, bf16 {bf16:.1f} GFLOP/s.", "",
              f"Targets ({TARGETS}):", ""]
    met = lambda ok: "met" if ok else "NOT met"
    if ours:
        for name, floor in (("trl-default", 2.0), ("trl-packing", 1.2)):
            if name in results:
                x = rate["storyteller"] / rate[name]
                lines.append(f"- throughput ≥ {floor}x {CONTENDERS[name]}: {x:.2f}x, {met(x >= floor)}")
        lines.append(f"- padding < 5%: {ours['padding_share']:.1%}, {met(ours['padding_share'] < 0.05)}")
        for name in ("trl-default", "trl-packing"):
            if name in results:
                d = ours["loss"] - results[name]["loss"]
                lines.append(f"- held-out loss no worse than {CONTENDERS[name]}: {ours['loss']:.4f} vs "
                             f"{results[name]['loss']:.4f} ({d:+.4f}), {met(d <= 0)}")
        emulated = " (meaningless here: bf16 is emulated, its peak is below fp32's)" if bf16 < fp32 else ""
        lines.append(f"- MFU ≥ 35%: {ours['mfu_bf16']:.1%} of the bf16 peak, {met(ours['mfu_bf16'] >= 0.35)}"
                     f"{emulated}; {ours['mfu_fp32']:.1%} of the fp32 peak, {met(ours['mfu_fp32'] >= 0.35)}")
    settings = next((r["settings"] for r in results.values() if "settings" in r), {})
    trl_changes = ", ".join(f"{k}={v}" for k, v in settings.items() if k != "packing")
    bf16_note = (" bf16=False: this CPU has no native bf16 (AVX512-BF16/AMX); TRL's default bf16=True "
                 "would run emulated bf16 autocast, about 100x slower than fp32."
                 if settings.get("bf16") is False else "")
    notes = [
        (f"Same model ({args.model}), pairs ({shown(args.data)}), LoRA settings and seed (from "
         f"{shown(args.config)}) and budget ({args.supervised_tokens:,} supervised tokens) for all; "
         "each stops at the first optimizer step that reaches the budget, so steps overshoot it by up "
         "to one batch (TRL's default batch is 8 pairs, or 8 packs with packing)."),
        ("storyteller: the config as written through `storyteller.finetune.run.run`, with evaluation, "
         "checkpoints, plots and tensorboard off and train.max_steps set to reach the budget."),
        (f"TRL default: SFTConfig defaults (batch 8, lr 2e-5 linear, no warmup, gradient "
         f"checkpointing on, sdpa attention) except {trl_changes or '-'}. A callback stops at the "
         f"budget, so the lr stays near 2e-5.{bf16_note}"),
        ("TRL packing: the same with packing=True (best-fit decreasing, padding-free: a batch's 8 "
         "packs end to end in one row). Without flash attention, transformers turns the restarting "
         "position_ids into a dense block-diagonal causal mask for sdpa: pairs stay isolated, but "
         "attention costs (row length)² instead of Σ(pair length)²."),
        ("Train s: storyteller's own step clock (batch building, forward, backward, optimizer); TRL "
         "from on_step_begin to on_step_end (its data loading and logging left out). Wall s: the "
         "whole worker process, with loading and evaluation."),
        ("Held-out loss: each adapter scored by storyteller's evaluator (mean story-token "
         "cross-entropy, test split). TRL also supervises the newline its chat template puts after "
         "`<|im_end|>` (one token per pair); storyteller stops at `<|im_end|>`."),
        ("MFU: model FLOPs (formula in the script's docstring) over real tokens, without "
         "recomputation or padding, against the bf16 peak (what the issue asks) and the fp32 peak."),
    ]
    lines += ["", "Notes:", "", *(f"- {note}" for note in notes)]
    return "\n".join(lines) + "\n"


def write_section(path: Path, body: str, machine: str) -> None:
    """Insert or replace the `## finetune` section of the benchmarks document."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT, check=False).stdout.strip() or "-"
    command = command_line("bench.finetune", *sys.argv[1:])
    section = (
        "## finetune (`bench/finetune.py`)\n\n"
        "storyteller's trainer against TRL's `SFTTrainer` (defaults, and with packing) on the same "
        "model, curated pairs, LoRA settings and number of supervised story tokens, each in its own "
        "process; every adapter scored by the same held-out evaluator.\n\n"
        f"Targets: {TARGETS}.\n\n```\n{command}\n```\n\n"
        f"{datetime.date.today()}, commit {commit}, {machine}:\n\n{body}")
    replace_section(path, "## finetune", section)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.finetune",
        description="storyteller's fine-tuning against TRL's SFTTrainer (defaults, and packing): "
                    "supervised tokens/s, padding, peak memory, held-out loss and MFU.",
        epilog="Example: .venv/bin/python -m bench.finetune --model tiny-random "
               "--supervised-tokens 600")
    parser.add_argument("--model", default="smollm2-135m",
                        help="model name (smollm2-135m, tiny-random), directory or hub id")
    parser.add_argument("--data", type=Path, default=Path("data/starter"), help="curated data directory")
    parser.add_argument("--config", type=Path, default=Path("configs/finetune/quickstart.yaml"),
                        help="storyteller finetune config; its LoRA and data.max_length apply to TRL too")
    parser.add_argument("--supervised-tokens", type=int, default=12000,
                        help="supervised (story) tokens each contender trains on")
    parser.add_argument("--only", action="append", choices=list(CONTENDERS),
                        help="run only this contender (repeatable)")
    parser.add_argument("--write", type=Path, help="insert/replace the '## finetune' section of this Markdown file")
    parser.add_argument("--worker", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--base-loss", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    args.data, args.config = args.data.resolve(), args.config.resolve()
    if not (args.data / "manifest.json").is_file():
        sys.exit(f"{args.data} is not a curated data directory (no manifest.json); run:\n"
                 "  storyteller curate corpora/starter --config configs/curate/starter.yaml --out data/starter")
    if not args.config.is_file():
        sys.exit(f"config not found: {args.config}")
    chosen = [n for n in CONTENDERS if not args.only or n in args.only]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for index, name in enumerate(chosen, 1):
            print(f"[{index}/{len(chosen)}] {CONTENDERS[name]}: training on {args.supervised_tokens:,} "
                  f"supervised tokens of {args.model} …", flush=True)
            results[name] = r = run_worker(name, args, Path(tmp), base_loss=index == 1)
            print(f"      {r['supervised'] / r['seconds']:,.1f} supervised tokens/s, {r['steps']} steps, "
                  f"held-out loss {r['loss']:.4f} ({r['wall']:.0f} s)", flush=True)
    print("measuring matmul peaks …", flush=True)
    peaks = measure_peaks()
    body = report(results, peaks, args)
    print(f"\n{datetime.date.today()}, {peaks[2]}\n\n{body}")
    if args.write:
        write_section(args.write, body, peaks[2])
        print(f"wrote the '## finetune' section of {args.write}")


if __name__ == "__main__":
    main()
