"""The built-in over-used phrase list: stories written by the embedded default model from the
starter corpus's premises, compared with human stories (the starter corpus's own, and the public
corpora of --reference) and wordfreq for single words by storyteller.overused; single words of
what was asked (premise, genre, style) are not listed; writes the list with each phrase's numbers to
storyteller/data/overused.json and a table to docs/BENCHMARKS.md ("Over-used phrases").

    nice -n 10 .venv/bin/python -m bench.overused [--model smollm2-135m] [--stories 40]
        [--max-tokens 300] [--endpoint URL] [--write docs/BENCHMARKS.md]

Without --endpoint it starts `storyteller serve` of the model on one thread (the machine is
shared) and stops it at the end. Stories are sampled with the studio's default preset, seeded
by their number, so a rerun on the same engine writes the same stories.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.results import command_line, machine, replace_section
from storyteller.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
STARTER = ROOT / "corpora" / "starter"
DATA = ROOT / "storyteller" / "data" / "overused.json"
HEADING = "## Over-used phrases (`bench/overused.py`)"
# The list shipped: the most over-used phrases, enough to matter, few enough to read.
KEEP = 60


def starter_stories() -> list[dict]:
    stories = []
    for path in sorted(STARTER.glob("*.jsonl")):
        stories += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                    if line.strip()]
    return stories


def pick_premises(stories: list[dict], count: int) -> list[dict]:
    """`count` stories taken round-robin over the genres, so every genre is asked alike."""
    by_genre: dict[str, list[dict]] = {}
    for story in stories:
        by_genre.setdefault(story["genre"], []).append(story)
    picked, row = [], 0
    while len(picked) < count and any(row < len(v) for v in by_genre.values()):
        picked += [v[row] for v in by_genre.values() if row < len(v)][:count - len(picked)]
        row += 1
    return picked


# Human stories from public sources, where this machine has them: a bigger reference than the
# starter corpus alone (61,000 words), so everyday phrases ("had to", "going to") are not called
# over-used for want of human text.
PUBLIC = Path("/work/shared/corpora")


def reference_texts(paths: list[Path]) -> list[str]:
    """Every story in `paths` (any format curate reads), with curate's own readers."""
    from storyteller.curate.records import RawStory
    from storyteller.curate.sources import expand_inputs, read_source

    texts = []
    for location, fmt in expand_inputs([str(p) for p in paths], "auto"):
        texts += [item.text for item in read_source(location, fmt, {})
                  if isinstance(item, RawStory)]
    return texts


def prompt_words(premises: list[dict]) -> set[str]:
    """The words of what the stories were asked for (premises, genres, styles): a model that
    writes "dragon" for a premise about a dragon is on topic, not in a habit."""
    from storyteller.overused import words

    return {w for story in premises
            for w in words(" ".join(str(story.get(k, "")) for k in ("premise", "genre", "style")))}


def cpu_flags() -> str:
    try:
        flags = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown"
    line = next((l for l in flags.splitlines() if l.startswith("Flags:")), "")
    have = [f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f in line.split()]
    return ", ".join(have) or "no avx512_bf16 / amx"


def generate(endpoint: str, model: str, premises: list[dict], max_tokens: int) -> list[str]:
    from storyteller.client import StoryClient, story_messages
    from storyteller.prompts import StoryRequest
    from storyteller.sampling import Sampling

    client = StoryClient(endpoint, timeout=900)
    name = model if model in [m.id for m in client.models()] else client.models()[0].id
    texts = []
    for i, story in enumerate(premises):
        request = StoryRequest(controls={"genre": story["genre"], "style": story["style"]},
                               premise=story["premise"])
        sampling = Sampling.from_preset("balanced", max_tokens=max_tokens, seed=i)
        started = time.perf_counter()
        answer = client.chat(name, story_messages(request), sampling)
        texts.append(answer.text)
        print(f"story {i + 1}/{len(premises)}: {answer.completion_tokens} tokens in "
              f"{time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return texts


def section(result: dict, command: str) -> str:
    rows = "\n".join(f"| {e['phrase']} | {e['n']} | {e['model_count']} | {e['stories']} | "
                     f"{e['human_count']} | {e['ratio']:.1f} | {e['reference']} |"
                     for e in result["phrases"][:25])
    return f"""{HEADING}

What the embedded default model writes far more often than human stories: {result['stories']}
stories of at most {result['max_tokens']} tokens ({result['model_words']:,} words) written by
`{result['model']}` from the starter corpus's premises (the studio's "balanced" preset, seeded),
against {result['human_stories']:,} human stories ({result['human_words']:,} words: the starter
corpus and {', '.join(f"`{r}`" for r in result['references'][1:]) or 'nothing else'})
and, for single words, wordfreq's English frequencies. A phrase of 1–4 words is listed when it
is at least {result['min_ratio']}× as frequent in the model's stories as in the references,
occurs at least {result['min_count']} times in at least {result['min_stories']} stories; a
single word of what the stories were asked for (premise, genre, style) is on topic and not
listed; a shorter phrase mostly inside a longer listed one is dropped. The list
(`storyteller/data/overused.json`, {len(result['phrases'])} phrases, each with its numbers) is
`storyteller.overused.overused_phrases()`, the studio's one-click banned list.

- Command: `{command}`
- Machine: {result['machine']}; CPU flags: {result['cpu_flags']} (shared with other work
  while it ran)
- Date: {result['date']}; generation took {result['seconds']:.0f} s

The 25 most over-used (ratio = model rate / reference rate; reference "corpus" is the human
stories with one occurrence added to every phrase, "wordfreq" English at large):

| phrase | words | model uses | model stories | human uses | ratio | reference |
|---|---|---|---|---|---|---|
{rows}
"""


def main(argv: list[str] | None = None) -> None:
    from storyteller.overused import compare, words

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--stories", type=int, default=40)
    parser.add_argument("--max-tokens", type=int, default=300)
    parser.add_argument("--endpoint", default="", help="an endpoint already serving the model")
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--min-stories", type=int, default=3)
    parser.add_argument("--min-ratio", type=float, default=20.0,
                        help="against a million words of human stories, 20× keeps the habits "
                             "and leaves ordinary phrases (his own, she is) alone")
    parser.add_argument("--texts", type=Path, default=None,
                        help="a JSON file of the stories: read where it exists (no generation), "
                             "else written once they are generated")
    parser.add_argument("--reference", type=Path, action="append", default=None,
                        help="more human stories to compare with (any format curate reads; "
                             "repeatable); default: the public corpora under "
                             f"{PUBLIC} where present")
    parser.add_argument("--out", type=Path, default=DATA)
    parser.add_argument("--write", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    args = parser.parse_args(argv)

    human = starter_stories()
    premises = pick_premises(human, args.stories)
    started = time.perf_counter()
    server = None
    endpoint = args.endpoint
    if args.texts and args.texts.is_file():
        texts = json.loads(args.texts.read_text(encoding="utf-8"))
        endpoint = "(read from --texts)"
    elif not endpoint:
        from bench.serve import start_serve

        port = free_port()
        server = start_serve(args.model, port, "--set", "cpu.threads=1")
        endpoint = f"http://127.0.0.1:{port}"
    if not (args.texts and args.texts.is_file()):
        try:
            texts = generate(endpoint, args.model, premises, args.max_tokens)
        finally:
            if server is not None:
                server.stop()
        if args.texts:
            args.texts.write_text(json.dumps(texts, indent=1), encoding="utf-8")
    seconds = time.perf_counter() - started
    if endpoint == "(read from --texts)" and args.out.is_file():
        # The stories were written by an earlier run: its generation time is theirs.
        seconds = json.loads(args.out.read_text(encoding="utf-8")).get("seconds", seconds)
    references = args.reference if args.reference is not None else \
        sorted(p for p in PUBLIC.iterdir() if p.is_dir()) if PUBLIC.is_dir() else []
    human_texts = [s["text"] for s in human] + reference_texts(references)
    asked = prompt_words(premises)
    found = [o for o in compare(texts, human_texts, min_count=args.min_count,
                                min_stories=args.min_stories, min_ratio=args.min_ratio)
             if not (o.n == 1 and o.phrase in asked)]
    result = {"model": args.model, "date": datetime.date.today().isoformat(),
              "machine": machine(), "cpu_flags": cpu_flags(), "stories": len(texts),
              "max_tokens": args.max_tokens, "model_words": sum(len(words(t)) for t in texts),
              "human_stories": len(human_texts),
              "human_words": sum(len(words(t)) for t in human_texts),
              "references": ["corpora/starter", *(str(p) for p in references)],
              "min_count": args.min_count, "min_stories": args.min_stories,
              "min_ratio": args.min_ratio, "seconds": seconds,
              "phrases": [o.as_json() for o in found[:KEEP]]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    command = "nice -n 10 " + command_line("bench.overused", *(argv if argv is not None
                                                               else sys.argv[1:]))
    if args.write:
        replace_section(args.write, HEADING, section(result, command))
    print(json.dumps({k: v for k, v in result.items() if k != "phrases"}, indent=1))
    print("\n".join(f"{e['ratio']:7.1f}  {e['phrase']}" for e in result["phrases"]))


if __name__ == "__main__":
    main()
