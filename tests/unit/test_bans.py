"""Banned words and phrases as pure functions, with the real SmolLM2 tokenizer (tiny-random
has it), and continuing a chat with the model's own template."""

from __future__ import annotations

import pytest

from storyteller.models import TINY_MODEL, resolve_model
from storyteller.serve import bans
from storyteller.serve.templates import TemplateError, render, tokenizer_of


@pytest.fixture(scope="module")
def tokenizer():
    return tokenizer_of(str(resolve_model(TINY_MODEL)))


def test_single_token_words_are_biased_on_every_spelling(tokenizer):
    ban = bans.ban_list(["dark"], tokenizer)
    expected = {tokenizer.encode(s, add_special_tokens=False)[0]
                for s in (" dark", "dark", " Dark", "Dark")}
    assert {int(k) for k in ban.bias} == expected
    assert set(ban.bias.values()) == {-100} and ban.words_biased == 1


def test_a_word_split_into_small_pieces_is_only_watched(tokenizer):
    # " Ketterly" is " Ket" + "ter" + "ly": banning " Ket" would ban every word it starts.
    ban = bans.ban_list(["Ketterly"], tokenizer)
    ket = tokenizer.encode(" Ketterly", add_special_tokens=False)[0]
    assert str(ket) not in ban.bias
    assert bans.find(ban, "and Ketterly flew") is not None


def test_phrases_match_on_word_boundaries_any_case_and_spacing(tokenizer):
    ban = bans.ban_list(["dark night", "don't"], tokenizer)
    assert bans.find(ban, "a Dark\n  Night fell").group() == "Dark\n  Night"
    assert bans.find(ban, "the darkness nightly") is None
    assert bans.find(ban, "I don\u2019t know").group() == "don\u2019t"
    assert ban.bias == {} or all(v == -100 for v in ban.bias.values())


def test_hold_back_only_what_could_still_become_banned(tokenizer):
    ban = bans.ban_list(["dark night"], tokenizer)
    assert bans.hold_from(ban, "It was a quiet") == len("It was a quiet")
    assert bans.hold_from(ban, "It was a dark") == len("It was a")
    assert bans.hold_from(ban, "It was a dark ni") == len("It was a")
    # A whole match at the very end may still grow ("dark nights" is not banned... yet).
    assert bans.hold_from(ban, "It was a dark night") == len("It was a")
    assert bans.hold_from(ban, "It was a darker") == len("It was a darker")


def test_cut_keeps_a_paragraph_break(tokenizer):
    assert bans.cut_at("one. dark", 5) == 4
    assert bans.cut_at("one.\n\ndark", 6) == 6


def test_client_bias_merged_with_bans():
    assert bans.merge_bias({"5": 3, "7": -2}, {"5": -100}) == {"5": -100, "7": -2}


@pytest.mark.parametrize("value, param", [
    ("dark", "banned"), ([""], "banned[0]"), (["ok", 3], "banned[1]"),
    (["x" * 101], "banned[0]"), (["w"] * 501, "banned"),
])
def test_bad_lists_name_the_part(tokenizer, value, param):
    with pytest.raises(bans.BanError) as error:
        bans.ban_list(value, tokenizer)
    assert error.value.param == param


def test_banning_most_of_english_is_refused(tokenizer):
    common = ["the", "and", "a", "of", "to", "in", "is", "was", "he", "she", "it", "that",
              "i", "you", "for", "on", "with", "as", "his", "her", "they", "at", "be", "but",
              "had", "not", "this", "have", "from", "by", "are", "we", "or", "an", "so",
              "said", "were", "there", "what", "all", "one", "my", "me", "him", "them"]
    with pytest.raises(bans.BanError) as error:
        bans.ban_list(common, tokenizer)
    assert "nothing left" in error.value.message and error.value.param == "banned"
    assert bans.ban_list(common[:3], tokenizer).words_biased == 3  # a few common words: fine


def test_continuation_prompt_ends_with_the_assistant_text(tokenizer):
    messages = [{"role": "user", "content": "A fox."},
                {"role": "assistant", "content": "Once upon a time"}]
    prompt = render(tokenizer, messages, continue_final=True)
    assert prompt.endswith("<|im_start|>assistant\nOnce upon a time")
    fresh = render(tokenizer, messages[:1], continue_final=False)
    assert prompt == fresh + "Once upon a time"
    parts = [{"role": "user", "content": [{"type": "text", "text": "A "},
                                          {"type": "text", "text": "fox."}]},
             messages[1]]
    assert render(tokenizer, parts, continue_final=True) == prompt
    with pytest.raises(TemplateError):
        render(tokenizer, messages[:1], continue_final=True)
