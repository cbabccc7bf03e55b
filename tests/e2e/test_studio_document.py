"""The Document page in a real headless Chromium, one test per feature as a writer uses it,
against a real `storyteller serve` of the tiny model: paste a draft and continue it; notes the
inspector shows with every continuation; candidates side by side, one kept and found in the
preference export; a banned word gone with the same seed; a word's alternatives and a branch
from one. Screenshots go to test-artifacts/studio/ (or $STORYTELLER_SCREENSHOTS)."""

from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import expect

from storyteller.studio.library import StoryLibrary
from tests.conftest import run_cli
from tests.e2e.test_studio_browser import browser, shot, studio  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

DRAFT = ("Mira kept the lighthouse on Gull Rock for eleven years. Every night she climbed the "
         "ninety steps, wound the clockwork and wrote one line in the log.\n\nOn the night the "
         "letter came, the sea was flat and grey.")
NOTE = "Mira: 34, keeper of the Gull Rock light. Her brother Tomas left in 1962."


def open_document(browser, address):  # noqa: F811 (the fixture)
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(address)
    page.get_by_role("link", name="Document").click()
    page.get_by_label("Story", exact=True).wait_for(timeout=60_000)
    return page


def settle(page) -> None:
    """Until the page has finished its run: a click made while Streamlit redraws the page
    after a change can be lost."""
    # Streamlit shows its running indicator only after a moment: wait past that first.
    page.wait_for_timeout(1200)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=60_000)


def commit(page, label: str, value: str) -> None:
    """Type into a text area and leave it, as a writer does (Streamlit takes the value then)."""
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Control+Enter")
    settle(page)


def number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    settle(page)


def versions(library, kind: str | None = None) -> list:
    with StoryLibrary(library) as lib:
        stories = lib.search()
        found = [v for s in stories for v in lib.generations(s.id)]
    return [v for v in found if kind is None or v.kind == kind]


def wait_for(predicate, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout:.0f} s"
        time.sleep(0.2)


def continue_once(page, library, done_before: int) -> list:
    settle(page)
    page.get_by_role("button", name="Continue").click()
    try:
        return wait_for(lambda: (made := versions(library, "continue")) and
                        len(made) > done_before and all(v.finish_reason for v in made) and made,
                        "the continuation")
    except AssertionError:
        shot(page, "document-failed")
        alerts = page.get_by_test_id("stAlert").all_inner_texts()
        raise AssertionError(f"no continuation; the page says: {alerts}") from None


def test_paste_a_draft_and_continue_it(browser, studio):  # noqa: F811
    address, library = studio
    page = open_document(browser, address)
    number(page, "Max tokens", 24)
    commit(page, "Story", DRAFT)
    # The paste is a version before anything is sent: nothing typed is lost.
    [pasted] = wait_for(lambda: versions(library, "edit"), "saving the paste")
    assert pasted.text == DRAFT and pasted.parent_id is None
    [made] = continue_once(page, library, 0)
    shot(page, "document-1-continued")
    assert made.parent_id == pasted.id and made.text.startswith(DRAFT)
    answer = made.details["answer"]
    assert answer.strip() and made.text[made.details["inserted_at"]:].startswith(answer)
    # The page holds the whole story, the model's part marked as the model's.
    # The box is keyed by version: until the page's run ends the old one may still be drawn.
    settle(page)
    expect(page.get_by_label("Story", exact=True)).to_have_value(made.text, timeout=30_000)
    page.get_by_text("Who wrote what").click()
    marked = page.locator("[data-testid='authorship'] .st-ai")
    expect(marked.first).to_be_visible()
    assert answer.strip()[:10] in " ".join(marked.all_inner_texts())
    # ... and it survives export: the JSON download says who wrote each passage.
    with page.expect_download() as download:
        page.get_by_role("button", name="JSON (marked)").click()
    exported = json.loads(open(download.value.path(), encoding="utf-8").read())
    assert "".join(s["text"] for s in exported["spans"]) == made.text
    assert exported["spans"][0] == {"by": "writer", "text": DRAFT}
    assert {s["by"] for s in exported["spans"]} == {"writer", "ai"}
    page.close()


def test_a_note_is_sent_with_every_continuation(browser, studio):  # noqa: F811
    address, library = studio
    page = open_document(browser, address)
    number(page, "Max tokens", 16)
    commit(page, "Notes", NOTE)
    commit(page, "Story", DRAFT)
    for round_ in range(3):
        made = continue_once(page, library, round_)
        sent = made[-1].details["context"]
        assert [p["name"] for p in sent if p["name"] == "notes"] == ["notes"]
        assert made[-1].messages[-1]["content"].count("Tomas left in 1962") == 1
        page.get_by_text("What is sent (context inspector)").click()
        inspector = page.get_by_test_id("stExpander").filter(has_text="What is sent")
        expect(inspector.get_by_text(re.compile("Tomas left in 1962")).first).to_be_visible()
        expect(inspector.get_by_text(re.compile(r"^notes · \d+ tokens"))).to_be_visible()
        shot(page, f"document-2-inspector-{round_ + 1}")
        page.get_by_text("What is sent (context inspector)").click()  # closed again
    page.close()


def test_three_candidates_keep_the_second_and_export_the_pair(browser, studio, tmp_path):  # noqa: F811
    address, library = studio
    page = open_document(browser, address)
    number(page, "Max tokens", 16)
    number(page, "Candidates", 3)
    commit(page, "Story", DRAFT)
    page.get_by_role("button", name="Continue").click()
    keep = page.get_by_role("button", name="Keep this one")
    expect(keep).to_have_count(3, timeout=120_000)
    shot(page, "document-3-candidates")
    made = versions(library, "continue")
    assert len(made) == 3 and len({v.parent_id for v in made}) == 1
    keep.nth(1).click()
    expect(keep).to_have_count(0, timeout=30_000)
    kept_second_is_exported(library, tmp_path, made, lambda v: v.details["answer"])
    page.close()


def kept_second_is_exported(library, tmp_path, made, answer_of) -> list[dict]:
    """The second of three candidates kept: it is the story's version, recorded as preferred
    over the other two, and the library's preference export has those two pairs (each side
    the candidate's answer, `answer_of`). Returns the exported records."""
    with StoryLibrary(library) as lib:
        [story] = lib.search()
        assert lib.story(story.id).current_id == made[1].id
        assert {(p.chosen_id, p.rejected_id) for p in lib.picks()} == \
            {(made[1].id, made[0].id), (made[1].id, made[2].id)}
    out = tmp_path / "prefs.jsonl"
    result = run_cli("library", "export", "--kind", "preference", "--library", str(library),
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 2 and {r["judgement"] for r in records} == {"studio pick"}
    assert {r["chosen"] for r in records} == {answer_of(made[1]).strip()}
    assert {r["rejected"] for r in records} == {answer_of(made[0]).strip(),
                                                answer_of(made[2]).strip()}
    return records


def test_a_banned_word_is_gone_with_the_same_seed(browser, studio):  # noqa: F811
    address, library = studio
    page = open_document(browser, address)
    number(page, "Max tokens", 24)
    number(page, "Seed", 7)
    commit(page, "Story", DRAFT)
    [free] = continue_once(page, library, 0)
    words = [w for w in re.findall(r"[A-Za-z]{3,}", free.details["answer"])]
    assert words, free.details["answer"]
    banned = words[0]
    # The same request again, with the word banned: undo to the paste, ban it, continue.
    page.get_by_text("Banned words and phrases").click()
    commit(page, "This story's banned list", banned)
    settle(page)
    page.get_by_role("button", name="Undo").click()
    settle(page)
    expect(page.get_by_label("Story", exact=True)).to_have_value(DRAFT, timeout=30_000)
    made = continue_once(page, library, 1)
    shot(page, "document-4-banned")
    answer = made[-1].details["answer"]
    assert not re.search(rf"\b{re.escape(banned)}\b", answer, re.IGNORECASE), (banned, answer)
    # The endpoint's report is kept with the version and shown.
    report = made[-1].details["steering"]["banned"]
    assert set(report) >= {"words_biased", "phrases_cut", "retries"}
    expect(page.get_by_text(re.compile(r"Banned list: \d+ words kept out"))).to_be_visible()
    page.close()


def test_alternatives_of_a_word_and_a_branch_from_one(browser, studio):  # noqa: F811
    address, library = studio
    page = open_document(browser, address)
    number(page, "Max tokens", 16)
    commit(page, "Story", DRAFT)
    [first] = continue_once(page, library, 0)
    assert first.details["logprobs"], "no token choices came back"
    branch_from_second_alternative(page, "document-5-alternatives")
    branch = wait_for(lambda: [v for v in versions(library, "continue")
                               if v.details.get("alternative") and v.finish_reason],
                      "the branch")[0]
    # A new branch beside the first continuation, written from the chosen word on.
    assert branch.parent_id == first.parent_id and branch.id != first.id
    chosen = branch.details["alternative"]["chosen"]
    start = branch.details["inserted_at"]
    assert branch.text.startswith(DRAFT) and chosen in branch.text[start:]
    expect(page.get_by_text("Version 2")).to_be_visible()
    page.close()


def branch_from_second_alternative(page, picture: str) -> None:
    """Open the words the model weighed for the selected word (each with its probability),
    choose the second and branch from it."""
    page.get_by_text("Word alternatives").click()
    choices = page.get_by_test_id("stRadio").filter(has_text="Alternatives")
    expect(choices).to_be_visible()
    assert choices.get_by_role("radio").count() >= 2
    shown = choices.inner_text()
    assert len(re.findall(r"· \d", shown)) >= 2, shown  # a probability beside each one
    choices.get_by_role("radiogroup").locator("label").nth(1).click()
    settle(page)
    shot(page, picture)
    page.get_by_role("button", name="Branch from here").click()
