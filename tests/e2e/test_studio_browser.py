"""The studio in a real headless Chromium, as a writer uses it: `storyteller app` against a real
`storyteller serve` of the tiny model; pick a genre and style, write a story and watch it
stream, stop one, edit, rate, export, find it in the library. Screenshots of each step are
saved in test-artifacts/studio/ (or $STORYTELLER_SCREENSHOTS)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from storyteller.studio.library import StoryLibrary
from tests.conftest import ROOT
from tests.integration.served import start_studio

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Flags for a headless browser on a machine with no network beyond loopback.
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
SHOTS = Path(os.environ.get("STORYTELLER_SCREENSHOTS", ROOT / "test-artifacts" / "studio"))


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.fail("no chromium on PATH: install Debian's chromium package (scripts/setup.sh "
                    "does where it can)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def studio(tiny_endpoint, tmp_path):
    url, _, _ = tiny_endpoint
    library = tmp_path / "library.sqlite"
    process, address = start_studio(url, library)
    yield address, library
    process.stop(grace=30)


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def pick(page, label: str, option: str) -> None:
    box = page.get_by_test_id("stSelectbox").filter(has_text=label)
    box.click()
    page.get_by_role("option", name=option, exact=True).click()


def story_text(page) -> str:
    texts = page.locator(".st-key-story_box [data-testid='stText']")
    return texts.first.inner_text() if texts.count() else ""


def test_write_watch_it_stream_rate_and_export(browser, studio, tmp_path):
    address, library = studio
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(address)
    page.get_by_text("What to write").wait_for(timeout=60_000)
    page.get_by_label("Title").fill("The Lamp")
    page.get_by_label("Premise").fill("A lamp that only lights for honest people.")
    pick(page, "Genre", "fable")
    pick(page, "Style", "moral")
    page.get_by_text("Advanced").click()
    tokens = page.get_by_label("Max tokens")
    tokens.fill("600")
    tokens.press("Enter")
    shot(page, "1-request")

    page.get_by_role("button", name="Write").click()
    seen: list[int] = []
    done = page.get_by_text(re.compile(r"^[\d,]+ words"))
    deadline = time.monotonic() + 120
    while not done.count():
        assert time.monotonic() < deadline, "the story did not finish"
        seen.append(len(story_text(page)))
        time.sleep(0.05)
    shot(page, "2-written")
    lengths = sorted(set(n for n in seen if n))
    # Watched it stream: the story grew through several lengths before it was done.
    assert len(lengths) >= 3, seen
    with StoryLibrary(library) as lib:
        [story] = lib.search()
        [first] = lib.generations(story.id)
    assert story.controls == {"genre": "fable", "style": "moral"}
    assert first.text.strip() and first.finish_reason in ("stop", "length")
    page.get_by_text(first.text.strip()[:20], exact=False).first.wait_for()

    # Stop a long one halfway: what was written so far is kept as a stopped version.
    tokens.fill("2000")
    tokens.press("Enter")
    page.get_by_role("button", name="Regenerate").click()
    stop = page.get_by_role("button", name="Stop")
    stop.wait_for(timeout=60_000)
    page.wait_for_timeout(700)  # some of it streamed
    stop.click()
    page.get_by_text("stopped by you").wait_for(timeout=60_000)
    shot(page, "3-stopped")
    with StoryLibrary(library) as lib:
        stopped = lib.generations(story.id)[-1]
    assert stopped.kind == "regenerate" and stopped.finish_reason == "stopped"

    # Edit in place, with markup that must stay text.
    page.get_by_text("Edit", exact=True).click()
    page.get_by_label("Edit the story").fill("<b>Bold</b> claims and *stars*.")
    page.get_by_role("button", name="Save edit").click()
    page.get_by_text("<b>Bold</b> claims and *stars*.").wait_for()
    assert page.locator("b", has_text="Bold").count() == 0
    expect(page.get_by_label("Edit the story")).to_have_count(0)  # the new version is shown

    # Rate it, then export it.
    page.get_by_role("radio", name="4 out of 5 stars").click()
    save = page.get_by_role("button", name="Save rating")
    expect(save).to_be_enabled()
    page.get_by_label("Comment").fill("short and odd")
    page.get_by_label("Comment").press("Enter")
    save.click()
    page.get_by_text("Saved: 4 of 5 stars").wait_for()
    shot(page, "4-rated")
    with page.expect_download() as download:
        page.get_by_role("button", name="Markdown").click()
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    assert exported.startswith("# The Lamp") and "&lt;b>Bold&lt;/b> claims" in exported
    with StoryLibrary(library) as lib:
        edit = lib.generations(story.id)[-1]
    assert (edit.kind, edit.stars, edit.comment) == ("edit", 4, "short and odd")

    # The library finds it.
    page.get_by_role("link", name="Library").click()
    page.get_by_label("Search").fill("honest")
    page.get_by_label("Search").press("Enter")
    page.get_by_text("The Lamp").first.wait_for()
    shot(page, "5-library")
    # The rated version as a fine-tuning record (an edit: trained with the prompt it edited).
    with page.expect_download() as download:
        page.get_by_role("button", name="SFT dataset (1 story)").click()
    [record] = [json.loads(line) for line in
                Path(download.value.path()).read_text(encoding="utf-8").splitlines()]
    assert record["rating"] == 4 and record["genre"] == "fable" and record["style"] == "moral"
    assert record["messages"][-1] == {"role": "assistant",
                                      "content": "<b>Bold</b> claims and *stars*."}
    page.close()


def test_readme_picture_is_drawn_from_the_running_studio(tiny_endpoint, tmp_path):
    """scripts/studio_screenshot.py serves the model, opens the studio, writes a story and saves
    the Write page: a 1400×900 PNG, drawn only once the story is done."""
    from PIL import Image

    _, _, model_dir = tiny_endpoint
    out = tmp_path / "write.png"
    result = subprocess.run([sys.executable, "-m", "scripts.studio_screenshot",
                             "--model", str(model_dir), "--out", str(out), "--max-tokens", "24"],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    with Image.open(out) as picture:
        assert picture.size == (1400, 900)
        # Not a blank page: the drawn page has text and controls in many shades.
        assert len(picture.convert("L").getcolors(maxcolors=256 * 256) or []) > 32


def test_readme_picture_script_refuses_a_folder_that_is_not_a_model(tmp_path):
    result = subprocess.run([sys.executable, "-m", "scripts.studio_screenshot",
                             "--model", str(tmp_path), "--out", str(tmp_path / "x.png")],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 1 and "storyteller merge" in result.stderr
    assert not (tmp_path / "x.png").exists()
