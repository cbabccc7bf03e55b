"""The starter corpus: schema, documented counts, house styles (see corpora/README.md)."""

import json
from collections import Counter
from pathlib import Path

import pytest

from storyteller.styles import HOUSE_STYLES

STARTER = Path(__file__).resolve().parents[2] / "corpora" / "starter"
KEYS = {"id", "title", "genre", "style", "tone", "audience", "pov", "premise", "text"}


@pytest.fixture(scope="module")
def stories():
    rows = []
    for path in sorted(STARTER.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            rows.append((f"{path.name}:{number}", json.loads(line)))
    return rows


def test_schema_and_lengths(stories):
    assert len(stories) >= 120
    ids = [s["id"] for _, s in stories]
    assert len(set(ids)) == len(ids)
    for where, story in stories:
        assert set(story) == KEYS, where
        assert all(isinstance(v, str) and v.strip() for v in story.values()), where
        assert 150 <= len(story["text"].split()) <= 700, where
        assert story["audience"] in ("children", "young adult", "adult", "all ages"), where
        assert story["pov"] in ("first", "second", "third"), where


def test_counts_match_the_readme(stories):
    genres = Counter(s["genre"] for _, s in stories)
    assert genres == {"fable": 17, "fairy tale": 17, "mystery": 17, "science fiction": 17,
                      "adventure": 16, "ghost story": 16, "romance": 16, "slice of life": 16}
    styles = Counter(s["style"] for _, s in stories)
    assert styles == {"moral": 17, "refrain": 17, "noir": 17, "log": 17, "plain": 22,
                      "lyrical": 21, "humorous": 21}
    assert all(n >= 15 for n in genres.values())


def test_every_house_style_has_enough_stories_and_all_pass(stories):
    for style, check in HOUSE_STYLES.items():
        members = [(w, s) for w, s in stories if s["style"] == style]
        assert len(members) >= 15, style
        failures = [(w, check(s["text"]).reason) for w, s in members if not check(s["text"])]
        assert failures == [], failures


def test_every_story_is_different(stories):
    openings = Counter(s["text"].split(".")[0] for _, s in stories)
    assert max(openings.values()) == 1
    titles = Counter(s["title"].lower() for _, s in stories)
    assert max(titles.values()) == 1
