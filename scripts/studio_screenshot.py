"""Draw the README's pictures of the studio from the running product: `storyteller serve` of a
model, `storyteller app` on it, a writer in headless Chromium.

- Write page (docs/studio-write.png): a title, a premise, a genre and a style, Write, the story.
- Document page (--page document: docs/studio-candidates.png, docs/studio-document.png,
  docs/studio-alternatives.png): a pasted draft with notes and a direction, three candidates
  side by side, the second kept; who wrote what and the context inspector; a word's
  alternatives.

    .venv/bin/python -m scripts.studio_screenshot [--model models/quickstart]
        [--page write|document] [--out docs/studio-write.png] [--seed 3] [--max-tokens 256]

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


DRAFT = ("Gretel woke before the birds. The fire in the hut had gone out, and her brother Hansel "
         "was already at the door, turning a white pebble over in his fingers.\n\n"
         "\"Father says we go to the forest today,\" he whispered. \"All of us.\"\n\n"
         "Their stepmother handed each of them a crust of bread and said nothing at all. They "
         "walked for an hour, then two, until the path was only moss and the trees closed "
         "over their heads like a roof.")
NOTES = ("Gretel: the younger sister, quick-witted; keeps her bread for later.\n"
         "Hansel: her brother, drops white pebbles to find the way home.")
DIRECTION = "Night falls; the children are alone and Hansel looks for his pebbles in the moonlight."


def settle(page) -> None:
    """Until Streamlit has finished redrawing (a click during a redraw can be lost)."""
    page.wait_for_timeout(1200)
    page.get_by_test_id("stStatusWidget").wait_for(state="detached", timeout=600_000)


def commit(page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Control+Enter" if "\n" in value or len(value) > 60 else "Enter")
    settle(page)


def document_pictures(page, out: Path, seed: int, max_tokens: int) -> list[Path]:
    page.get_by_role("link", name="Document").click()
    page.get_by_label("Story", exact=True).wait_for(timeout=60_000)
    commit(page, "Max tokens", str(max_tokens))
    commit(page, "Seed", str(seed))
    commit(page, "Candidates", "3")
    commit(page, "Story", DRAFT)
    commit(page, "Notes", NOTES)
    commit(page, "Direction", DIRECTION)
    page.get_by_role("button", name="Continue").click()
    page.get_by_text("Keep this one").first.wait_for(timeout=900_000)
    settle(page)
    pictures = [out / "studio-candidates.png"]
    page.get_by_text("Keep this one").first.scroll_into_view_if_needed()
    page.mouse.move(10, 890)
    page.wait_for_timeout(300)
    page.screenshot(path=str(pictures[-1]))
    page.get_by_role("button", name="Keep this one").nth(1).click()
    settle(page)
    page.evaluate(TO_TOP)
    page.get_by_text("Who wrote what").click()
    page.get_by_text("What is sent (context inspector)").click()
    settle(page)
    # The page scrolls inside Streamlit's own container, not the window: a tall window shows
    # the story, who wrote what and the inspector in one picture.
    page.set_viewport_size({"width": 1400, "height": 1900})
    page.evaluate(TO_TOP)
    page.mouse.move(10, 1890)
    page.wait_for_timeout(800)
    pictures.append(out / "studio-document.png")
    page.screenshot(path=str(pictures[-1]))
    page.set_viewport_size({"width": 1400, "height": 900})
    page.get_by_text("Word alternatives").click()
    settle(page)
    page.get_by_text("Branch from here").scroll_into_view_if_needed()
    pictures.append(out / "studio-alternatives.png")
    page.screenshot(path=str(pictures[-1]))
    return pictures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.studio_screenshot",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/quickstart"),
                        help="a merged model directory (storyteller merge)")
    parser.add_argument("--page", choices=("write", "document"), default="write")
    parser.add_argument("--out", type=Path, default=None,
                        help="the picture (write) or the folder of pictures (document); "
                             "default: docs/")
    parser.add_argument("--genre", default="fable")
    parser.add_argument("--style", default="moral")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args()
    if args.page == "write" and not (args.model / "storyteller.json").is_file():
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
            if args.page == "document":
                made = document_pictures(page, args.out or ROOT / "docs", args.seed,
                                         args.max_tokens)
                browser.close()
                print("wrote " + ", ".join(map(str, made)))
                return
            args.out = args.out or ROOT / "docs" / "studio-write.png"
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
