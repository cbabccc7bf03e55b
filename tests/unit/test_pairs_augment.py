import random

from storyteller.curate.augment import apply_renames, augment, rename_map
from storyteller.curate.pairs import (PairOptions, Story, build_pairs, character_names,
                                      derive_premise, split_opening, windows)
from storyteller.curate.tag import Tag
from storyteller.prompts import StoryRequest, render_messages, tail_words

TEXT = ("Mira found the key under the step. She did not tell Jonas.\n\n"
        "That night Mira crept to the old mill. The door opened without a sound.\n\n"
        "Inside, Jonas was waiting with a lantern. \"You found it,\" he said.\n\n"
        "Mira held out the key. Jonas laughed, and the mill wheel began to turn.\n\n"
        "By morning the river ran backwards, and nobody in the village could say why.")


def count_words(texts):
    return [len(t.split()) for t in texts]


def make_story(text=TEXT, tokens=None, **meta):
    return Story(id="s1", group="s1", text=text, source={"file": "f", "line": 1, "position": None},
                 meta=meta, words=len(text.split()), tokens=tokens or len(text.split()),
                 tags={"genre": Tag("mystery", 0.9, True)})


def test_character_names_skip_sentence_starts_and_common_words():
    assert set(character_names(TEXT)) == {"Mira", "Jonas"}
    assert "Inside" not in character_names(TEXT) and "That" not in character_names(TEXT)


def test_derived_premise_names_genre_characters_and_topics():
    premise = derive_premise(make_story())
    assert premise.startswith("A mystery about ") and "Mira" in premise and "Jonas" in premise


def test_split_opening_cuts_at_a_paragraph():
    opening, rest = split_opening(TEXT, 0.2)
    assert opening + "\n\n" + rest == TEXT
    paragraphs = TEXT.split("\n\n")
    assert opening in ("\n\n".join(paragraphs[:k]) for k in (1, 2)) and rest
    assert split_opening("Too short.", 0.2) is None


def test_windows_cover_the_story_in_order_within_budget():
    long_text = "\n\n".join(f"Paragraph {i} has a few words in it." * 3 for i in range(30))
    parts = windows(long_text, 80, count_words)
    assert len(parts) > 3
    assert "\n\n".join(parts) == long_text
    assert all(len(p.split()) <= 80 for p in parts)


def test_a_paragraph_over_budget_is_cut_at_sentences():
    long_paragraph = " ".join(f"Sentence number {i} is here." for i in range(40))
    parts = windows(long_paragraph, 30, count_words)
    assert len(parts) > 1 and all(len(p.split()) <= 30 for p in parts)
    assert " ".join(parts).split() == long_paragraph.split()


def test_tail_words_starts_at_a_sentence():
    assert tail_words("One two. Three four five. Six seven.", 4) == "Six seven."


def test_pairs_of_each_kind_share_the_group_and_rerender_exactly():
    story = make_story(title="The Mill", premise="A girl finds a key.")
    pairs = build_pairs(story, PairOptions(), count_words)
    assert [p["kind"] for p in pairs] == ["premise", "title", "opening"]
    for pair in pairs:
        assert pair["group"] == "s1" and pair["augmented"] is None
        request = StoryRequest(controls={k: v for k, v in pair["controls"].items() if k != "title"},
                               **{k: v for k, v in pair["request"].items()})
        assert render_messages(request, pair["messages"][-1]["content"]) == pair["messages"]
    assert pairs[0]["premise_source"] == "data"
    assert pairs[0]["controls"]["length"] == "flash"
    assert pairs[0]["messages"][1]["content"].startswith("[ Genre: mystery; Length: flash ]")


def test_long_story_becomes_windows_not_a_cut_story():
    long_text = "\n\n".join(f"Mira walked to paragraph {i} and Jonas followed." for i in range(40))
    story = make_story(long_text, tokens=400)
    pairs = build_pairs(story, PairOptions(max_story_tokens=100), count_words)
    assert {p["kind"] for p in pairs} == {"continuation"}
    assert "\n\n".join(p["messages"][-1]["content"] for p in pairs) == long_text
    assert pairs[0]["premise_source"] == "derived"
    assert "part 2 of" in pairs[1]["messages"][1]["content"]


def test_rename_is_consistent_and_avoids_existing_names():
    mapping = rename_map(["Mira", "Jonas"], TEXT, random.Random(0))
    assert set(mapping) == {"Mira", "Jonas"} and len(set(mapping.values())) == 2
    renamed = apply_renames(TEXT, mapping)
    assert "Mira" not in renamed and "Jonas" not in renamed
    assert renamed.count(mapping["Mira"]) == TEXT.count("Mira")


def test_augmented_variants_record_what_changed_and_keep_the_group():
    story = make_story(title="The Mill", premise="Mira finds a key.")
    pairs = build_pairs(story, PairOptions(), count_words)
    variants = augment(story, pairs, ratio=3, methods=["rename", "phrasing", "controls", "window"],
                       seed=0, control_dropout=0.5)
    assert len(variants) >= len(pairs) * 2
    assert all(v["group"] == "s1" and v["augmented"]["method"] for v in variants)
    methods = {v["augmented"]["method"] for v in variants}
    assert methods >= {"rename", "phrasing", "controls"}
    for v in variants:
        if v["augmented"]["method"] == "rename":
            new = v["augmented"]["names"]["Mira"]
            assert new in v["messages"][-1]["content"] and "Mira" not in v["messages"][-1]["content"]
            if v["kind"] == "premise":
                assert new in v["messages"][1]["content"]
    again = augment(story, pairs, ratio=3, methods=["rename", "phrasing", "controls", "window"],
                    seed=0, control_dropout=0.5)
    assert again == variants
