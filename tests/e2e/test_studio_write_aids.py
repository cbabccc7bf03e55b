"""The Write page's writing aids in a real headless Chromium, as a writer uses them, against a
real `storyteller serve` of the tiny model (llama.cpp): three candidates from one premise, the
second kept and found in the preference export; a banned word gone from a regeneration with the
same seed; a word's alternatives and a branch from one. Screenshots go to
test-artifacts/studio/ (or $STORYTELLER_SCREENSHOTS)."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from storyteller.studio import draft
from storyteller.studio.library import StoryLibrary
from tests.e2e.test_studio_browser import browser, shot, studio  # noqa: F401 (fixtures)
from tests.e2e.test_studio_document import (branch_from_second_alternative, commit,
                                            kept_second_is_exported, number, settle,
                                            versions, wait_for)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

PREMISE = "A lighthouse keeper finds a letter addressed to the sea."


def open_write(browser, address, max_tokens: int, seed: int | None = None):  # noqa: F811
    """The Write page with a premise, and the Advanced panel's max tokens (and seed) set."""
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(address)
    page.get_by_text("What to write").wait_for(timeout=60_000)
    commit(page, "Premise", PREMISE)
    page.get_by_text("Advanced").click()
    number(page, "Max tokens", max_tokens)
    if seed is not None:
        number(page, "Seed", seed)
    return page


def write_once(page, library, kind: str, before: int) -> list:
    """Press Write or Regenerate (`kind`) and wait for the version it writes."""
    settle(page)
    page.get_by_role("button", name=kind.title(), exact=True).click()
    try:
        made = wait_for(lambda: (made := versions(library, kind)) and len(made) > before
                        and all(v.finish_reason for v in made) and made, f"the {kind}")
    except AssertionError:
        shot(page, f"write-aids-{kind}-failed")
        alerts = page.get_by_test_id("stAlert").all_inner_texts()
        raise AssertionError(f"no {kind}; the page says: {alerts}") from None
    # Saved before the page has redrawn it: what is typed meanwhile goes to the old widgets.
    settle(page)
    return made


def test_three_candidates_keep_the_second_and_export_the_pair(browser, studio, tmp_path):  # noqa: F811
    address, library = studio
    page = open_write(browser, address, 16)
    number(page, "Candidates", 3)
    page.get_by_role("button", name="Write", exact=True).click()
    keep = page.get_by_role("button", name="Keep this one")
    expect(keep).to_have_count(3, timeout=120_000)
    keep.first.scroll_into_view_if_needed()  # the page scrolls inside Streamlit's own frame
    shot(page, "write-aids-1-candidates")
    made = versions(library, "write")
    # Three first drafts of one request, side by side; none is the story until one is kept.
    assert len(made) == 3 and {v.parent_id for v in made} == {None}
    assert len({json.dumps(v.messages) for v in made}) == 1
    assert all(v.details["answer"] == v.text and v.details["candidates"] == 3 for v in made)
    keep.nth(1).click()
    expect(keep).to_have_count(0, timeout=30_000)
    settle(page)
    # The kept one is the story on the page, with Continue and Regenerate back.
    expect(page.get_by_role("button", name="Continue")).to_be_visible()
    records = kept_second_is_exported(library, tmp_path, made, lambda v: v.text)
    assert {r["premise"] for r in records} == {PREMISE}
    page.close()


def test_a_banned_word_is_gone_with_the_same_seed(browser, studio):  # noqa: F811
    address, library = studio
    page = open_write(browser, address, 24, seed=7)
    [free] = write_once(page, library, "write", 0)
    words = re.findall(r"[A-Za-z]{3,}", free.text)
    assert words, free.text
    banned = words[0]
    page.get_by_text("Banned words and phrases").click()
    commit(page, "This story's banned list", banned)
    # The story's list is kept with the story, and the same request is asked again with it.
    with StoryLibrary(library) as lib:
        [story] = lib.search()
        assert lib.story(story.id).banned == [banned]
    [again] = write_once(page, library, "regenerate", 0)
    shot(page, "write-aids-2-banned")
    assert again.messages == free.messages and again.settings["seed"] == 7
    assert not re.search(rf"\b{re.escape(banned)}\b", again.text, re.IGNORECASE), \
        (banned, again.text)
    report = again.details["steering"]["banned"]
    assert set(report) >= {"words_biased", "phrases_cut", "retries"}
    expect(page.get_by_text(re.compile(r"Banned list: \d+ words kept out"))).to_be_visible()
    page.close()


def test_alternatives_of_a_word_and_a_branch_from_one(browser, studio):  # noqa: F811
    address, library = studio
    page = open_write(browser, address, 16)
    [first] = write_once(page, library, "write", 0)
    assert first.details["logprobs"], "no token choices came back"
    settle(page)
    branch_from_second_alternative(page, "write-aids-3-alternatives")
    branch = wait_for(lambda: [v for v in versions(library)
                               if v.details.get("alternative") and v.finish_reason],
                      "the branch")[0]
    # A new first draft beside the first: the text before the word kept, the chosen word in
    # its place, the model going on from there, asked with the story's own prompt.
    assert branch.kind == "regenerate" and branch.parent_id is None and branch.id != first.id
    assert branch.messages == first.messages
    # The word offered first (the one picked): the first with alternatives.
    tokens = first.details["logprobs"]
    word = next(w for w in draft.words_of(tokens) if w.text.strip() and w.alternatives)
    head = "".join(token[0] for token in tokens)[:word.start]
    assert branch.details["alternative"]["word"] == word.text.strip()
    chosen = branch.details["alternative"]["chosen"]
    assert branch.text.startswith(head) and branch.text[len(head):].lstrip().startswith(chosen)
    settle(page)
    expect(page.get_by_text("Version 2")).to_be_visible()
    shot(page, "write-aids-4-branch")
    page.close()
