"""Serving latency and throughput: `storyteller serve` against plain in-process `generate`, side
by side in one invocation, on the same model, prompts and sampling.

Contenders:

- storyteller serve: the real command in a subprocess (gateway + engine), driven over HTTP with
  the official `openai` client, streaming; once per CPU engine (--backends): llama.cpp's
  llama-server (the default where installed) and `transformers serve`.
- in-process generate: `model.generate` on the same merged model in this process, with a
  streamer for the time to first token; 8 streams = one left-padded batch of the 8 prompts.

Measured per contender:

- time to first token (TTFT): request sent → first piece of story text, p50 and p95 over the
  single-stream requests;
- one stream: completion tokens / seconds of each request, requests one after another;
- 8 streams: all completion tokens / wall seconds with 8 requests in flight at once;
- the machine's 1-minute load average before and after, since the CPU may be shared and a
  busy neighbour slows every contender.

With --weights, llama.cpp runs once per GGUF weights type (cpu.weights); with --rounds N the
contenders run N times, interleaved, so a change in the machine's load reaches all alike.

Targets on CPU (docs/BENCHMARKS.md): TTFT p50 ≤ 0.5 s, one stream ≥ 20 tokens/s, 8 streams ≥ 3×
one stream's throughput.

    .venv/bin/python -m bench.serve [--model models/quickstart] [--max-tokens 128]
        [--requests 8] [--streams 8] [--backends llama.cpp,transformers]
        [--weights f32,q8_0,q4_k_m] [--rounds 1] [--write docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.results import command_line, machine, replace_section
from storyteller.errors import InputError
from storyteller.processes import Process, free_port

ROOT = Path(__file__).resolve().parents[1]

PREMISES = [
    ("fable", "moral", "A tortoise lends its shell to a snail for one rainy night."),
    ("ghost story", "plain", "The ferry arrives at dawn with every seat warm and no one aboard."),
    ("mystery", "noir", "A pawnbroker is handed the same ring by three different widows."),
    ("science fiction", "log", "The station's plants start growing toward the dark side."),
    ("fairy tale", "refrain", "A miller's daughter trades her shadow for a week of sunshine."),
    ("adventure", "plain", "Two cousins follow a river that runs uphill after midnight."),
    ("romance", "lyrical", "Two rival bakers share one oven after a fire."),
    ("slice of life", "plain", "A bus driver learns the names of every passenger in a year."),
]


# A sentence added to each premise per phase: the warm-up, the single streams and the burst
# then never send a prompt an earlier phase sent, so an engine's prompt cache (llama.cpp serves
# unseeded requests from it) reuses only what a writer's next request would share with the
# last: the system prompt and the control header, not the whole prompt.
PHASES = {"warm-up": " It happens in winter.", "single": "", "burst": " It happens in summer."}


def messages(index: int, phase: str = "single") -> list[dict]:
    from storyteller.prompts import StoryRequest
    from storyteller.client import story_messages

    genre, style, premise = PREMISES[index % len(PREMISES)]
    return story_messages(StoryRequest(controls={"genre": genre, "style": style},
                                       premise=premise + PHASES[phase]))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# ------------------------------------------------------------------------ over HTTP

def one_request(api, name: str, index: int, max_tokens: int, seed: int | None,
                phase: str = "single") -> dict:
    started = time.perf_counter()
    first, tokens, pieces = None, 0, 0
    seeded = {} if seed is None else {"seed": seed}
    stream = api.chat.completions.create(
        model=name, messages=messages(index, phase), max_tokens=max_tokens, temperature=0.8,
        top_p=0.95, stream=True, **seeded)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces += 1
            if first is None:
                first = time.perf_counter()
        if getattr(chunk, "usage", None):
            tokens = chunk.usage.completion_tokens
    ended = time.perf_counter()
    return {"ttft": (first or ended) - started, "seconds": ended - started,
            "tokens": tokens or pieces}


def start_healthy(command: list[str], name: str, health_url: str, timeout: float,
                  cwd: Path | None = None) -> Process:
    """`command` (a storyteller command, kept quiet) answering `health_url`; when it exits or
    never answers, the bench ends with its last output."""
    process = Process(command, name, env={"STORYTELLER_QUIET": "1"}, cwd=cwd)
    try:
        process.wait_healthy(health_url, timeout)
    except InputError as failure:
        raise SystemExit(str(failure)) from None
    return process


def start_serve(model: Path, port: int, *extra: str) -> Process:
    """`storyteller serve` of `model` on loopback `port`, healthy (a model may take minutes to
    load and convert)."""
    return start_healthy([sys.executable, "-m", "storyteller.cli", "serve", "--model",
                          str(model), "--port", str(port), *extra], "storyteller serve",
                         f"http://127.0.0.1:{port}/health", timeout=600)


def bench_server(model: Path, args, extra: list[str]) -> dict:
    import openai

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_serve(model, port, *extra)
    try:
        api = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=600)
        name = api.models.list().data[0].id
        seed = (lambda i: None) if args.unseeded else (lambda i: i)
        one_request(api, name, 0, 8, seed(0), "warm-up")
        # ... and a burst as wide as the measured one: an engine compiles some kernels on the
        # first batch of each shape (vLLM's Triton top-k/top-p sampler took ~3 s on an H100),
        # a one-time cost of a new server, not of serving.
        with ThreadPoolExecutor(args.streams) as pool:
            list(pool.map(lambda i: one_request(api, name, i, 8, seed(i), "warm-up"),
                          range(args.streams)))
        single = [one_request(api, name, i, args.max_tokens, seed(100 + i))
                  for i in range(args.requests)]
        started = time.perf_counter()
        with ThreadPoolExecutor(args.streams) as pool:
            many = list(pool.map(lambda i: one_request(api, name, i, args.max_tokens,
                                                       seed(200 + i), "burst"),
                                 range(args.streams)))
        wall = time.perf_counter() - started
    finally:
        server.stop(grace=60)
    return summarise(single, many, wall)


def summarise(single: list[dict], many: list[dict], wall: float) -> dict:
    ttfts = [r["ttft"] for r in single]
    one = sum(r["tokens"] for r in single) / sum(r["seconds"] for r in single)
    eight = sum(r["tokens"] for r in many) / wall
    return {"ttft_p50": statistics.median(ttfts), "ttft_p95": percentile(ttfts, 0.95),
            "one_stream_tps": one, "many_streams_tps": eight, "ratio": eight / one,
            "tokens_single": sum(r["tokens"] for r in single),
            "tokens_many": sum(r["tokens"] for r in many),
            "many_ttft_p50": statistics.median(r["ttft"] for r in many)}


# ------------------------------------------------------------------------ in-process

def bench_generate(model_dir: Path, args, device: str = "cpu") -> dict:
    """On the GPU in bf16, the dtype vLLM serves an fp32 checkpoint in; on the CPU in fp32."""
    import threading

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

    from storyteller.merge import stop_ids

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    stops = stop_ids(tokenizer)

    def encode(indices, phase):
        tokenizer.padding_side = "left"
        texts = [tokenizer.apply_chat_template(messages(i, phase), add_generation_prompt=True,
                                               tokenize=False) for i in indices]
        return tokenizer(texts, return_tensors="pt", padding=True,
                         add_special_tokens=False).to(device)

    def run(indices, seed, streamer=None, phase="single"):
        torch.manual_seed(seed)
        batch = encode(indices, phase)
        with torch.inference_mode():
            out = model.generate(**batch, do_sample=True, temperature=0.8, top_p=0.95,
                                 max_new_tokens=args.max_tokens, eos_token_id=stops,
                                 pad_token_id=tokenizer.pad_token_id, streamer=streamer)
        new = out[:, batch["input_ids"].shape[1]:]
        return int(sum((row != tokenizer.pad_token_id).sum() for row in new)) \
            if len(indices) > 1 else int(new.shape[1])

    run([0], 0, phase="warm-up")
    single = []
    for i in range(args.requests):
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        started = time.perf_counter()
        result = {}
        thread = threading.Thread(target=lambda: result.update(tokens=run([i], 100 + i, streamer)))
        thread.start()
        first = None
        for piece in streamer:
            if piece and first is None:
                first = time.perf_counter()
        thread.join()
        ended = time.perf_counter()
        single.append({"ttft": (first or ended) - started, "seconds": ended - started,
                       "tokens": result["tokens"]})
    started = time.perf_counter()
    tokens = run(list(range(args.streams)), 200, phase="burst")
    wall = time.perf_counter() - started
    many = [{"ttft": wall, "seconds": wall, "tokens": tokens}]
    return summarise(single, many, wall)


# ------------------------------------------------------------------------ report

def table(rows: list[tuple[str, dict]], streams: int = 8) -> str:
    n = streams
    lines = [f"| contender | TTFT p50 s | TTFT p95 s | one stream tokens/s | {n} streams tokens/s "
             f"| {n} streams ÷ one | {n}-stream TTFT p50 s | load before → after |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in rows:
        load = r.get("load")
        lines.append(f"| {name} | {r['ttft_p50']:.3f} | {r['ttft_p95']:.3f} | "
                     f"{r['one_stream_tps']:.1f} | {r['many_streams_tps']:.1f} | "
                     f"{r['ratio']:.2f}× | {r['many_ttft_p50']:.2f} | "
                     + (f"{load[0]:.2f} → {load[1]:.2f} |" if load else "— |"))
    return "\n".join(lines)


def rerun(args) -> str:
    """The command line that measures the same again, recorded beside the results."""
    return command_line(
        "bench.serve", f"--model {args.model} --max-tokens {args.max_tokens} "
        f"--requests {args.requests} --streams {args.streams}"
        + "".join(f" --set {s}" for s in args.sets)
        + (f" --backends {args.backends}" if args.engine == "cpu" else "")
        + (f" --weights {args.weights}" if args.weights else "")
        + (f" --rounds {args.rounds}" if args.rounds > 1 else "")
        + (f" --engine {args.engine}" if args.engine != "cpu" else "")
        + (" --unseeded" if args.unseeded else "")
        + (" --skip-peer" if args.skip_peer else ""))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/quickstart"),
                        help="a model directory written by storyteller merge")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--requests", type=int, default=8, help="single-stream requests")
    parser.add_argument("--streams", type=int, default=8, help="concurrent streams")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a serve config override for the server contenders, e.g. "
                             "cpu.dtype=bfloat16 (repeatable)")
    parser.add_argument("--backends", default="llama.cpp,transformers",
                        help="CPU engines to run, comma-separated: llama.cpp, transformers, "
                             "transformers-cb (transformers serve with continuous batching)")
    parser.add_argument("--weights", default="",
                        help="GGUF weights types for llama.cpp, comma-separated, one contender "
                             "each (cpu.weights: f32, bf16, f16, q8_0, q4_k_m); default: the "
                             "serve config's")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the contenders this many times, interleaved")
    parser.add_argument("--engine", choices=["cpu", "vllm"], default="cpu",
                        help="cpu: the CPU engines against generate on the CPU; vllm: the vLLM "
                             "engine against generate on the GPU")
    parser.add_argument("--unseeded", action="store_true",
                        help="requests without a seed (as the studio sends them unless a writer "
                             "sets one); llama.cpp then serves prompts from its cache")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    rows = []
    sets = [arg for s in args.sets for arg in ("--set", s)]
    suffix = f", {', '.join(args.sets)}" if args.sets else ""
    known = {"llama.cpp": ("llama.cpp llama-server", ["--set", "cpu.backend=llama.cpp"]),
             "transformers": ("transformers serve", ["--set", "cpu.backend=transformers"]),
             "transformers-cb": ("transformers serve, continuous batching",
                                 ["--set", "cpu.backend=transformers",
                                  "--set", "cpu.continuous_batching=true"])}
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in known]
    if unknown:
        parser.error(f"--backends: unknown {', '.join(unknown)}; choose from {', '.join(known)}")
    from storyteller.serve.llamacpp import WEIGHTS

    weights = [w.strip() for w in args.weights.split(",") if w.strip()]
    if [w for w in weights if w not in WEIGHTS]:
        parser.error(f"--weights: choose from {', '.join(WEIGHTS)}")
    contenders = []
    for b in backends:
        for w in (weights if b == "llama.cpp" and weights else [None]):
            label = f"{known[b][0]}{f', weights {w}' if w else ''}{suffix}"
            chosen = ["--set", f"cpu.weights={w}"] if w else []
            contenders.append((f"storyteller serve (CPU: {label})", [*sets, *known[b][1], *chosen]))
    if args.engine == "vllm":
        contenders = [(f"storyteller serve (vLLM engine{suffix})", [*sets, "--engine", "vllm"])]
    for round_ in range(1, args.rounds + 1):
        run = f", run {round_}" if args.rounds > 1 else ""
        for name, extra in contenders:
            print(f"{name}{run} …", flush=True)
            load = os.getloadavg()[0]
            result = bench_server(args.model, args, extra)
            rows.append((name + run, {**result, "load": (load, os.getloadavg()[0])}))
            print(json.dumps(rows[-1][1]), flush=True)
    if not args.skip_peer:
        print("in-process generate …", flush=True)
        device = "cuda" if args.engine == "vllm" else "cpu"
        load = os.getloadavg()[0]
        result = bench_generate(args.model, args, device)
        rows.append((f"in-process `generate` on the {'GPU, bf16' if device == 'cuda' else 'CPU'} "
                     f"(baseline; {args.streams} streams = one batch)",
                     {**result, "load": (load, os.getloadavg()[0])}))
        print(json.dumps(rows[-1][1]), flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    body = "\n".join([
        "```", rerun(args), "```", "",
        f"{datetime.date.today()}, commit {commit}, {machine()}:", "",
        table(rows, args.streams), "",
        f"Settings: sampling T 0.8 / top-p 0.95, at most {args.max_tokens} new tokens, "
        f"{args.requests} single-stream requests one after another, then {args.streams} at once; "
        "prompts are 8 genre/style/premise requests rendered by storyteller.prompts, a sentence "
        "added to each premise in the burst (no prompt repeats between phases). Tokens/s "
        "counts completion tokens over each request's whole time (TTFT included); load is "
        "the machine's 1-minute load average before and after each contender (2 cores; the "
        "bench itself adds about 2, so more before a contender means a neighbour was running)."])
    print(body)
    if args.write:
        replace_section(args.write, "## serve (", f"## serve (`bench/serve.py`)\n\n{body}\n")


if __name__ == "__main__":
    main()
