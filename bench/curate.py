"""Curate at scale: a synthetic corpus with planted near-duplicates, curated end to end.

Reports stories/s (wall time of the real `storyteller curate` command, start-up included), peak
memory of that process, and near-duplicate precision and recall against the planted pairs.
Targets on a 2-core machine: >= 500 stories/s, < 4 GiB, precision and recall >= 0.95.

    .venv/bin/python -m bench.curate --stories 100000 [--write docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENRES = ["fable", "fairy tale", "mystery", "science fiction", "ghost story", "adventure",
          "romance", "slice of life"]


def vocabulary() -> list[str]:
    """The words of the starter corpus, so synthetic stories tokenize like English prose."""
    words = set()
    for path in sorted((ROOT / "corpora" / "starter").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            words.update(re.findall(r"[a-z]+", json.loads(line)["text"].lower()))
    return sorted(words)


def make_story(rng: random.Random, vocab: list[str], common: list[str]) -> str:
    sentences = []
    for _ in range(rng.randint(12, 24)):
        length = rng.randint(6, 16)
        words = [rng.choice(common) if rng.random() < 0.35 else rng.choice(vocab) for _ in range(length)]
        sentences.append(" ".join(words).capitalize() + ".")
    paragraphs, start = [], 0
    while start < len(sentences):
        step = rng.randint(2, 5)
        paragraphs.append(" ".join(sentences[start:start + step]))
        start += step
    return "\n\n".join(paragraphs)


def edit(text: str, share: float, rng: random.Random, vocab: list[str]) -> str:
    """Substitute, insert or delete `share` of the words."""
    tokens = text.split(" ")
    for _ in range(max(1, int(share * len(tokens)))):
        i = rng.randrange(len(tokens))
        action = rng.random()
        if action < 0.6:
            tokens[i] = rng.choice(vocab)
        elif action < 0.8:
            tokens.insert(i, rng.choice(vocab))
        elif len(tokens) > 10:
            del tokens[i]
    return " ".join(tokens)


def generate(path: Path, count: int, seed: int, dup_share: float) -> dict[int, int]:
    """Write `count` stories as JSONL; return planted duplicate line → original line."""
    rng = random.Random(seed)
    vocab = vocabulary()
    common = ["the", "a", "and", "of", "to", "in", "was", "she", "he", "it", "her", "his",
              "that", "with", "for", "on", "at", "as", "but", "they"]
    planted: dict[int, int] = {}
    originals: list[tuple[int, str]] = []
    with path.open("w", encoding="utf-8") as handle:
        for line in range(1, count + 1):
            if originals and rng.random() < dup_share:
                source_line, source_text = rng.choice(originals)
                text = edit(source_text, rng.uniform(0.05, 0.10), rng, vocab)
                planted[line] = source_line
            else:
                text = make_story(rng, vocab, common)
                originals.append((line, text))
            record = {"title": f"Story {line}", "text": text}
            if rng.random() < 0.9:
                record["genre"] = rng.choice(GENRES)
            handle.write(json.dumps(record) + "\n")
    return planted


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (shared pages counted in each, so
    an upper bound)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) * 1024
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (OSError, AttributeError):
            continue
        stack.extend(int(c) for c in children)
    return total


def run_curate(data: Path, out: Path, extra: list[str]) -> tuple[float, int, int]:
    """Wall seconds, peak RSS of the command's own process, peak RSS of its whole process tree."""
    command = [sys.executable, "-m", "storyteller.cli", "curate", str(data), "--out", str(out),
               "--set", "augment.ratio=0.5", "--set", "filters.min_words=40", *extra]
    env = {**os.environ, "STORYTELLER_QUIET": "1"}
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    tree_peak = 0
    while process.poll() is None:
        tree_peak = max(tree_peak, tree_rss(process.pid))
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    _, stderr = process.communicate()
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if process.returncode != 0:
        sys.exit(f"curate failed:\n{stderr}")
    return seconds, peak_kib * 1024, tree_peak


def near_duplicate_scores(out: Path, planted: dict[int, int]) -> tuple[float, float, int]:
    """Precision and recall of the dropped duplicates against the planted pairs."""
    predicted: dict[int, int] = {}
    for row in map(json.loads, (out / "rejects.jsonl").read_text().splitlines()):
        if row["reason"] in ("duplicate_near", "duplicate_exact"):
            match = re.search(r":(\d+)$", row["detail"])
            predicted[row["line"]] = int(match.group(1)) if match else -1
    root = {}

    def original(line: int) -> int:
        while line in planted:
            line = planted[line]
        return line
    for line in list(planted) + list(predicted):
        root[line] = original(line)
    correct = sum(1 for line, rep in predicted.items()
                  if line in planted and original(rep) == root[line])
    precision = correct / len(predicted) if predicted else 1.0
    recall = sum(1 for line in planted if line in predicted) / len(planted) if planted else 1.0
    return precision, recall, len(predicted)


def append_row(path: Path, header_start: str, row: str) -> None:
    """Add `row` at the end of the Markdown table whose header starts with `header_start`."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    lines.insert(end, row)
    path.write_text("".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.curate",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=int, default=100_000)
    parser.add_argument("--dup-share", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--write", type=Path, help="append the results to this Markdown file")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="extra curate --set overrides")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "synthetic.jsonl", Path(tmp) / "out"
        planted = generate(data, args.stories, args.seed, args.dup_share)
        extra = [x for o in args.overrides for x in ("--set", o)]
        seconds, peak, tree_peak = run_curate(data, out, extra)
        precision, recall, dropped = near_duplicate_scores(out, planted)
        manifest = json.loads((out / "manifest.json").read_text())
    rate = args.stories / seconds
    result = {
        "stories": args.stories, "planted_near_duplicates": len(planted), "dropped_as_duplicates": dropped,
        "seconds": round(seconds, 1), "stories_per_second": round(rate, 1),
        "peak_memory_gib": round(peak / 2**30, 2),
        "peak_memory_all_processes_gib": round(tree_peak / 2**30, 2), "precision": round(precision, 4),
        "recall": round(recall, 4), "pairs": manifest["counts"]["pairs"],
    }
    print(json.dumps(result, indent=2))
    targets = {"stories/s >= 500": rate >= 500,
               "peak < 4 GiB (all processes)": max(peak, tree_peak) < 4 * 2**30,
               "precision >= 0.95": precision >= 0.95, "recall >= 0.95": recall >= 0.95}
    for name, ok in targets.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    if args.write:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=ROOT).stdout.strip() or "-"
        row = (f"| {datetime.date.today()} | {commit} | {platform.node() or 'this machine'} ({os.cpu_count()} cores) "
               f"| {args.stories:,} | {len(planted):,} | {seconds:.1f} | {rate:.0f} | "
               f"{peak / 2**30:.2f} / {tree_peak / 2**30:.2f} | {precision:.3f} | {recall:.3f} |\n")
        append_row(args.write, "| date | commit | machine | stories |", row)


if __name__ == "__main__":
    main()
