"""Over-used phrases: n-gram rates of model stories against human stories and wordfreq, and the
shipped list."""

from __future__ import annotations

from storyteller.overused import compare, load_overused, overused_phrases, words

HUMAN = ["The fox ran to the river and drank.", "A girl found a key under the stair.",
         "Rain fell on the roofs of the town all night."] * 4
MODEL = [f"Story {i}. A shiver ran down her spine as the fox ran. The town slept."
         for i in range(6)]


def test_words_lower_case_with_apostrophes():
    assert words("Don\u2019t STOP, fox!") == ["don't", "stop", "fox"]


def test_phrases_the_model_repeats_rank_first_and_shorter_ones_fold_in():
    found = compare(MODEL, HUMAN, min_count=3, min_stories=3, word_rate=None)
    phrases = [o.phrase for o in found]
    assert "a shiver ran down her spine" not in phrases  # longer than 4 words
    assert "shiver ran down her" in phrases or "ran down her spine" in phrases
    # "shiver ran" is inside a listed 4-gram with the same count: dropped.
    assert "shiver ran" not in phrases
    assert "the town" not in phrases  # the human stories use it as often
    top = found[0]
    assert top.human_count == 0 and top.model_count == 6 and top.stories == 6


def test_wordfreq_keeps_common_words_off_the_list():
    # "the" at its ordinary English rate (1 word in 16), which the small human sample lacks.
    story = ["the cat sat on a mat with one dog and some more words here to dilute it"] * 6
    human = ["a bird flew over hills"] * 20
    alone = {o.phrase for o in compare(story, human, sizes=(1,), word_rate=None)}
    english = {o.phrase for o in compare(story, human, sizes=(1,))}
    assert "the" in alone and "the" not in english
    assert "mat" in english  # rare in English, never in the human stories


def test_shipped_list_has_its_measurement():
    data = load_overused()
    phrases = overused_phrases()
    assert phrases and len(phrases) == len(set(phrases))
    assert data["stories"] >= 30 and data["model"]
    assert all(e["ratio"] >= data["min_ratio"] for e in data["phrases"])
    assert all(e["model_count"] >= data["min_count"] for e in data["phrases"])
