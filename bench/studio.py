"""What the writing studio adds to a story's wait: a writer in headless Chromium pressing Write
on the Write page, against the same request sent straight to the endpoint with StoryClient,
side by side in one invocation, on one `storyteller serve` of the same model.

Measured per contender, over N stories (the same premises, genres, styles and seeds):

- first text: Write pressed (or the request sent) → the first story text on screen (or from the
  stream);
- whole story: → the last piece (for the studio: the word count under the story, drawn once
  the version is saved).

    .venv/bin/python bench/studio.py [--model models/quickstart] [--max-tokens 128]
        [--stories 6] [--write docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from markdown import machine, replace_section  # noqa: E402
from serve import PREMISES, wait  # noqa: E402

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def start(command: list[str], health: str, process_wait) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True,
                               env={**os.environ, "STORYTELLER_QUIET": "1"})
    process_wait(health, process)
    return process


def wait_studio(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"storyteller app exited: {process.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("the studio did not start")


def direct(url: str, model: str, index: int, max_tokens: int) -> dict:
    from storyteller.prompts import StoryRequest
    from storyteller.serve.client import Completion, Sampling, StoryClient

    genre, style, premise = PREMISES[index % len(PREMISES)]
    client = StoryClient(url, timeout=600)
    sampling = Sampling.from_preset("balanced", max_tokens=max_tokens, seed=index)
    started, first = time.perf_counter(), None
    for piece in client.write(StoryRequest(controls={"genre": genre, "style": style},
                                           premise=premise), model, sampling):
        if isinstance(piece, Completion):
            break
        if first is None and piece.strip():
            first = time.perf_counter() - started
    return {"first": first, "whole": time.perf_counter() - started}


def in_studio(page, index: int, max_tokens: int) -> dict:
    genre, style, premise = PREMISES[index % len(PREMISES)]
    if index:
        page.get_by_role("button", name="New story").click()
    page.get_by_label("Premise").fill(premise)
    for label, option in (("Genre", genre), ("Style", style)):
        page.get_by_test_id("stSelectbox").filter(has_text=label).click()
        page.get_by_role("option", name=option, exact=True).click()
    seed = page.get_by_label("Seed")
    seed.fill(str(index))
    seed.press("Enter")
    tokens = page.get_by_label("Max tokens")
    tokens.fill(str(max_tokens))
    tokens.press("Enter")
    page.wait_for_timeout(500)
    story = page.locator(".st-key-story_box [data-testid='stText']")
    done = page.get_by_text(re.compile(r"^[\d,]+ words"))
    started, first = time.perf_counter(), None
    page.get_by_role("button", name="Write").click()
    while not done.count():
        if first is None and story.count() and story.first.inner_text().strip():
            first = time.perf_counter() - started
        time.sleep(0.01)
    return {"first": first, "whole": time.perf_counter() - started}


def row(name: str, runs: list[dict]) -> str:
    firsts = [r["first"] for r in runs if r["first"] is not None]
    wholes = [r["whole"] for r in runs]
    return (f"| {name} | {statistics.median(firsts):.2f} | {max(firsts):.2f} | "
            f"{statistics.median(wholes):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/quickstart"))
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--stories", type=int, default=6)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from storyteller.serve.engines import free_port

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs Debian's chromium package")
    serve_port, app_port = free_port(), free_port()
    url, studio = f"http://127.0.0.1:{serve_port}", f"http://127.0.0.1:{app_port}"
    processes = []
    library = Path(tempfile.mkdtemp()) / "bench-library.sqlite"
    try:
        processes.append(start([sys.executable, "-m", "storyteller.cli", "serve", "--model",
                                str(args.model), "--port", str(serve_port)],
                               url, wait))
        processes.append(start([sys.executable, "-m", "storyteller.cli", "app", "--endpoint",
                                url, "--port", str(app_port), "--library", str(library)],
                               studio, wait_studio))
        model = args.model.name
        direct(url, model, 0, 8)  # warm-up
        straight = [direct(url, model, i, args.max_tokens) for i in range(args.stories)]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(studio)
            page.get_by_text("What to write").wait_for(timeout=60_000)
            page.get_by_text("Advanced").click()
            through = [in_studio(page, i, args.max_tokens) for i in range(args.stories)]
            browser.close()
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    ratio = statistics.median(r["whole"] for r in through) / \
        statistics.median(r["whole"] for r in straight)
    body = "\n".join([
        "```", f".venv/bin/python bench/studio.py --model {args.model} --max-tokens "
        f"{args.max_tokens} --stories {args.stories}", "```", "",
        f"{datetime.date.today()}, commit {commit}, {machine()}, Debian chromium headless:", "",
        "| contender | first text p50 s | first text max s | whole story p50 s |",
        "|---|---:|---:|---:|",
        row("the studio (Write pressed → text on screen, in Chromium)", through),
        row("StoryClient straight to the endpoint (request → first piece)", straight), "",
        f"Whole story in the studio ÷ straight to the endpoint: {ratio:.2f}× (median). "
        f"{args.stories} stories, the balanced preset with seeds 0–{args.stories - 1}, at most "
        f"{args.max_tokens} new tokens, one `storyteller serve` (CPU engine) for both."])
    print(body)
    if args.write:
        replace_section(args.write, "## studio (", f"## studio (`bench/studio.py`)\n\n{body}\n")


if __name__ == "__main__":
    main()
