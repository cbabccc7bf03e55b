"""The gateway's own cost per streamed event: a stand-in engine that streams as fast as it can
(tests/integration/sse_engine.py, vLLM-shaped events), read directly and through
`storyteller serve`'s gateway, side by side in one invocation.

Contenders (each a separate process from the engine and from this client):

- direct: the client reads the engine's stream itself (the ceiling on this machine);
- gateway, vLLM path: events pass through as bytes (the engine already names the model);
- gateway, CPU-engine path: every event decoded, renamed and encoded again.

The client is asyncio + httpx and counts events with content, so its own cost stays small.
On a GPU the engine streams hundreds of events a second per stream (docs/BENCHMARKS.md, vLLM);
this shows what the gateway alone allows.

    .venv/bin/python -m bench.gateway [--pieces 128] [--streams 1 8 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from bench.results import command_line, machine
from bench.serve import start_healthy
from storyteller.processes import free_port

ROOT = Path(__file__).resolve().parents[1]


def start(running: ExitStack, role: str, *args: str) -> str:
    """One half of the stand-in (tests/integration/sse_engine.py) in its own process, stopped
    when `running` closes: its URL, once it answers /health (a gateway asks its engine)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    running.enter_context(start_healthy(
        [sys.executable, "-m", "tests.integration.sse_engine", role, "--port", str(port), *args],
        f"sse_engine {role}", f"{url}/health", timeout=60, cwd=ROOT))
    return url


async def one(client, url: str) -> int:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "a fox"}], "stream": True}
    events = 0
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as answer:
        async for line in answer.aiter_lines():
            if line.startswith("data: {") and '"content"' in line:
                events += 1
    return events


async def rate(url: str, streams: int, rounds: int) -> float:
    import httpx

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=256)) as client:
        await one(client, url)  # warm-up: connections, first-call paths
        rates = []
        for _ in range(rounds):
            started = time.perf_counter()
            counts = await asyncio.gather(*[one(client, url) for _ in range(streams)])
            rates.append(sum(counts) / (time.perf_counter() - started))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pieces", type=int, default=128, help="events per stream")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (median)")
    args = parser.parse_args()
    results = {}
    with ExitStack() as running:
        engine_url = start(running, "engine", "--pieces", str(args.pieces))
        renamed_url = start(running, "engine", "--pieces", str(args.pieces),
                            "--model", "/models/tiny")
        contenders = [
            ("direct to the engine", engine_url),
            ("gateway, vLLM path (bytes pass through)",
             start(running, "gateway", "--engine-url", engine_url, "--kind", "vllm")),
            ("gateway, CPU-engine path (events renamed)",
             start(running, "gateway", "--engine-url", renamed_url, "--kind", "transformers",
                   "--engine-model", "/models/tiny"))]
        for name, url in contenders:
            results[name] = {n: asyncio.run(rate(url, n, args.rounds)) for n in args.streams}
            print(name, json.dumps({n: round(r) for n, r in results[name].items()}), flush=True)
    direct = results[contenders[0][0]]
    header = "| contender | " + " | ".join(f"{n} stream{'s' * (n > 1)}, events/s"
                                         for n in args.streams) + " | ÷ direct |"
    lines = [header, "|---|" + "---:|" * (len(args.streams) + 1)]
    for name, by_streams in results.items():
        ratios = "/".join(f"{by_streams[n] / direct[n]:.2f}" for n in args.streams)
        lines.append(f"| {name} | " + " | ".join(f"{by_streams[n]:,.0f}" for n in args.streams)
                     + f" | {ratios} |")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    rerun = command_line("bench.gateway", f"--pieces {args.pieces} --streams",
                         *map(str, args.streams), f"--rounds {args.rounds}")
    print("\n".join(["```", rerun, "```", "",
                     f"{datetime.date.today()}, commit {commit}, {machine()}:", "", *lines]))


if __name__ == "__main__":
    main()
