"""Evaluation wall time: `storyteller evaluate` on 100 prompts, and its story generation against
transformers' `generate` on the same prompts, side by side in one invocation.

The 100 prompts are the starter corpus's test and validation prompts, topped up with training
prompts spread across genres (the bench measures time, so where the prompts come from does not
matter; memorisation numbers of this bench are not meaningful). Contenders:

- storyteller evaluate: the real command path (`load_config` + `run`), tuned model and its base,
  every metric, the report; timings per phase come from metrics.json.
- transformers generate: `model.generate` on the tuned model (adapter merged, as evaluate does),
  the same prompts, batch size, sampling preset and token limit, left-padded batches in the same
  length order.

On a machine with a CUDA GPU and vLLM installed, evaluate also runs with `generation.engine=vllm`.

    .venv/bin/python -m bench.evaluate [--model runs/quickstart] [--prompts 100]
        [--max-tokens 256] [--batch-size 16] [--write docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.results import command_line, machine, replace_section

ROOT = Path(__file__).resolve().parents[1]


def bench_data(source: Path, out: Path, prompts: int) -> Path:
    """A curated directory whose test split has `prompts` prompts (train stays whole)."""
    from storyteller.curated import read_data
    from storyteller.evaluate.run import select_prompts

    splits, _ = read_data(source)
    chosen = splits["test"] + splits["val"]
    if len(chosen) < prompts:
        chosen += select_prompts(splits["train"], prompts - len(chosen), [])
    out.mkdir(parents=True, exist_ok=True)
    (out / "test.jsonl").write_text("".join(json.dumps(p) + "\n" for p in chosen[:prompts]))
    (out / "train.jsonl").write_text((source / "train.jsonl").read_text())
    (out / "manifest.json").write_text((source / "manifest.json").read_text())
    return out


def run_evaluate(model: str, data: Path, out: Path, args, *extra: str) -> tuple[float, dict]:
    from storyteller.config import load_config
    from storyteller.evaluate.config import EvaluateConfig
    from storyteller.evaluate.run import run

    cfg = load_config(EvaluateConfig, None, [
        f"model={model}", f"data={data}", f"out={out}",
        f"generation.max_tokens={args.max_tokens}",
        f"generation.batch_size={args.batch_size}", *extra])
    started = time.perf_counter()
    result = run(cfg)
    return time.perf_counter() - started, result.summary


def run_generate(model: str, data: Path, args) -> dict:
    """transformers' generate on the tuned model: same prompts, preset, limit and batching."""
    import torch

    from storyteller.curated import read_pairs
    from storyteller.models import inspect_model, load_for_inference
    from storyteller.sampling import preset

    chosen = preset("story")
    model_, tokenizer = load_for_inference(inspect_model(model))
    tokenizer.padding_side = "left"
    pairs = read_pairs(data / "test.jsonl")
    texts = sorted((tokenizer.apply_chat_template(p["messages"][:-1], tokenize=False,
                                                  add_generation_prompt=True) for p in pairs),
                   key=len)
    torch.manual_seed(0)
    tokens = 0
    started = time.perf_counter()
    for start in range(0, len(texts), args.batch_size):
        batch = tokenizer(texts[start:start + args.batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False)
        with torch.inference_mode():
            output = model_.generate(**batch, do_sample=True, temperature=chosen.temperature,
                                     top_p=chosen.top_p, repetition_penalty=chosen.repetition_penalty,
                                     max_new_tokens=args.max_tokens,
                                     pad_token_id=tokenizer.pad_token_id)
        new = output[:, batch["input_ids"].shape[1]:]
        for row in new.tolist():
            row = row[:row.index(tokenizer.eos_token_id) + 1] if tokenizer.eos_token_id in row else row
            tokens += len(row)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "new_tokens": tokens}


def table(rows: list[dict]) -> str:
    lines = ["| contender | prompts | stories | wall s | generation s | new tokens | tokens/s | "
             "storyteller ÷ this (tokens/s) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    best = rows[0]["tokens_per_s"]
    for row in rows:
        lines.append(f"| {row['name']} | {row['prompts']} | {row['stories']} | {row['wall']:.0f} | "
                     f"{row['generate']:.0f} | {row['tokens']:,} | {row['tokens_per_s']:.1f} | "
                     f"{best / row['tokens_per_s']:.2f}× |")
    return "\n".join(lines)


def write_section(path: Path, body: str) -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT, check=False).stdout.strip() or "-"
    command = command_line("bench.evaluate", *sys.argv[1:])
    replace_section(path, "## evaluate (", f"## evaluate (`bench/evaluate.py`)\n\n```\n{command}\n```\n\n"
                    f"{datetime.date.today()}, commit {commit}, {machine()}:\n\n{body}\n")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.evaluate",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="runs/quickstart", help="a run, model directory or name")
    parser.add_argument("--data", type=Path, default=Path("data/starter"))
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--skip-peer", action="store_true", help="only storyteller evaluate")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="an evaluate config override for every run, e.g. metrics.relevance=false")
    parser.add_argument("--write", type=Path, help="insert/replace the '## evaluate' section")
    args = parser.parse_args()
    import torch

    from storyteller.models import vllm_available

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = bench_data(args.data.resolve(), Path(tmp) / "data", args.prompts)
        engines = [("transformers", "generation.engine=transformers")]
        if vllm_available():
            engines.append(("vllm", "generation.engine=vllm"))
        for name, setting in engines:
            print(f"storyteller evaluate ({name}) on {args.prompts} prompts …", flush=True)
            wall, summary = run_evaluate(args.model, data, Path(tmp) / f"eval-{name}", args, setting,
                                         *args.sets)
            timing = summary["timing"]
            generate = sum(v["generate_s"] for k, v in timing.items() if isinstance(v, dict))
            tokens = sum(v["new_tokens"] for k, v in timing.items() if isinstance(v, dict))
            models = [k for k, v in timing.items() if isinstance(v, dict)]
            rows.append({"name": f"storyteller evaluate ({name}), {' + '.join(models)}",
                         "prompts": args.prompts, "stories": args.prompts * len(models),
                         "wall": wall, "generate": generate, "tokens": tokens,
                         "tokens_per_s": tokens / generate, "timing": timing})
            print(json.dumps(timing), flush=True)
        if not args.skip_peer:
            print("transformers generate (tuned model) …", flush=True)
            peer = run_generate(args.model, data, args)
            rows.append({"name": "transformers `generate`, tuned only", "prompts": args.prompts,
                         "stories": args.prompts, "wall": peer["seconds"],
                         "generate": peer["seconds"], "tokens": peer["new_tokens"],
                         "tokens_per_s": peer["new_tokens"] / peer["seconds"]})
    body = table(rows)
    first = rows[0]["timing"]
    phases = ", ".join(f"{k}: generation {v['generate_s']:.0f} s, perplexity {v['perplexity_s']:.0f} s"
                       for k, v in first.items() if isinstance(v, dict))
    body += (f"\n\nSettings: preset `story`, at most {args.max_tokens} new tokens, batch "
             f"{args.batch_size}, model `{args.model}` and its base. Phases of the first row: "
             f"{phases}; metrics (tagger, embeddings, BLEU, memorisation, bootstrap) "
             f"{first['metrics_s']:.0f} s.")
    if not torch.cuda.is_available():
        body += "\n\nvLLM: not run (no CUDA GPU on this machine)."
    print(body)
    if args.write:
        write_section(args.write, body)


if __name__ == "__main__":
    main()
