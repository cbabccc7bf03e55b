"""Story metrics against examples computed by hand."""

from __future__ import annotations

import math

import pytest

from storyteller.evaluate import metrics as m


def test_words_keep_contractions_and_drop_punctuation():
    assert m.words("The cat's hat. It's fine, isn't it?") == \
        ["the", "cat's", "hat", "it's", "fine", "isn't", "it"]


def test_distinct_n_counts_unique_ngrams_over_all_stories():
    # "a b a b" has bigrams ab, ba, ab; "a b c" has ab, bc: 5 bigrams, 3 unique (ab, ba, bc).
    assert m.distinct_n(["a b a b", "a b c"], 2) == pytest.approx(3 / 5)
    # unigrams: a b a b a b c = 7, unique a b c = 3
    assert m.distinct_n(["a b a b", "a b c"], 1) == pytest.approx(3 / 7)
    assert m.distinct_n(["one"], 2) is None


def test_seq_rep_4_is_the_share_of_repeated_4grams():
    # "a b c d a b c d": 5 four-grams (abcd, bcda, cdab, dabc, abcd), 4 unique → 1 - 4/5.
    assert m.seq_rep_n("a b c d a b c d", 4) == pytest.approx(0.2)
    assert m.seq_rep_n("a b c d e", 4) == 0.0
    assert m.seq_rep_n("a b c", 4) is None


def test_memorisation_share_and_longest_copied_span():
    index = m.ngram_index(["w1 w2 w3 w4 w5 w6 w7 w8 w9 w10"], n=3)
    # Story: w1 w2 w3 w4 | x | w7 w8 w9 → 3-grams: (w1w2w3)✓ (w2w3w4)✓ (w3w4x)✗ (w4xw7)✗
    # (xw7w8)✗ (w7w8w9)✓ → 3 of 6; longest run of hits = 2 three-grams = 4 words.
    share, span = m.memorisation("w1 w2 w3 w4 x w7 w8 w9", index, n=3)
    assert share == pytest.approx(0.5)
    assert span == 4
    assert m.memorisation("q r s t", index, n=3) == (0.0, 0)
    assert m.memorisation("w1 w2", index, n=3) == (None, 0)


def test_flesch_reading_ease_by_hand():
    # 2 sentences, 6 words, 6 one-syllable words: 206.835 - 1.015*3 - 84.6*1 = 119.19
    assert m.flesch_reading_ease("The cat sat. The dog ran.") == pytest.approx(119.19, abs=1e-6)
    # "Beautiful table." = 1 sentence, 2 words, beau-ti-ful (3) + ta-ble (2) = 5 syllables:
    # 206.835 - 1.015*2 - 84.6*2.5 = -6.695
    assert m.flesch_reading_ease("Beautiful table.") == pytest.approx(-6.695, abs=1e-6)
    assert m.flesch_reading_ease("") is None


def test_sentences_split_on_end_punctuation_and_keep_quotes():
    assert m.sentences('He said "stop." Then he left! Why?') == ['He said "stop."', "Then he left!", "Why?"]


def test_bleu_identical_is_100_and_disjoint_is_0():
    assert m.bleu("the quick brown fox jumps", ["the quick brown fox jumps"]) == pytest.approx(100)
    assert m.bleu("alpha beta gamma delta", ["one two three four"]) == pytest.approx(0)


def test_bleu_by_hand_with_effective_order():
    # hyp "the cat sat on the mat" vs ref "the cat sat on a mat": precisions 5/6, 3/5, 2/4, 1/3;
    # equal lengths so no brevity penalty: BLEU = (5/6 * 3/5 * 2/4 * 1/3) ** (1/4).
    expected = 100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert m.bleu("the cat sat on the mat", ["the cat sat on a mat"]) == pytest.approx(expected, rel=1e-6)


def test_rouge_l_by_hand():
    # LCS of "the cat sat on the mat" / "the cat was on a mat" = the cat on mat (4 words);
    # P = 4/6, R = 4/6, F = 4/6.
    assert m.rouge_l("the cat sat on the mat", "the cat was on a mat") == pytest.approx(4 / 6)


def test_self_bleu_is_high_for_copies_and_low_for_different_stories():
    same = ["the fox ran over the hill at dawn"] * 3
    assert m.self_bleu(same) == pytest.approx(100)
    different = ["the fox ran over the hill", "a ship sailed into fog", "rain fell on tin roofs"]
    assert m.self_bleu(different) < 10
    assert m.self_bleu(["alone"]) is None


def test_text_metrics_bundle():
    index = m.ngram_index(["a b c d e f g h i j"], n=8)
    result = m.text_metrics("a b c d e f g h. New words here!", "a b c d", index, n=8)
    assert result["words"] == 11 and result["sentences"] == 2
    assert result["longest_copied_span"] == 8
    assert math.isclose(result["memorised_8gram_share"], 1 / 4)
