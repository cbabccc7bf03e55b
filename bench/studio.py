"""What the writing studio adds to a story's wait: a writer in headless Chromium pressing Write
on the Write page, against the same request sent straight to the endpoint with StoryClient,
side by side in one invocation, on one `storyteller serve` of the same model.

Measured per contender, over N stories (the same premises, genres, styles and seeds):

- first text: Write pressed (or the request sent) → the first story text on screen (or from the
  stream);
- last text: → the last piece of text (on screen, or from the stream);
- done: → the story is finished (for the studio: the word count under the story, drawn once
  the version is saved and the page redrawn).

    .venv/bin/python -m bench.studio [--model models/quickstart] [--max-tokens 128]
        [--stories 6] [--write docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.results import command_line, machine, replace_section
from bench.serve import PREMISES, start_healthy, start_serve
from storyteller.processes import Process, free_port

ROOT = Path(__file__).resolve().parents[1]

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def start_studio(endpoint: str, port: int, library: Path) -> Process:
    """`storyteller app` on `endpoint`, on loopback `port`, answering Streamlit's health check."""
    return start_healthy([sys.executable, "-m", "storyteller.cli", "app", "--endpoint",
                          endpoint, "--port", str(port), "--library", str(library)],
                         "storyteller app", f"http://127.0.0.1:{port}/_stcore/health",
                         timeout=120)


def direct(url: str, model: str, index: int, max_tokens: int) -> dict:
    from storyteller.prompts import StoryRequest
    from storyteller.client import Completion, StoryClient
    from storyteller.sampling import Sampling

    genre, style, premise = PREMISES[index % len(PREMISES)]
    client = StoryClient(url, timeout=600)
    sampling = Sampling.from_preset("balanced", max_tokens=max_tokens, seed=index)
    started, first, last = time.perf_counter(), None, None
    for piece in client.write(StoryRequest(controls={"genre": genre, "style": style},
                                           premise=premise), model, sampling):
        if isinstance(piece, Completion):
            break
        if first is None and piece.strip():
            first = time.perf_counter() - started
        last = time.perf_counter() - started
    return {"first": first, "last": last, "whole": time.perf_counter() - started}


# Installed in the page before each story: it notes when the story's text changes, so the
# measuring costs the model no CPU (polling the page from here would).
OBSERVE = """() => {
    window.__marks = [];
    const seen = () => {
        const text = document.querySelector('.st-key-story_box [data-testid=stText]');
        const length = text ? text.innerText.trim().length : 0;
        const marks = window.__marks;
        if (length && (!marks.length || marks[marks.length - 1][1] !== length))
            marks.push([performance.now(), length]);
    };
    window.__observer = new MutationObserver(seen);
    window.__observer.observe(document.body, {subtree: true, childList: true,
                                              characterData: true});
}"""
COLLECT = "() => { window.__observer.disconnect(); return [window.__marks, performance.now()]; }"


def fill_request(page, premise: str, genre: str, style: str, seed: int, max_tokens: int) -> None:
    """The Write page's form as a writer fills it (the Advanced section already open)."""
    page.get_by_label("Premise").fill(premise)
    for label, option in (("Genre", genre), ("Style", style)):
        page.get_by_test_id("stSelectbox").filter(has_text=label).click()
        page.get_by_role("option", name=option, exact=True).click()
    for name, value in (("Seed", seed), ("Max tokens", max_tokens)):
        field = page.get_by_role("spinbutton", name=name)
        field.fill(str(value))
        field.press("Enter")


def in_studio(page, index: int, max_tokens: int) -> dict:
    genre, style, premise = PREMISES[index % len(PREMISES)]
    if index:
        page.get_by_role("button", name="New story").click()
    fill_request(page, premise, genre, style, index, max_tokens)
    page.wait_for_timeout(500)
    page.evaluate(OBSERVE)
    done = page.get_by_text(re.compile(r"^[\d,]+ words"))
    started = page.evaluate("() => performance.now()")
    page.get_by_role("button", name="Write").click()
    done.wait_for(timeout=600_000)
    marks, now = page.evaluate(COLLECT)
    times = [t for t, _ in marks]
    return {"first": (times[0] - started) / 1000 if times else None,
            "last": (times[-1] - started) / 1000 if times else None,
            "whole": (now - started) / 1000}


def row(name: str, runs: list[dict]) -> str:
    firsts = [r["first"] for r in runs if r["first"] is not None]
    lasts = [r["last"] for r in runs if r["last"] is not None]
    wholes = [r["whole"] for r in runs]
    return (f"| {name} | {statistics.median(firsts):.2f} | {max(firsts):.2f} | "
            f"{statistics.median(lasts):.2f} | {statistics.median(wholes):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.studio",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/quickstart"))
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--stories", type=int, default=6)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs Debian's chromium package")
    serve_port, app_port = free_port(), free_port()
    url, studio = f"http://127.0.0.1:{serve_port}", f"http://127.0.0.1:{app_port}"
    processes = []
    library = Path(tempfile.mkdtemp()) / "bench-library.sqlite"
    try:
        processes.append(start_serve(args.model, serve_port))
        processes.append(start_studio(url, app_port, library))
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
            process.stop(grace=60)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    ratio = statistics.median(r["whole"] for r in through) / \
        statistics.median(r["whole"] for r in straight)
    streaming = statistics.median(r["last"] for r in through) / \
        statistics.median(r["last"] for r in straight)
    body = "\n".join([
        "```", command_line("bench.studio", f"--model {args.model} --max-tokens "
                            f"{args.max_tokens} --stories {args.stories}"), "```", "",
        f"{datetime.date.today()}, commit {commit}, {machine()}, Debian chromium headless:", "",
        "| contender | first text p50 s | first text max s | last text p50 s "
        "| done p50 s |", "|---|---:|---:|---:|---:|",
        row("the studio (Write pressed → text on screen, in Chromium)", through),
        row("StoryClient straight to the endpoint (request → first piece)", straight), "",
        f"Studio ÷ straight to the endpoint, medians: {streaming:.2f}× to the last text, "
        f"{ratio:.2f}× to done. "
        f"{args.stories} stories, the balanced preset with seeds 0–{args.stories - 1}, at most "
        f"{args.max_tokens} new tokens, one `storyteller serve` (CPU engine) for both."])
    print(body)
    if args.write:
        replace_section(args.write, "## studio (", f"## studio (`bench/studio.py`)\n\n{body}\n")


if __name__ == "__main__":
    main()
