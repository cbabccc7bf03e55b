"""`storyteller curate --preview` through the real command: what a person sees before training,
and the same in report.md after a real run."""

from __future__ import annotations

import json

from tests.conftest import run_cli
from tests.unit.test_books import MODERN_FOOT, MODERN_HEAD, prose, tales

TITLES = ["THE LAMP IN THE WINDOW", "THE EGG BRIDGE", "THE MILL STEP"]
BOOK = (MODERN_HEAD + "\n\nLAMP TALES\n\n\n\nPREFACE\n\n" + prose(4) + "\n\n\n\nCONTENTS\n\n"
        + "\n".join(f"     {t}" for t in TITLES) + "\n\n\n" + tales(TITLES)
        + "\n\n\n\nNOTES\n\n" + prose(2) + "\n" + MODERN_FOOT)


def test_preview_shows_the_stories_and_writes_nothing(tmp_path):
    book = tmp_path / "lamp.txt"
    book.write_text(BOOK, encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli("curate", str(book), "--preview", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = " ".join((result.stderr + result.stdout).split())  # as wrapped to the terminal
    assert "gutenberg (Project Gutenberg header or Etext licence found)" in shown
    assert "contents list (3 stories named, 3 found in the text)" in shown
    for title in ("The Lamp in the Window", "The Egg Bridge", "The Mill Step"):
        assert title in shown
    assert "front matter" in shown and "'PREFACE'" in shown
    assert "back matter" in shown and "'NOTES'" in shown
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_preview_warns_when_a_book_is_not_divided(tmp_path):
    # No contents list and no headings: the whole book is one story, and the preview says so.
    one = tmp_path / "one.txt"
    one.write_text(MODERN_HEAD + "\n\n\n\nTHE LONG ROAD\n\n" + "\n\n".join(
        prose(i % 5, 3) for i in range(60)) + MODERN_FOOT, encoding="utf-8")
    result = run_cli("curate", str(one), "--preview", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = " ".join(result.stderr.split())
    assert "divided by nothing: no contents list and no headings divide it" in shown
    assert "warning: the whole book (" in shown and "is one story" in shown
    assert "The Long Road" in shown


def test_every_book_is_kept_and_its_reading_reported(tmp_path):
    # A book nothing divides is kept whole (the filters then judge it) rather than lost.
    good = tmp_path / "lamp.txt"
    good.write_text(BOOK, encoding="utf-8")
    flat = tmp_path / "flat.txt"
    flat.write_text(MODERN_HEAD + "\n\n" + prose(1, 2) + MODERN_FOOT, encoding="utf-8")
    out = tmp_path / "data"
    result = run_cli("curate", str(good), str(flat), "--out", str(out),
                     "--set", "filters.min_words=10", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    matter = sorted((r["reason"], r["detail"].split(":")[0]) for r in rejects
                    if r["reason"].endswith("_matter"))
    assert matter == [("back_matter", "'NOTES'"), ("front_matter", "'PREFACE'")]
    manifest = json.loads((out / "manifest.json").read_text())
    lamp, whole = manifest["inputs"]
    assert (lamp["stories"], whole["stories"]) == (3, 1)
    assert lamp["reading"]["method"].startswith("contents list")
    assert len(lamp["reading"]["matter"]) == 2
    assert whole["reading"]["notes"] == ["the whole book is read as one story"]
    report = (out / "report.md").read_text()
    assert "## What was read" in report and "| The Egg Bridge |" in report
    assert "note: the whole book is read as one story" in report


def test_the_preview_of_a_gutenberg_html_edition_says_how_it_was_divided(tmp_path):
    from tests.unit.document_fixtures import GUTENBERG_HTML

    page = tmp_path / "harbour-h.htm"
    page.write_text(GUTENBERG_HTML)
    result = run_cli("curate", str(page), "--preview", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = " ".join(result.stderr.split())
    assert "html (.htm file); divided by" in shown
    assert "The Keeper" in shown and "The Orchard" in shown
