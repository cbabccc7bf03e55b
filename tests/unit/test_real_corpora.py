"""The readers on real files nobody here wrote (../shared/corpora), where that folder exists."""

import pytest

from storyteller.curate.records import Rejected, RawStory
from storyteller.curate.sources import detect_format, read_source
from tests.conftest import shared_corpus


def read_all(path):
    return list(read_source(str(path), detect_format(path), {}))


@pytest.mark.parametrize("name,count,first,last", [
    ("pg2591_grimms_fairy_tales.txt", 62, "The Golden Bird", "Snow-White and Rose-Red"),
    ("pg1597_andersens_fairy_tales.txt", 18, "The Emperor's New Clothes", "The Red Shoes"),
    ("pg1661_adventures_of_sherlock_holmes.txt", 12, "A Scandal in Bohemia",
     "The Adventure of the Copper Beeches"),
])
def test_gutenberg_books_split_into_their_stories(name, count, first, last):
    path = shared_corpus(f"gutenberg/{name}")
    assert detect_format(path) == "gutenberg"
    tales = read_all(path)
    assert all(isinstance(t, RawStory) for t in tales)
    assert len(tales) == count
    assert (tales[0].meta["title"], tales[-1].meta["title"]) == (first, last)
    for tale in tales:
        assert "Project Gutenberg" not in tale.text and "*** " not in tale.text
        assert len(tale.text.split()) > 100


def test_grimm_three_part_tale_stays_whole():
    tales = read_all(shared_corpus("gutenberg/pg2591_grimms_fairy_tales.txt"))
    chanticleer = next(t for t in tales if t.meta["title"].startswith("The Adventures of Chanticleer"))
    assert "3. HOW PARTLET DIED" in chanticleer.text
    mrs_fox = next(t for t in tales if t.meta["title"] == "The Wedding of Mrs Fox")
    assert "SECOND STORY" in mrs_fox.text
    assert "Brothers Grimm, Jacob" not in tales[-1].text  # the afterword is not part of a tale


def test_tinystories_file_cut_mid_story():
    items = read_all(shared_corpus("tinystories/tinystories_train_first_2MiB.txt"))
    assert sum(isinstance(i, RawStory) for i in items) == 2316
    cut = [i for i in items if isinstance(i, Rejected)]
    assert [r.reason for r in cut] == ["truncated"]


def test_tinystories_v2_sample_with_leading_blank_lines():
    items = read_all(shared_corpus("tinystories/tinystoriesV2_cs336_fixture_sample.txt"))
    assert len(items) == 5 and all(isinstance(i, RawStory) for i in items)
    assert not items[0].text.startswith("\n")


def test_writingprompts_csv():
    path = shared_corpus("writingprompts/writingprompts_train_sample500.csv")
    assert detect_format(path) == "writingprompts"
    items = read_all(path)
    stories = [i for i in items if isinstance(i, RawStory)]
    assert len(stories) == 500
    joined = " ".join(s.text for s in stories)
    assert " n't" not in joined and "``" not in joined and "<newline>" not in joined
    assert all(s.meta.get("premise") and not s.meta["premise"].startswith("[") for s in stories)
    assert sum("writing prompt" in s.meta.get("tags", []) for s in stories) > 400


def test_aesop_json_lessons_become_morals():
    items = read_all(shared_corpus("other/aesop_for_children_with_morals.json"))
    assert len(items) == 146
    assert all(isinstance(i, RawStory) and i.meta.get("moral") and i.meta.get("title") for i in items)
