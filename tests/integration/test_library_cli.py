"""`storyteller library list | show | export` on a real library file, and the exported feedback
read back by `storyteller curate` (SFT and preference files)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import pytest

from storyteller.prompts import StoryRequest
from storyteller.client import story_messages
from storyteller.studio.draft import request_to_json
from storyteller.studio.library import StoryLibrary
from tests.conftest import run_cli
from tests.integration.finetune_data import starter_stories

pytestmark = pytest.mark.slow


@pytest.fixture()
def library(tmp_path):
    """Six stories from the starter corpus written as if in the studio: each asked with its
    premise and controls, regenerated once, both versions rated differently."""
    path = tmp_path / "library.sqlite"
    stories = starter_stories()[::25][:6]
    with StoryLibrary(path) as lib:
        for index, source in enumerate(stories):
            controls = {k: source[k] for k in ("genre", "style", "tone") if source.get(k)}
            request = StoryRequest(controls=controls, premise=source["premise"],
                                   title=source["title"])
            story = lib.create_story(source["title"], source["premise"], controls)
            asked = {"messages": story_messages(request), "request": request_to_json(request),
                     "model": "quickstart", "settings": {"preset": "balanced"}}
            best = lib.add_generation(story.id, kind="write", text=source["text"], **asked)
            worse = lib.add_generation(story.id, kind="regenerate",
                                       text=" ".join(source["text"].split()[:80]), **asked)
            lib.rate(best.id, 5 if index % 2 == 0 else 4, "keep")
            lib.rate(worse.id, 2)
    return path, stories


def test_exported_feedback_is_curated_back(library, tmp_path):
    path, stories = library
    out = tmp_path / "feedback.jsonl"
    result = run_cli("library", "export", "--library", str(path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "6 sft records" in result.stdout and "storyteller curate" in result.stdout
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["title"] for r in records} == {s["title"] for s in stories}
    assert all(r["messages"][-1]["role"] == "assistant" and r["rating"] >= 4 for r in records)

    curated = tmp_path / "data"
    result = run_cli("curate", str(out), "--out", str(curated))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((curated / "manifest.json").read_text())
    assert manifest["counts"]["stories_kept"] == len(stories)
    pairs = [json.loads(line) for name in ("train", "val", "test")
             for line in (curated / f"{name}.jsonl").read_text().splitlines()]
    asked = [p for p in pairs if p["kind"] == "premise" and not p["augmented"]]
    assert {p["controls"].get("genre") for p in asked} == {s["genre"] for s in stories}
    assert {p["controls"].get("style") for p in asked} == {s["style"] for s in stories}
    assert {p["messages"][-1]["content"] for p in asked} <= {r["text"].strip() for r in records}

    prefs = tmp_path / "exports" / "prefs.jsonl"  # a folder that does not exist yet
    result = run_cli("library", "export", "--library", str(path), "--kind", "preference",
                     "--out", str(prefs))
    assert result.returncode == 0, result.stderr
    pairs = [json.loads(line) for line in prefs.read_text().splitlines()]
    assert len(pairs) == 6 and all(len(p["chosen"]) > len(p["rejected"]) for p in pairs)
    result = run_cli("curate", str(prefs), "--out", str(tmp_path / "from-prefs"))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "from-prefs" / "manifest.json").read_text())
    assert manifest["counts"]["stories_kept"] == len(stories)  # the chosen stories


def test_list_show_and_errors(library, tmp_path):
    path, stories = library
    with StoryLibrary(path) as lib:
        everything = lib.search()
    story = next(s for s in everything if s.title == stories[0]["title"])
    listed = run_cli("library", "list", "--library", str(path), "--search", stories[0]["title"])
    assert listed.returncode == 0, listed.stderr
    assert [s.id for s in everything if s.id in listed.stdout] == [story.id]
    shown = run_cli("library", "show", story.id, "--library", str(path))
    assert shown.returncode == 0 and shown.stdout.startswith(f"# {stories[0]['title']}")
    text = run_cli("library", "show", story.id, "--library", str(path), "--format", "txt")
    assert text.stdout.splitlines()[1].startswith("===")

    missing = run_cli("library", "list", "--library", str(tmp_path / "none.sqlite"))
    assert missing.returncode == 1 and "no story library here" in missing.stderr
    unknown = run_cli("library", "show", "s-nope", "--library", str(path))
    assert unknown.returncode == 1 and "no such story" in unknown.stderr
    empty = tmp_path / "empty.sqlite"
    StoryLibrary(empty).close()
    nothing = run_cli("library", "export", "--library", str(empty), "--out", str(tmp_path / "x"))
    assert nothing.returncode == 1 and "nothing to export yet" in nothing.stderr
    assert "--min-stars" in nothing.stderr and not (tmp_path / "x").exists()
    # Another SQLite file (or any file) is refused, and left as it was.
    other = tmp_path / "ratings.sqlite"
    with closing(sqlite3.connect(other)) as db:
        db.execute("CREATE TABLE answers (rater TEXT)")
    before = other.read_bytes()
    wrong = run_cli("library", "export", "--library", str(other), "--out", str(tmp_path / "y"))
    assert wrong.returncode == 1 and "not a story library" in wrong.stderr
    assert other.read_bytes() == before and "Traceback" not in wrong.stderr
