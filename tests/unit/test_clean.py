import unicodedata

from storyteller.curate.clean import (clean_text, letter_share, quality_verdict, repeated_share,
                                      strip_markdown, token_verdict, words)


def test_nfc_invisible_and_control_characters():
    text = "Cafe\u0301 na\u200bive\u0007 story\ufeff"
    cleaned = clean_text(text)
    assert cleaned == "Café naive story"
    assert unicodedata.is_normalized("NFC", cleaned)


def test_html_markup_and_entities():
    assert clean_text("<p>Tom &amp; <i>Jerry</i> ran.</p><p>Then stopped.</p>") == \
        "Tom & Jerry ran.\n\nThen stopped."


def test_text_with_angle_brackets_but_no_tags_is_left_alone():
    assert clean_text("3 < 4 and 5 > 2") == "3 < 4 and 5 > 2"


def test_markdown_only_when_asked():
    source = "# Title\n\nShe was **very** *tired*, see [the map](http://x.invalid).\n\n---\n\nEnd."
    assert clean_text(source, markup="markdown") == \
        "Title\n\nShe was very tired, see the map.\n\nEnd."
    assert "**very**" in clean_text(source)
    assert strip_markdown("snake_case_name stays") == "snake_case_name stays"


def test_whitespace_is_tidied_but_paragraphs_kept():
    assert clean_text("  One\u00a0 two \t three.  \r\n\r\n\r\n\r\nFour.  ") == "One two three.\n\nFour."


def test_repetition_and_letters():
    assert repeated_share("The cat sat down. The cat sat down. A dog ran off.") == 1 / 3
    assert repeated_share("") == 0.0
    assert letter_share("#### $$$$ ab") == 0.2


def test_quality_verdicts():
    good = "A fox walked into town one morning and found the bakery closed. " * 1
    assert quality_verdict(good, len(words(good)), min_words=5, max_words=100,
                           max_repeated_share=0.3, min_letter_share=0.6) is None
    assert quality_verdict("Too short.", 2, min_words=5, max_words=100, max_repeated_share=0.3,
                           min_letter_share=0.6).reason == "too_short"
    junk = "#### $$$$ ~~~~ %%%% &&&& word"
    assert quality_verdict(junk, 1, min_words=0, max_words=100, max_repeated_share=0.3,
                           min_letter_share=0.6).reason == "junk"
    loop = "I ran to the sea today. " * 10
    assert quality_verdict(loop, 60, min_words=5, max_words=100, max_repeated_share=0.3,
                           min_letter_share=0.6).reason == "repetitive"
    assert quality_verdict("  ", 0, min_words=0, max_words=0, max_repeated_share=0.3,
                           min_letter_share=0.6).reason == "empty"


def test_token_verdicts():
    assert token_verdict(10, min_tokens=20, max_tokens=0).reason == "too_few_tokens"
    assert token_verdict(2000, min_tokens=0, max_tokens=1000).reason == "too_many_tokens"
    assert token_verdict(500, min_tokens=20, max_tokens=1000) is None
