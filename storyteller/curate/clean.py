"""Text cleaning and quality filters: pure functions from text to text or to a verdict."""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

from storyteller.curate.decode import normalize_newlines

_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"), None)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_HTML_TAG = re.compile(r"</?(?:p|br|i|b|em|strong|u|span|div|a|h[1-6]|blockquote|li|ul|ol|hr|font|sup|sub)"
                       r"(?:\s[^<>]*)?/?>", re.IGNORECASE)
_HTML_BREAK = re.compile(r"<br\s*/?>|</p>|</div>|<hr\s*/?>|</h[1-6]>|</li>", re.IGNORECASE)
_HTML_ENTITY = re.compile(r"&(?:[a-z]+|#\d+|#x[0-9a-f]+);", re.IGNORECASE)
_MD_RULES = [
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),          # images → alt text
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),           # links → their text
    (re.compile(r"^[ \t]*#{1,6}[ \t]+", re.MULTILINE), ""),   # heading marks
    (re.compile(r"^[ \t]*>[ \t]?", re.MULTILINE), ""),        # block quotes
    (re.compile(r"^[ \t]*(?:[-*_][ \t]*){3,}$", re.MULTILINE), ""),  # rules
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),    # bold
    (re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])"), r"\1"),  # *emphasis*
    (re.compile(r"(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)"), r"\1"),  # _emphasis_
    (re.compile(r"`([^`]+)`"), r"\1"),
]


def strip_html(text: str) -> str:
    if not (_HTML_TAG.search(text) or _HTML_ENTITY.search(text)):
        return text
    text = _HTML_BREAK.sub("\n\n", text)
    text = _HTML_TAG.sub("", text)
    return html.unescape(text)


def strip_markdown(text: str) -> str:
    for pattern, replacement in _MD_RULES:
        text = pattern.sub(replacement, text)
    return text


def normalize_whitespace(text: str) -> str:
    text = text.replace("\u00a0", " ").replace("\t", " ")
    text = re.sub(r"[ \u2000-\u200a\u3000]+", " ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def clean_text(text: str, *, markup: str | None = None, strip_html_tags: bool = True) -> str:
    """NFC, no invisible or control characters, no markup, tidy whitespace."""
    text = unicodedata.normalize("NFC", text).translate(_INVISIBLE)
    text = _CONTROL.sub("", normalize_newlines(text))
    if strip_html_tags:
        text = strip_html(text)
    if markup == "markdown":
        text = strip_markdown(text)
    return normalize_whitespace(text)


_SENTENCES = re.compile(r"[^.!?\n]+[.!?]*")
_WORDS = re.compile(r"\w+(?:['’]\w+)*")


def words(text: str) -> list[str]:
    return _WORDS.findall(text)


def repeated_share(text: str) -> float:
    """The share of sentences (of three or more words) that repeat an earlier one."""
    seen: set[str] = set()
    total = repeats = 0
    for sentence in _SENTENCES.findall(text):
        key = " ".join(words(sentence.lower()))
        if len(key.split()) < 3:
            continue
        total += 1
        repeats += key in seen
        seen.add(key)
    return repeats / total if total else 0.0


_NOT_LETTER = re.compile(r"[\W\d_]+")
_SPACE = re.compile(r"\s+")


def letter_share(text: str) -> float:
    """The share of non-space characters that are letters (junk has few)."""
    visible = len(_SPACE.sub("", text))
    return len(_NOT_LETTER.sub("", text)) / visible if visible else 0.0


@dataclass(frozen=True)
class Verdict:
    reason: str
    detail: str


def quality_verdict(text: str, word_count: int, *, min_words: int, max_words: int,
                    max_repeated_share: float, min_letter_share: float) -> Verdict | None:
    """Why `text` is not good enough to train on, or None if it is."""
    if not text.strip():
        return Verdict("empty", "nothing left after cleaning")
    share = letter_share(text)
    if share < min_letter_share:
        return Verdict("junk", f"{share:.0%} letters (minimum {min_letter_share:.0%})")
    if word_count < min_words:
        return Verdict("too_short", f"{word_count} words (minimum {min_words})")
    if max_words and word_count > max_words:
        return Verdict("too_long", f"{word_count} words (maximum {max_words})")
    repeated = repeated_share(text)
    if repeated > max_repeated_share:
        return Verdict("repetitive", f"{repeated:.0%} of sentences repeat (maximum {max_repeated_share:.0%})")
    return None


def token_verdict(tokens: int, *, min_tokens: int, max_tokens: int) -> Verdict | None:
    if tokens < min_tokens:
        return Verdict("too_few_tokens", f"{tokens} tokens (minimum {min_tokens})")
    if max_tokens and tokens > max_tokens:
        return Verdict("too_many_tokens", f"{tokens} tokens (maximum {max_tokens})")
    return None
