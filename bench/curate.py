"""Curate at scale: a synthetic corpus with planted near-duplicates, written in shards and
curated end to end by the real `storyteller curate` command, once per executor, side by side.

Reports stories/s (wall time, start-up included), peak memory of the command's process and of
its whole process tree (workers and engine tasks included), near-duplicate precision and recall
against the planted pairs, and whether every executor wrote the same bytes (SHA-256 of each
output). Targets on a 2-core machine: >= 630 stories/s (0.9 x 700) for the local path, peak
< 4 GiB for every path, precision and recall >= 0.95, identical outputs.

    .venv/bin/python -m bench.curate --stories 1000000 --shards 64 \
        --executors local,datatrove [--data /tmp/corpus-1m] [--write docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import re
import shutil
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
    """Write `count` stories as one JSONL file; return planted duplicate line → original line."""
    planted = generate_shards(path.parent, count, seed, dup_share, 1, name=path.name)
    return {int(k.rsplit(":", 1)[1]): int(v.rsplit(":", 1)[1]) for k, v in planted.items()}


ORIGINALS_KEPT = 20_000  # duplicates copy one of the last stories written: memory stays flat


def generate_shards(folder: Path, count: int, seed: int, dup_share: float, shards: int,
                    name: str = "") -> dict[str, str]:
    """Write `count` stories as `shards` JSONL files (contiguous, in order); return each planted
    near-duplicate's place (file:line) → its original's place."""
    rng = random.Random(seed)
    vocab = vocabulary()
    common = ["the", "a", "and", "of", "to", "in", "was", "she", "he", "it", "her", "his",
              "that", "with", "for", "on", "at", "as", "but", "they"]
    planted: dict[str, str] = {}
    originals: list[tuple[str, str]] = []
    folder.mkdir(parents=True, exist_ok=True)
    per_shard = -(-count // shards)
    number = 0
    for shard in range(shards):
        path = folder / (name or f"stories-{shard:05d}-of-{shards:05d}.jsonl")
        with path.open("w", encoding="utf-8") as handle:
            for line in range(1, min(per_shard, count - number) + 1):
                number += 1
                place = f"{path}:{line}"
                if originals and rng.random() < dup_share:
                    source_place, source_text = rng.choice(originals)
                    text = edit(source_text, rng.uniform(0.05, 0.10), rng, vocab)
                    planted[place] = source_place
                else:
                    text = make_story(rng, vocab, common)
                    originals.append((place, text))
                    if len(originals) > 2 * ORIGINALS_KEPT:
                        del originals[:ORIGINALS_KEPT]
                record = {"title": f"Story {number}", "text": text}
                if rng.random() < 0.9:
                    record["genre"] = rng.choice(GENRES)
                handle.write(json.dumps(record) + "\n")
    return planted


def tree_pss(pid: int) -> int:
    """Proportional memory of a process and all its descendants: each shared page counted once
    in all (split among the processes that share it), so forked workers are not counted again
    for the pages they inherited — the memory the run really takes."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text()
            total += int(re.search(r"^Pss:\s+(\d+)", rollup, re.M).group(1)) * 1024
            found = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (OSError, AttributeError):
            continue
        stack.extend(int(c) for c in found)
    return total


def tree_rss(pid: int, children: bool = True) -> int:
    """Resident bytes of a process and (with `children`) all its descendants (shared pages
    counted in each, so an upper bound)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) * 1024
            found = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (OSError, AttributeError):
            continue
        if children:
            stack.extend(int(c) for c in found)
    return total


def run_curate(data: Path, out: Path, extra: list[str]) -> tuple[float, int, int, int]:
    """Wall seconds, peak RSS of the command's own process, peak summed RSS of its whole
    process tree (an upper bound: a forked worker counts again what it shares), peak PSS of
    the tree (shared pages counted once)."""
    command = [sys.executable, "-m", "storyteller.cli", "curate", str(data), "--out", str(out),
               "--set", "augment.ratio=0.5", "--set", "filters.min_words=40", *extra]
    env = {**os.environ, "STORYTELLER_QUIET": "1"}
    start = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors, env=env)
        own_peak = tree_peak = pss_peak = 0
        while process.poll() is None:
            own_peak = max(own_peak, tree_rss(process.pid, children=False))
            tree_peak = max(tree_peak, tree_rss(process.pid))
            pss_peak = max(pss_peak, tree_pss(process.pid))
            time.sleep(0.2)
        seconds = time.perf_counter() - start
        if process.returncode != 0:
            errors.seek(0)
            sys.exit(f"curate failed:\n{errors.read().decode(errors='replace')[-4000:]}")
    return seconds, own_peak, tree_peak, pss_peak


def near_duplicate_scores(out: Path, planted: dict[str, str]) -> tuple[float, float, int]:
    """Precision and recall of the stories dropped as duplicates against the planted ones
    (places are file:line)."""
    predicted: dict[str, str] = {}
    for row in map(json.loads, (out / "rejects.jsonl").read_text().splitlines()):
        if row["reason"] in ("duplicate_near", "duplicate_exact"):
            match = re.search(r"(\S+:\d+)$", row["detail"])
            predicted[f"{row['source']}:{row['line']}"] = match.group(1) if match else ""

    def original(place: str) -> str:
        while place in planted:
            place = planted[place]
        return place
    correct = sum(1 for place, kept in predicted.items()
                  if place in planted and original(kept) == original(place))
    precision = correct / len(predicted) if predicted else 1.0
    recall = sum(1 for place in planted if place in predicted) / len(planted) if planted else 1.0
    return precision, recall, len(predicted)


def output_hashes(out: Path) -> dict[str, str]:
    return json.loads((out / "manifest.json").read_text())["outputs"]


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
    parser.add_argument("--shards", type=int, default=64, help="input files the corpus is "
                        "written in (and the tasks curate divides it into)")
    parser.add_argument("--executors", default="local,datatrove",
                        help="comma-separated: local, datatrove (each curates the same corpus)")
    parser.add_argument("--dup-share", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", type=Path, help="keep the generated corpus here and reuse it")
    parser.add_argument("--write", type=Path, help="append the results to this Markdown file")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="extra curate --set overrides")
    args = parser.parse_args()
    executors = [e.strip() for e in args.executors.split(",") if e.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp) / "corpus"
        planted_file = data.with_name(data.name + ".planted.json")
        if planted_file.exists():
            planted = json.loads(planted_file.read_text())
        else:
            started = time.perf_counter()
            planted = generate_shards(data, args.stories, args.seed, args.dup_share, args.shards)
            planted_file.write_text(json.dumps(planted))
            print(f"generated {args.stories:,} stories in {args.shards} shards in "
                  f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
        results, hashes = [], {}
        for executor in executors:
            out = Path(tmp) / f"out-{executor}"
            extra = [x for o in args.overrides for x in ("--set", o)]
            extra += ["--executor", executor]
            seconds, peak, tree_peak, pss_peak = run_curate(data, out, extra)
            precision, recall, dropped = near_duplicate_scores(out, planted)
            hashes[executor] = output_hashes(out)
            manifest = json.loads((out / "manifest.json").read_text())
            results.append({
                "executor": executor, "stories": args.stories, "shards": args.shards,
                "planted_near_duplicates": len(planted), "dropped_as_duplicates": dropped,
                "seconds": round(seconds, 1), "stories_per_second": round(args.stories / seconds, 1),
                "peak_memory_gib": round(peak / 2**30, 2),
                "peak_memory_all_processes_gib": round(tree_peak / 2**30, 2),
                "peak_memory_all_processes_pss_gib": round(pss_peak / 2**30, 2),
                "precision": round(precision, 4), "recall": round(recall, 4),
                "pairs": manifest["counts"]["pairs"]})
            print(json.dumps(results[-1]), flush=True)
            shutil.rmtree(out, ignore_errors=True)
    same = len({json.dumps(h, sort_keys=True) for h in hashes.values()}) == 1
    for result in results:
        rate = result["stories_per_second"]
        targets = {"peak < 4 GiB (all processes, PSS)":
                   result["peak_memory_all_processes_pss_gib"] < 4,
                   "precision >= 0.95": result["precision"] >= 0.95,
                   "recall >= 0.95": result["recall"] >= 0.95}
        if result["executor"] == "local":
            targets["stories/s >= 630 (0.9 x 700)"] = rate >= 630
        for name, ok in targets.items():
            print(f"{'PASS' if ok else 'FAIL'}  {result['executor']}: {name}")
    if len(hashes) > 1:
        print(f"{'PASS' if same else 'FAIL'}  outputs identical across {', '.join(hashes)}")
    if args.write:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=ROOT).stdout.strip() or "-"
        for result in results:
            row = (f"| {datetime.date.today()} | {commit} | {platform.node() or 'this machine'} "
                   f"({os.cpu_count()} cores) | {result['executor']} | {args.stories:,} in "
                   f"{args.shards} files | {len(planted):,} | {result['seconds']:.1f} | "
                   f"{result['stories_per_second']:.0f} | {result['peak_memory_gib']:.2f} / "
                   f"{result['peak_memory_all_processes_gib']:.2f} / "
                   f"{result['peak_memory_all_processes_pss_gib']:.2f} | {result['precision']:.3f} | "
                   f"{result['recall']:.3f} | {'yes' if same else 'NO'} |\n")
            append_row(args.write, "| date | commit | machine | executor |", row)


if __name__ == "__main__":
    main()
