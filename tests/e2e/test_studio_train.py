"""The Train page in a real headless Chromium, as a writer who never used a terminal: upload two
story files, see what was read, pick the recipe (the tiny model, a few steps), start training
and watch the curve grow, reload the page mid-run and find it still running, pause and resume,
evaluate against the base, use the model and write with it. Screenshots go to
test-artifacts/studio-train/ (or $STORYTELLER_SCREENSHOTS/train)."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from storyteller.studio import trainer
from storyteller.studio.library import StoryLibrary
from storyteller.studio import training as tr
from tests.conftest import ROOT, STARTER
from tests.e2e.test_studio_browser import browser, pick  # noqa: F401  (the fixture)
from tests.integration.served import start_studio

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SHOTS = Path(os.environ["STORYTELLER_SCREENSHOTS"]) / "train" \
    if os.environ.get("STORYTELLER_SCREENSHOTS") else ROOT / "test-artifacts" / "studio-train"


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture()
def studio(tiny_endpoint, tmp_path):
    url, _, _ = tiny_endpoint
    library = tmp_path / "library.sqlite"
    process, address = start_studio(url, library)
    yield address, library
    process.stop(grace=30)
    for job in tr.list_jobs(tr.training_root(library)):  # nothing left running
        trainer.pause(job)


def story_files(folder: Path) -> list[Path]:
    """Two small files a writer might have: fables as JSONL records, mysteries as plain text
    separated by blank lines."""
    folder.mkdir()
    fables = [json.loads(line) for line in (STARTER / "fable.jsonl").read_text().splitlines()]
    mysteries = [json.loads(line)["text"] for line in
                 (STARTER / "mystery.jsonl").read_text().splitlines()]
    first = folder / "my fables.jsonl"
    first.write_text("".join(json.dumps(f) + "\n" for f in fables[:8]))
    second = folder / "mysteries.txt"
    second.write_text("\n\n\n\n".join(mysteries[:5]))
    return [first, second]


def step_shown(page) -> int:
    text = page.get_by_text(re.compile(r"^Training: step \d+ of \d+")).first.inner_text()
    return int(re.search(r"step (\d+)", text).group(1))


def option(page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")
    page.wait_for_timeout(300)


def test_train_a_model_from_uploads_pause_resume_evaluate_and_write(browser, studio,  # noqa: F811
                                                                     tmp_path):
    address, library = studio
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(f"{address}/train")
    page.get_by_text("Train a model of your own style").wait_for(timeout=60_000)
    page.get_by_label("Name your model", exact=True).fill("My Fables")
    page.get_by_role("button", name="Create").click()

    # 1-2: upload two files, read them.
    page.locator("input[type=file]").set_input_files([str(p) for p in story_files(tmp_path / "in")])
    page.get_by_text("Uploaded: my fables.jsonl, mysteries.txt").wait_for(timeout=30_000)
    page.get_by_role("button", name="Read my stories").click()
    page.get_by_text("13 stories found in 2 files").wait_for(timeout=60_000)
    [job] = tr.list_jobs(tr.training_root(library))
    assert sorted(p.name for p in tr.uploads(job)) == ["my fables.jsonl", "mysteries.txt"]
    shot(page, "1-read")

    # 3: the quick start on the tiny model: enough steps that a pause lands mid-run on an idle
    # machine (tiny steps take a fraction of a second there), a check every ten.
    page.get_by_text("Options").click()
    option(page, "Base model", "tiny-random")
    option(page, "Steps", "40")
    option(page, "Check every (steps)", "10")
    option(page, "Sample length (tokens)", "8")
    shot(page, "2-recipe")

    # 4: train; the curve grows.
    page.get_by_role("button", name="Start training").click()
    page.get_by_text(re.compile(r"^Training: step [1-9]")).wait_for(timeout=180_000)
    first = step_shown(page)
    deadline = time.monotonic() + 120
    while step_shown(page) <= first:
        assert time.monotonic() < deadline, "the step shown did not grow"
        time.sleep(0.5)
    assert page.locator("[data-testid='stVegaLiteChart']").count() >= 1
    shot(page, "3-training")

    # A reload mid-run finds it still running.
    page.reload()
    page.get_by_text(re.compile(r"^Training: step \d+ of 40")).wait_for(timeout=60_000)
    assert trainer.runner_alive(job)

    # Pause: a checkpoint, the runner gone; Resume goes on to the end.
    page.get_by_role("button", name="Pause").click()
    page.get_by_text(re.compile(r"^Paused at step \d+ of 40")).wait_for(timeout=120_000)
    paused_at = tr.read_progress(job)
    assert not trainer.runner_alive(job) and paused_at.checkpoints
    assert paused_at.step < 40
    shot(page, "4-paused")
    page.get_by_role("button", name="Resume").click()
    page.get_by_text("Training finished: 40 steps.").wait_for(timeout=240_000)
    done = tr.read_progress(job)
    assert done.step == 40 and [s for s, _ in done.val][-1] == 40
    assert page.get_by_text("No sample yet").count() == 0  # a sample story is shown
    shot(page, "5-trained")

    # 5: evaluate against the base, small.
    option(page, "Prompts", "2")
    option(page, "Max tokens", "16")
    page.get_by_role("button", name="Evaluate").click()
    page.get_by_text("Your model", exact=True).wait_for(timeout=240_000)
    page.locator("strong", has_text="Base model").wait_for()
    result = tr.evaluation_result(job)
    assert result["headline"] and result["tuned_story"]
    shot(page, "6-evaluated")

    # 6: use it: merged, verified, loaded by the endpoint, picked on the Write page.
    page.get_by_role("button", name="Use this model").click()
    page.get_by_text("The endpoint serves your model as my-fables").wait_for(timeout=300_000)
    assert tr.usable_model(job) is not None
    shot(page, "7-in-use")
    page.get_by_role("link", name="Write with it").click()
    page.get_by_text("What to write").wait_for(timeout=60_000)
    picker = page.get_by_test_id("stSidebar").get_by_role("combobox", name="Model")
    expect(picker).to_have_value("my-fables", timeout=30_000)
    page.get_by_label("Premise").fill("A fox who counts the stars.")
    page.get_by_text("Advanced").click()
    tokens = page.get_by_label("Max tokens")
    tokens.fill("24")
    tokens.press("Enter")
    page.get_by_role("button", name="Write").click()
    page.get_by_text(re.compile(r"^[\d,]+ words")).wait_for(timeout=120_000)
    shot(page, "8-written")
    with StoryLibrary(library) as lib:
        [story] = lib.search()
        [written] = lib.generations(story.id)
    assert written.model == "my-fables" and written.text.strip()
    page.close()
