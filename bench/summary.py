"""Rolling summary: the extractive summary (`storyteller.studio.context.rolling_summary`) against
the model itself asked to summarise (`storyteller.prompts.summary_messages`, the embedded
default SmolLM2-135M-Instruct, greedy with repetition penalty 1.2, in this process) — cost and what each keeps.

On long real stories (The Adventures of Sherlock Holmes, one cut in each story at 60%), the text
that falls out of the studio's window (the 1,500 words before the last 600) is summarised in
120 words both ways, and scored on:
- names kept: of the chunk's character names that the next 400 words use again, the share in
  the summary (what a continuation needs);
- words kept: the same for the chunk's content words that the next 400 words use again;
- faithful words: the share of the summary's content words found in the chunk (a made-up word
  is not);
and seconds per summary. Also measures `approximate_tokens` against the real tokenizer.

    nice .venv/bin/python -m bench.summary [--stories 4] [--write docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime
import re
import statistics
import time
from pathlib import Path

from storyteller.curate.memory import proper_names, realised
from storyteller.curate.pairs import _STOPWORDS, character_names
from storyteller.studio.context import approximate_tokens, rolling_summary

ROOT = Path(__file__).resolve().parents[1]
BOOK = Path("/work/shared/corpora/gutenberg/pg1661_adventures_of_sherlock_holmes.txt")
HEADING = "## Rolling summary (`bench/summary.py`)"
_CONTENT = re.compile(r"\b[a-z]{4,}\b")
NOTE = ("Reading: the extractive summary costs milliseconds and, being the story's own sentences, invents nothing; the 135M model takes some 20 s per summary on this CPU, overshoots the length and makes up people and events (the sample below), so the studio uses the extractive summary by default and training's document pairs carry the same one. The names-kept proxy favours the extractive method by design (it picks sentences that name characters); a larger model may summarise better, at a cost measured the same way.")


def holmes_stories(path: Path) -> list[str]:
    """The twelve adventures, cut at their headings ("I. A SCANDAL IN BOHEMIA")."""
    text = path.read_text(encoding="utf-8")
    start = text.find("*** START")
    end = text.find("*** END")
    body = text[start:end if end > 0 else None]
    parts = re.split(r"\n\s*[IVX]+\.\s+[A-Z][A-Z’'\- ]+\n", body)
    return [p.strip() for p in parts if len(p.split()) > 4000]


def content(text: str) -> set[str]:
    return {w for w in _CONTENT.findall(text.lower()) if w not in _STOPWORDS}


def scores(summary: str, chunk: str, later: str) -> dict[str, float | None]:
    names = [n for n in set(character_names(chunk, 12)) | set(proper_names(chunk, 2))
             if re.search(rf"\b{n}\b", later)]
    needed = sorted(content(chunk) & content(later))
    own = sorted(content(summary))
    return {"names": statistics.mean(realised(names, summary)) if names else None,
            "words": statistics.mean(realised(needed, summary)) if needed else None,
            "faithful": statistics.mean(realised(own, chunk)) if own else None,
            "length": len(summary.split())}


def cuts(stories: list[str]) -> list[tuple[str, str]]:
    """(the chunk that falls out of the window, the next 400 words) per story."""
    result = []
    for story in stories:
        words = story.split(" ")
        cut = int(len(words) * 0.6)
        result.append((" ".join(words[cut - 2100:cut - 600]), " ".join(words[cut:cut + 400])))
    return result


def model_summaries(chunks: list[str], words: int) -> tuple[list[str], list[float]]:
    import torch

    from storyteller.decode import generate_batch
    from storyteller.models import inspect_model, load_for_inference
    from storyteller.prompts import prompt_ids, summary_messages
    from storyteller.sampling import Sampling

    model, tokenizer = load_for_inference(inspect_model("smollm2-135m"))
    # Greedy with a mild repetition penalty: plain greedy loops on one sentence at this size.
    sampling = Sampling(temperature=0, repetition_penalty=1.2, max_tokens=int(words * 1.6))
    texts, seconds = [], []
    for chunk in chunks:
        ids = prompt_ids(tokenizer, summary_messages(chunk, words))
        started = time.perf_counter()
        with torch.inference_mode():
            (out,) = generate_batch(model, tokenizer, [ids], [0], sampling)
        seconds.append(time.perf_counter() - started)
        texts.append(out.text.strip())
    return texts, seconds


def token_errors() -> dict[str, float]:
    import json

    from storyteller.models import load_tokenizer

    tokenizer = load_tokenizer("smollm2-135m")
    texts = [json.loads(line)["text"] for path in sorted((ROOT / "corpora/starter").glob("*.jsonl"))
             for line in path.read_text(encoding="utf-8").splitlines()]
    book = BOOK.read_text(encoding="utf-8")
    texts += [book[i:i + 2000] for i in range(40000, 540000, 10000)]
    real = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    rule = [(e - r) / r for e, r in zip(approximate_tokens(texts), real)]
    words = [(round(len(t.split()) * 1.35) - r) / r for t, r in zip(texts, real)]
    return {"texts": len(texts), "mean": statistics.mean(rule),
            "mean_abs": statistics.mean(map(abs, rule)), "max_abs": max(map(abs, rule)),
            "words_mean_abs": statistics.mean(map(abs, words)),
            "words_max_abs": max(map(abs, words))}


def cpu() -> str:
    model, flags = "", []
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name") and not model:
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags") and not flags:
            flags = [f for f in line.split(":", 1)[1].split()
                     if f.startswith(("avx", "amx", "fma"))]
    return f"{model}; flags {' '.join(flags)}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.summary",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=int, default=4, help="stories the model summarises")
    parser.add_argument("--words", type=int, default=120)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    pieces = cuts(holmes_stories(BOOK))
    rows = {}
    started = time.perf_counter()
    extractive = [rolling_summary(chunk, args.words) for chunk, _ in pieces]
    per = (time.perf_counter() - started) / len(pieces)
    rows["extractive"] = ([scores(s, c, l) for s, (c, l) in zip(extractive, pieces)], per)
    chosen = pieces[:args.stories]
    texts, seconds = model_summaries([c for c, _ in chosen], args.words)
    rows["model (SmolLM2-135M, greedy, rep. penalty 1.2)"] = (
        [scores(s, c, l) for s, (c, l) in zip(texts, chosen)], statistics.mean(seconds))
    rows["extractive, same stories"] = (rows["extractive"][0][:args.stories], per)
    errors = token_errors()

    def mean(items, key):
        values = [i[key] for i in items if i[key] is not None]
        return f"{statistics.mean(values):.2f}" if values else "n/a"

    table = ["| method | stories | s per summary | names kept | words kept | faithful words | words |",
             "|---|---|---|---|---|---|---|"]
    for name, (items, secs) in rows.items():
        table.append(f"| {name} | {len(items)} | {secs:.3f} | {mean(items, 'names')} | "
                     f"{mean(items, 'words')} | {mean(items, 'faithful')} | {mean(items, 'length')} |")
    section = "\n".join([
        HEADING, "",
        f"{datetime.date.today().isoformat()}, {cpu()}; 2 cores shared with other work, run "
        "under `nice`. Command: `nice .venv/bin/python -m bench.summary "
        f"--stories {args.stories} --write docs/BENCHMARKS.md`.", "",
        f"The text that falls out of the studio's window (1,500 words before the last 600, cut "
        f"at 60% of each adventure of *The Adventures of Sherlock Holmes*) summarised in "
        f"{args.words} words. Names / words kept: of the chunk's names and content words that "
        "the next 400 words use again, the share the summary has; faithful words: the share of "
        "the summary's content words found in the chunk.", "", *table, "", NOTE, "",
        "Sample model summary:", "", "> " + (texts[0] if texts else "").replace("\n", "\n> "), "",
        f"`approximate_tokens` against the SmolLM2 tokenizer on {errors['texts']} texts "
        f"(the starter stories and 2,000-character passages of the book): mean error "
        f"{errors['mean']:+.1%}, mean absolute {errors['mean_abs']:.1%}, largest "
        f"{errors['max_abs']:.1%} (words × 1.35: mean absolute {errors['words_mean_abs']:.1%}, "
        f"largest {errors['words_max_abs']:.1%}).", ""])
    print(section)
    if args.write:
        from bench.results import replace_section

        replace_section(args.write, HEADING, section)


if __name__ == "__main__":
    main()
