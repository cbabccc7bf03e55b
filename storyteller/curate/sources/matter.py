"""Front and back matter: the parts of a book that are not stories (a preface, a "Life of …",
the contents, notes, an index, the publisher's advertisements). Every reader of books (Project
Gutenberg text and HTML, EPUB, Word manuscripts) asks here, so a section has one verdict
whatever format it came in. A section found is rejected with its reason, title and line; it never
becomes a training pair."""

from __future__ import annotations

import re

# Titles that open a book before its stories, matched at the start of the normalised title (so
# "PREFACE TO THE SECOND EDITION" counts). A weak title could also name a story ("The Life of Ma
# Parker"), so it counts only near the start of the book.
FRONT = (
    "preface", "foreword", "introduction", "introductory", "prefatory", "dedication",
    "dedicatory", "contents", "table of contents", "list of illustrations", "list of plates",
    "editor's note", "editors note", "publisher's note", "publishers note",
    "translator's preface", "translators preface", "translator's note", "translators note",
    "note on the text", "transcriber's note", "transcribers note", "acknowledgments",
    "acknowledgements", "errata", "frontispiece", "half-title", "copyright", "title page",
    "titlepage", "author's preface", "authors preface", "cover", "half title",
)
WEAK_FRONT = (
    "life of", "the life of", "memoir of", "a memoir", "biographical", "a biographical",
    "illustrations", "to the reader", "advertisement", "chronology", "a note", "note by",
    "epigraph", "author's note", "authors note", "dedicated to",
)
# Titles that close a book after its stories; the weak ones only in its second half.
BACK = (
    "appendix", "appendices", "glossary", "index", "endnotes", "footnotes", "bibliography",
    "transcriber's notes", "transcribers notes", "colophon", "advertisements",
    "publisher's advertisements", "catalogue of", "other books by", "books by",
    "by the same author", "also by", "about the author", "works by",
)
WEAK_BACK = (
    "notes", "note", "afterword", "postscript", "sources", "references", "vocabulary",
    "the end", "finis", "catalogue", "catalog",
)
NEAR_START, NEAR_END, VERY_END = 0.3, 0.5, 0.9

_LEADING_NUMBER = re.compile(r"^(?:[ivxlc]+|\d+)[.:)]?\s+", re.IGNORECASE)


def normalise(title: str) -> str:
    """Lower case, curly quotes straight, no leading number, no trailing punctuation."""
    text = title.replace("’", "'").replace("‘", "'").strip().lower()
    text = _LEADING_NUMBER.sub("", text)
    return re.sub(r"[\s.:;,!*_\-—–]+$", "", re.sub(r"\s+", " ", text))


def _starts(text: str, phrases: tuple[str, ...]) -> bool:
    return any(text == p or text.startswith(p + " ") or text.startswith(p + ",")
               or text.startswith(p + ":") for p in phrases)


def matter_of(title: str, share: float | None = None) -> str | None:
    """`front_matter`, `back_matter` or None (a story) for a section titled `title`.

    `share` is where the section starts in the book (0 = first, 1 = last) where known; a weak
    title counts only near the start (front) or in the second half (back), anywhere where the
    position is not known, and a short one ("Life of Aesop") also at the very end, where such
    books print it. Where the position is known, matter in the second half is back matter."""
    text = normalise(title)
    if not text:
        return None
    early = share is None or share <= NEAR_START
    late = share is None or share >= NEAR_END
    very_late = share is not None and share >= VERY_END and len(text.split()) <= 4
    front = _starts(text, FRONT) or ((early or very_late) and _starts(text, WEAK_FRONT))
    back = _starts(text, BACK) or (late and _starts(text, WEAK_BACK))
    if not (front or back):
        return None
    if share is not None:
        return "back_matter" if share > 0.5 else "front_matter"
    return "front_matter" if front else "back_matter"
