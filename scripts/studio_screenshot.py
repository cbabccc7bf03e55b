"""Draw the README's picture of the Write page (docs/studio-write.png) from the running product:
`storyteller serve` of a model, `storyteller app` on it, a writer in headless Chromium filling in
a title, a premise, a genre and a style, pressing Write and waiting for the story to finish.

    .venv/bin/python -m scripts.studio_screenshot [--model models/quickstart]
        [--out docs/studio-write.png] [--seed 3] [--max-tokens 256]

The seed makes the picture the same story on the same model and CPU engine; re-run it whenever
the Write page changes, so the README shows the page as it is.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
from pathlib import Path

from bench.serve import start_serve
from bench.studio import CHROMIUM_ARGS, fill_request, start_studio
from storyteller.processes import free_port, port_is_free

ROOT = Path(__file__).resolve().parents[1]

# Pressing Write scrolls the page to the story; the picture starts at the page's top.
TO_TOP = "() => document.querySelectorAll('*').forEach(e => { if (e.scrollTop) e.scrollTop = 0; })"
TITLE = "The Lighthouse Fox"
PREMISE = "A fox guards a lighthouse on a stormy coast."


def write_story(page, genre: str, style: str, seed: int, max_tokens: int) -> None:
    page.get_by_label("Title").fill(TITLE)
    page.get_by_text("Advanced").click()
    fill_request(page, PREMISE, genre, style, seed, max_tokens)
    page.get_by_text("Advanced").click()  # folded again: the picture shows the everyday page
    page.wait_for_timeout(500)
    page.get_by_role("button", name="Write").click()
    page.get_by_text(re.compile(r"^[\d,]+ words")).wait_for(timeout=600_000)
    page.wait_for_timeout(1000)  # the last redraw settles


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.studio_screenshot",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/quickstart"),
                        help="a merged model directory (storyteller merge)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "studio-write.png")
    parser.add_argument("--genre", default="fable")
    parser.add_argument("--style", default="moral")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args()
    if not (args.model / "storyteller.json").is_file():
        raise SystemExit(f"{args.model} is not a merged model directory (no storyteller.json); "
                         "make one with `storyteller merge --run runs/NAME`")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs a Chromium on PATH: Debian's chromium package")
    from playwright.sync_api import sync_playwright

    # The endpoint on its usual port where that is free, so the sidebar shows the usual URL.
    serve_port = 8000 if port_is_free("127.0.0.1", 8000) else free_port()
    app_port = free_port()
    url, studio = f"http://127.0.0.1:{serve_port}", f"http://127.0.0.1:{app_port}"
    library = Path(tempfile.mkdtemp()) / "screenshot-library.sqlite"
    processes = []
    try:
        processes.append(start_serve(args.model, serve_port))
        processes.append(start_studio(url, app_port, library))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(studio)
            page.get_by_text("What to write").wait_for(timeout=60_000)
            write_story(page, args.genre, args.style, args.seed, args.max_tokens)
            # From the top of the page, with the pointer where it highlights nothing.
            page.evaluate(TO_TOP)
            page.mouse.move(1000, 890)
            page.wait_for_timeout(300)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out))
            browser.close()
    finally:
        for process in processes:
            process.stop(grace=60)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
