"""Greedy fidelity of the endpoint: does `storyteller serve` write, token for token, what the
merged model writes in-process with `generate`? The tests prove it on the tiny model; this
measures it on a real one, per CPU engine, side by side in one invocation.

For each of the 8 bench prompts (bench/serve.py), greedy decoding of up to --max-tokens tokens
through the endpoint and in-process; reported per engine: stories
identical, and for the others the first token where they part (floating-point sums in another
order can flip a near-tie, after which greedy decoding follows another path).

With --weights, llama.cpp serves the model once per GGUF weights type (cpu.weights), and each
type is compared with in-process `generate` and with llama.cpp's float32 GGUF (the first type
listed when f32 is not): what quantising the weights changes, apart from what the engine does.

    .venv/bin/python -m bench.serve_fidelity [--model models/quickstart] [--max-tokens 64]
        [--backends llama.cpp,transformers] [--weights f32,q8_0,q4_k_m] [--set KEY=VALUE]
        [--write docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
from pathlib import Path

from bench.results import command_line, machine, replace_section
from bench.serve import PREMISES, messages, start_serve
from storyteller.processes import free_port

ROOT = Path(__file__).resolve().parents[1]


def in_process(model_dir: Path, max_tokens: int) -> tuple[list[str], object]:
    import torch

    from storyteller.models import inspect_model, load_for_inference
    from storyteller.merge import stop_ids

    model, tokenizer = load_for_inference(inspect_model(str(model_dir)))
    stories = []
    for index in range(len(PREMISES)):
        ids = tokenizer.apply_chat_template(messages(index), add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        with torch.inference_mode():
            out = model.generate(**ids, do_sample=False, max_new_tokens=max_tokens,
                                 eos_token_id=stop_ids(tokenizer))
        stories.append(tokenizer.decode(out[0, ids["input_ids"].shape[1]:],
                                        skip_special_tokens=True))
    return stories, tokenizer


def served(model_dir: Path, backend: str, max_tokens: int, sets: list[str]) -> list[str]:
    import openai

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_serve(model_dir, port, "--set", f"cpu.backend={backend}", *sets)
    try:
        api = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=600)
        name = api.models.list().data[0].id
        return [api.chat.completions.create(model=name, messages=messages(i), temperature=0,
                                            max_tokens=max_tokens).choices[0].message.content
                for i in range(len(PREMISES))]
    finally:
        server.stop(grace=60)


def parting(local: list[int], remote: list[int]) -> int | None:
    """Index of the first token where two stories differ; None when identical."""
    for index, (a, b) in enumerate(zip(local, remote)):
        if a != b:
            return index
    return None if len(local) == len(remote) else min(len(local), len(remote))


def compare(reference: list[list[int]], stories: list[list[int]]) -> str:
    """`identical | first differing tokens` cells of one row: how many of `stories` equal
    `reference` token for token, and where each other one parts from it."""
    parts = [parting(a, b) for a, b in zip(reference, stories)]
    differ = sorted(p for p in parts if p is not None)
    return (f"{len(parts) - len(differ)} of {len(parts)} | "
            f"{', '.join(str(p) for p in differ) or '—'}")


def contenders(backends: str, weights: str) -> list[tuple[str, str, list[str]]]:
    """(row name, backend, serve overrides) per engine, and per weights type for llama.cpp."""
    types = [w.strip() for w in weights.split(",") if w.strip()]
    rows = []
    for backend in [b.strip() for b in backends.split(",") if b.strip()]:
        if backend == "llama.cpp" and types:
            rows += [(f"llama.cpp, weights {w}", backend, ["--set", f"cpu.weights={w}"])
                     for w in sorted(types, key=lambda w: w != "f32")]
        else:
            rows.append((backend, backend, []))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve_fidelity",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/quickstart"))
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--backends", default="llama.cpp,transformers")
    parser.add_argument("--weights", default="",
                        help="GGUF weights types for llama.cpp, comma-separated (cpu.weights: "
                             "f32, bf16, f16, q8_0, q4_k_m); default: the serve config's")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a serve config override, e.g. cpu.extra_args=[-ctk,f32] "
                             "(repeatable)")
    parser.add_argument("--skip-in-process", action="store_true",
                        help="compare the weights types with each other only (no in-process "
                             "`generate`, the slow part on a busy machine)")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    from storyteller.serve.llamacpp import WEIGHTS

    if [w for w in args.weights.split(",") if w.strip() and w.strip() not in WEIGHTS]:
        parser.error(f"--weights: choose from {', '.join(WEIGHTS)}")
    if args.skip_in_process:
        from transformers import AutoTokenizer

        tokenizer, local = AutoTokenizer.from_pretrained(args.model), None
    else:
        texts, tokenizer = in_process(args.model, args.max_tokens)
        # Both sides as text re-tokenised, so the comparison is the same for each.
        local = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    lines = ["| CPU engine | stories identical to in-process | first differing token (others) "
             "| identical to llama.cpp's first weights | first differing token (others) |",
             "|---|---:|---|---:|---|"]
    baseline = None  # llama.cpp's stories with the first weights type (f32 where listed)
    sets = [arg for s in args.sets for arg in ("--set", s)]
    for name, backend, extra in contenders(args.backends, args.weights):
        print(f"{name} …", flush=True)
        texts = served(args.model, backend, args.max_tokens, [*sets, *extra])
        remote = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
        against = "— | —"
        if backend == "llama.cpp" and args.weights:
            baseline = baseline or (name, remote)
            against = compare(baseline[1], remote)
        lines.append(f"| {name} | {compare(local, remote) if local else '— | —'} | {against} |")
        print(lines[-1], flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    body = "\n".join([
        "```", command_line("bench.serve_fidelity", f"--model {args.model} --max-tokens "
                            f"{args.max_tokens} --backends {args.backends}"
                            + (f" --weights {args.weights}" if args.weights else "")
                            + (" --skip-in-process" if args.skip_in_process else "")
                            + "".join(f" --set {s}" for s in args.sets)), "```", "",
        f"{datetime.date.today()}, commit {commit}, {machine()}:", "", *lines, "",
        f"Greedy, at most {args.max_tokens} new tokens, the 8 bench prompts; the served text "
        "is re-tokenised to compare token by token."])
    print(body)
    if args.write:
        replace_section(args.write, "## serve fidelity (",
                        f"## serve fidelity (`bench/serve_fidelity.py`)\n\n{body}\n")


if __name__ == "__main__":
    main()
