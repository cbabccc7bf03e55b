"""Banned words and phrases, as pure functions over text and a real tokenizer.

Two mechanisms, as in koboldcpp's phrase banning:

- a banned *word* becomes `logit_bias` -100 on the first token of each of its usual spellings
  (" word", "word", " Word", "Word"), so the engine never starts it. Only where that first
  token is (most of) the word: a word split as " Ket" + "ter" + "ly" would otherwise ban every
  word starting " Ket"; such words are left to the watcher below.
- every banned item (words too: a word can still be spelled with other tokens) is *watched* in
  the text: matched case-insensitively on word boundaries, with any run of whitespace between
  its words and either apostrophe. A match is cut (with the space before it) and generation
  continues from the cut with the item's first tokens banned for one token there
  (storyteller.serve.steering).

In a stream, text is held back only from where it could still become a banned item
(`hold_from`), so the writer never sees banned text and sees everything else at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import regex

MAX_ITEMS = 500
MAX_CHARS = 100
# A first token that covers this share of a word's letters bans the word and few others.
COVER = 0.66
# Banned words that make up this share of running English text (wordfreq) leave the model
# almost nothing to write: English's 10 most frequent words are 22% of it, its 30 about a
# third, so a list passing this bans the words every sentence is built from.
MOST_OF_ENGLISH = 0.33


class BanError(ValueError):
    """A banned list that cannot be honoured; `param` names the part of the request."""

    def __init__(self, message: str, param: str = "banned"):
        super().__init__(message)
        self.message, self.param = message, param


@dataclass(frozen=True)
class BanList:
    items: tuple[str, ...]  # every banned word and phrase, as given (stripped, de-duplicated)
    bias: dict[str, int] = field(default_factory=dict)  # token id (string) → -100
    words_biased: int = 0  # banned words with at least one spelling in `bias`
    pattern: Any = None  # regex matching any banned item in text
    longest: int = 0  # the most characters a match can span (whitespace runs counted once)

    def __bool__(self) -> bool:
        return bool(self.items)


def parse(value: Any) -> list[str]:
    """The request's `banned`, checked: a list of up to MAX_ITEMS non-blank strings of at most
    MAX_CHARS characters; stripped, inner whitespace collapsed, duplicates (any case) once."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BanError("banned must be a list of words or phrases (strings)")
    if len(value) > MAX_ITEMS:
        raise BanError(f"banned has {len(value)} items; at most {MAX_ITEMS} are allowed")
    items, seen = [], set()
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise BanError(f"banned[{i}] must be a string, not {type(item).__name__}",
                           f"banned[{i}]")
        text = " ".join(item.split())
        if not text:
            raise BanError(f"banned[{i}] is blank: it would ban everything; remove it",
                           f"banned[{i}]")
        if len(text) > MAX_CHARS:
            raise BanError(f"banned[{i}] has {len(text)} characters; at most {MAX_CHARS}",
                           f"banned[{i}]")
        if text.lower() not in seen:
            seen.add(text.lower())
            items.append(text)
    return items


def spellings(word: str) -> list[str]:
    """The usual spellings of `word` at the start of a token: after a space or not, as given,
    lower-case and capitalised."""
    forms = dict.fromkeys([word, word.lower(), word[:1].upper() + word[1:]])
    return [f"{space}{form}" for form in forms for space in (" ", "")]


def first_token(tokenizer, text: str) -> int | None:
    ids = tokenizer.encode(text, add_special_tokens=False)
    return ids[0] if ids else None


def word_bias(tokenizer, words: list[str]) -> tuple[dict[str, int], int]:
    """logit_bias -100 on the first token of each spelling of each single word, where that
    token covers at least COVER of the spelling; (bias, how many words got one)."""
    bias: dict[str, int] = {}
    biased = 0
    special = set(tokenizer.all_special_ids)
    for word in words:
        hit = False
        for form in spellings(word):
            ids = tokenizer.encode(form, add_special_tokens=False)
            if not ids or ids[0] in special:
                continue
            piece = tokenizer.decode(ids[:1]).strip()
            if len(ids) == 1 or len(piece) >= COVER * len(form.strip()):
                bias[str(ids[0])] = -100
                hit = True
        biased += hit
    return bias, biased


def first_token_bias(tokenizer, item: str) -> dict[str, int]:
    """-100 on the first token of every spelling of `item` (a word or a phrase): what a retry
    bans for one token at the place the item was cut from."""
    special = set(tokenizer.all_special_ids)
    ids = {first_token(tokenizer, form) for form in spellings(item)}
    return {str(i): -100 for i in ids if i is not None and i not in special}


def item_pattern(item: str) -> str:
    parts = ["['\u2019]".join(regex.escape(piece) for piece in regex.split("['\u2019]", part))
             for part in item.split()]
    body = r"\s+".join(parts)
    left = r"(?<!\w)" if regex.match(r"\w", item[0]) else ""
    right = r"(?!\w)" if regex.match(r"\w", item[-1]) else ""
    return f"{left}{body}{right}"


def compile_items(items: list[str]):
    if not items:
        return None
    # Longest first: where two items start at one place, the longer one is matched.
    ordered = sorted(items, key=len, reverse=True)
    return regex.compile("|".join(f"(?:{item_pattern(i)})" for i in ordered),
                         regex.IGNORECASE | regex.V0)


def english_share(words: list[str]) -> float:
    """The share of running English text that `words` make up (wordfreq)."""
    from wordfreq import word_frequency

    return sum(word_frequency(w, "en") for w in {w.lower() for w in words})


def ban_list(value: Any, tokenizer) -> BanList:
    """The request's `banned` as a BanList for `tokenizer`; BanError for a list that cannot be
    honoured, including one that bans most of what any text is made of."""
    items = parse(value)
    if not items:
        return BanList(())
    words = [i for i in items if " " not in i]
    share = english_share(words)
    if share >= MOST_OF_ENGLISH:
        common = sorted(words, key=lambda w: -english_share([w]))[:6]
        raise BanError(f"banned: these words make up {share:.0%} of ordinary English text "
                       f"({', '.join(common)}, …): the model would have almost nothing left "
                       "to write; ban phrases and rarer words")
    bias, biased = word_bias(tokenizer, words)
    longest = max(len(i) for i in items) * 2 + 8  # room for runs of whitespace
    return BanList(tuple(items), bias, biased, compile_items(items), longest)


def merge_bias(own: dict | None, *more: dict[str, int]) -> dict[str, int]:
    """A client's logit_bias with the bans over it (a ban is the lowest value)."""
    merged = {str(k): v for k, v in (own or {}).items()}
    for bias in more:
        for token, value in bias.items():
            merged[token] = min(value, merged.get(token, value))
    return merged


# ----------------------------------------------------------------------- watching the text

def find(bans: BanList, text: str, start: int = 0):
    """The first banned match in `text` that ends after `start` (text before it was checked)."""
    if bans.pattern is None:
        return None
    return next((m for m in bans.pattern.finditer(text, max(0, start - bans.longest))
                 if m.end() > start), None)


def cut_at(text: str, start: int) -> int:
    """Where to cut a match starting at `start`: with the spaces before it, so the model writes
    the next word's own leading space; a line break before it stays (a new paragraph)."""
    space = start
    while space > 0 and text[space - 1].isspace():
        space -= 1
    return start if "\n" in text[space:start] else space


def hold_from(bans: BanList, text: str) -> int:
    """Where the text that could still become a banned item begins (len(text) if nowhere):
    a place whose rest is the beginning of a match, or a whole match at the very end (more
    letters could follow). Called while more text may come."""
    if bans.pattern is None:
        return len(text)
    for start in range(max(0, len(text) - bans.longest), len(text)):
        if text[start].isspace():
            continue
        match = bans.pattern.match(text, start, partial=True)
        if match is not None and (match.partial or match.end() == len(text)):
            return cut_at(text, start)
    return len(text)
