"""What the studio's writing aids cost a writer in waiting: the request the Write page sends for
a premise against the document continuation the studio sends with notes, a direction, a rolling
summary of what fell out of the window and the built-in banned list, side by side in one
invocation on one `storyteller serve` of the same model; and n = 3 candidates against n = 1.

Contenders (each over the same seeds, streamed through StoryClient as the studio calls it):

- plain: a premise and controls (the Write page);
- aids: a long document continued at its end (storyteller.studio.context.build_context: notes,
  direction, summary + the story so far) with `banned` = the built-in over-used list;
- n = 1 and n = 3: the aids request as candidates (one request, the endpoint writes n).

Measured: time to the first words (request sent → first text piece), words per second of the
writing after the first words, and for candidates the wall time of the whole request and its
words per second over all candidates.

Requests are unseeded, as the studio sends them by default, and each request continues another
stretch of the book (and the plain ones another premise), so no contender is answered from the
engine's prompt cache of an identical earlier prompt. With --seeded each request has a seed: the
CPU engine then computes the whole prompt afresh (storyteller.serve.engine_params,
llamacpp_body), so a long context costs its full prompt time, and a banned phrase cut and
rewritten costs it again.

    .venv/bin/python -m bench.writing_aids [--model smollm2-135m] [--max-tokens 128]
        [--requests 4] [--document BOOK.txt] [--write docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from pathlib import Path

from bench.overused import cpu_flags
from bench.results import command_line, machine, replace_section
from bench.serve import start_serve
from storyteller.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
# A public-domain book with long stories, where this machine has it; else the starter stories
# one after another (a long document of short stories).
BOOK = Path("/work/shared/corpora/gutenberg/pg2591_grimms_fairy_tales.txt")
NOTES = ("Gretel: the younger sister, quick-witted, keeps the bread crumbs.\n"
         "Hansel: her brother, brave but hungry.\n"
         "The forest: no birds sing after sunset; the path home is lost.")
DIRECTION = "They find a cottage made of bread and cake, and an old woman invites them in."
SECTION = "## Writing aids: their cost in waiting"
SEEDED = "## Writing aids, seeded: their cost in waiting"


def long_document(path: Path | None, words: int = 4000, skip: int = 0) -> str:
    if path is None and BOOK.exists():
        path = BOOK
    if path is not None:
        text = path.read_text(encoding="utf-8")
        start = text.find("HANSEL AND GRETEL")
        body = text[start if start >= 0 else len(text) // 3:]
    else:
        import json

        body = "\n\n".join(json.loads(line)["text"] for file in
                           sorted((ROOT / "corpora" / "starter").glob("*.jsonl"))
                           for line in file.read_text(encoding="utf-8").splitlines() if line)
    return " ".join(body.split(" ")[skip:skip + words])


def words(text: str) -> int:
    return len(text.split())


def timed_stream(client, model: str, messages: list[dict], sampling, **extra) -> dict:
    from storyteller.client import Completion

    started = time.perf_counter()
    first = None
    text = ""
    for piece in client.stream(model, messages, sampling, **extra):
        if isinstance(piece, Completion):
            text = piece.text
            break
        if first is None and piece.strip():
            first = time.perf_counter()
    ended = time.perf_counter()
    first = first or ended
    return {"first": first - started, "words": words(text),
            "rate": words(text) / max(ended - first, 1e-6), "seconds": ended - started}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.writing_aids",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--document", type=Path)
    parser.add_argument("--seeded", action="store_true",
                        help="seed every request (the engine's prompt cache is then off)")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()

    from storyteller.client import StoryClient, story_messages
    from storyteller.overused import overused_phrases
    from storyteller.prompts import render_messages, story_request
    from storyteller.sampling import Sampling
    from storyteller.studio.context import build_context

    def aids_messages(index: int):
        document = long_document(args.document, skip=index * 500)
        context = build_context(document, notes=NOTES, direction=DIRECTION,
                                controls={"genre": "fairy tale"}, title="Hansel and Gretel",
                                budget_tokens=1536)
        return document, context, render_messages(context.request)

    def plain_messages(index: int):
        from bench.serve import PREMISES

        genre, style, premise = PREMISES[index % len(PREMISES)]
        return story_messages(story_request(premise, "", {"genre": genre, "style": style}))

    document, context, _ = aids_messages(0)
    banned = overused_phrases()
    port = free_port()
    server = start_serve(ROOT / args.model if (ROOT / args.model).exists() else Path(args.model),
                         port, "--set", "cpu.threads=2")
    rows: dict[str, list[dict]] = {"plain": [], "aids": [], "n=1": [], "n=3": []}
    try:
        client = StoryClient(f"http://127.0.0.1:{port}", timeout=600)
        name = client.models()[0].id
        warm = Sampling(max_tokens=8)
        client.chat(name, plain_messages(99), warm)
        client.chat(name, aids_messages(99)[2], warm, banned=banned)
        for index in range(args.requests):
            sampling = Sampling.from_preset("story", max_tokens=args.max_tokens,
                                            seed=index if args.seeded else None)
            # Interleaved, so a change in the machine's load reaches every contender alike;
            # each its own stretch of the book, so none is a prompt the engine has cached.
            rows["plain"].append(timed_stream(client, name, plain_messages(index), sampling))
            rows["aids"].append(timed_stream(client, name, aids_messages(4 * index)[2], sampling,
                                             banned=banned))
            for n, stretch in ((1, 4 * index + 1), (3, 4 * index + 2)):
                started = time.perf_counter()
                made = client.candidates(name, aids_messages(stretch)[2], sampling, n=n,
                                         banned=banned)
                seconds = time.perf_counter() - started
                total = sum(words(c.text) for c in made)
                rows[f"n={n}"].append({"seconds": seconds, "words": total,
                                       "rate": total / seconds})
    finally:
        server.stop(grace=30)

    parts = ", ".join(f"{p.name} {p.tokens}" for p in context.parts)
    median = statistics.median
    lines = [
        SEEDED if args.seeded else SECTION, "",
        f"`{command_line('bench.writing_aids', *(['--max-tokens', str(args.max_tokens), '--requests', str(args.requests)] + (['--seeded'] if args.seeded else [])))}`"
        f" — {datetime.date.today().isoformat()}, {machine()}, CPU flags {cpu_flags()}; model "
        f"`{args.model}` on `storyteller serve` (llama.cpp, 2 threads), preset `story`, at most "
        f"{args.max_tokens} new tokens, "
        f"{'seeds 0..' + str(args.requests - 1) if args.seeded else 'unseeded (the studio default)'}"
        ", contenders interleaved, each request a prompt the engine has not cached.",
        "",
        f"The aids request: a {words(document):,}-word stretch of a book, prompt parts (approximate "
        f"tokens) {parts}; {len(banned)} banned phrases (the built-in over-used list).",
        "",
        "| request | first words, median s | words/s after the first, median | words per answer |",
        "|---|---|---|---|",
    ]
    for key in ("plain", "aids"):
        got = rows[key]
        lines.append(f"| {key} | {median(r['first'] for r in got):.2f} | "
                     f"{median(r['rate'] for r in got):.1f} | "
                     f"{median(r['words'] for r in got):.0f} |")
    lines += ["", "| candidates (aids request) | whole request, median s | words/s over all |",
              "|---|---|---|"]
    for key in ("n=1", "n=3"):
        got = rows[key]
        lines.append(f"| {key} | {median(r['seconds'] for r in got):.2f} | "
                     f"{median(r['rate'] for r in got):.1f} |")
    ratio = median(r["seconds"] for r in rows["n=3"]) / median(r["seconds"] for r in rows["n=1"])
    lines += ["", f"n = 3 takes {ratio:.2f}× the time of n = 1.", ""]
    report = "\n".join(lines)
    print(report)
    if args.write:
        replace_section(args.write, SEEDED if args.seeded else SECTION, report)


if __name__ == "__main__":
    main()
