"""HTML → plain text that keeps the block structure, and the `html` format: Project Gutenberg's
HTML editions (handed to the Gutenberg book splitter) and saved web pages (one story each).

The rendering is what a Gutenberg plain-text edition looks like, so one splitter serves both:
paragraphs separated by a blank line, a heading on its own line after two blank lines and
before one, a rule (`<hr>`) three blank lines, `<br>` a line break, `<pre>` and verse as they
are (verse indented), each table row and list item on a line of its own, footnotes as
`[Footnote 1: …]` and illustrations as `[Illustration: …]`; scripts, styles, page numbers and
hidden elements dropped. Each line of the text remembers the
line of the HTML it came from, so a story is located in the file a person opens. Outside a
Gutenberg book (a web page, an EPUB chapter), notes and pictures are left out of the story.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import lxml.html

from storyteller.curate.decode import decode_bytes
from storyteller.curate.records import Rejected, RawStory
from storyteller.curate.sources.gutenberg import is_gutenberg, read_book
from storyteller.errors import InputError

HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
BLOCKS = {"p", "div", "blockquote", "pre", "table", "ul", "ol", "dl", "section", "article",
          "main", "header", "footer", "aside", "nav", "figure", "figcaption", "center",
          "address", "hr", "form", "fieldset", "details", "summary", "body", "html", "caption",
          "hgroup", "legend"}
LINES = {"tr", "li", "dt", "dd"}  # one line each, no blank line between them
NEVER = {"script", "style", "head", "template", "svg", "math", "iframe", "object", "embed",
         "select", "button", "input", "textarea", "map", "canvas", "audio", "video", "title",
         "meta", "link", "base"}
CHROME = {"nav", "header", "footer", "aside", "form"}  # a web page's frame, not its story
_FOOTNOTE = {"footnote", "foot", "fnote", "fn", "endnote", "rearnote"}
_FIGURE = re.compile(r"^(?:fig\w*|illus\w*|image|img|illustration)$")
_PAGE_NUMBER = re.compile(r"pagenum|pageno|page-?number|^pb$|linenum")
_BACKLINK = re.compile(r"^[\[(]?(?:return|back|return to text|back to text|↩|↑|\^)[\])]?$",
                       re.IGNORECASE)
_NOTE_LABEL = re.compile(r"^\s*\[?([0-9]{1,4}|[ivxlc]{1,6}|[a-z]|[*†‡§]+)\]?[.:)]?\s+(?=\S)",
                         re.IGNORECASE)
_SPACE = re.compile(r"[ \t\n\r\f\xa0]+")
_VERSE = {"poem", "poetry", "verse", "stanza", "poem-container", "lg", "linegroup"}
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)|"""
                      rb"""<\?xml[^>]+encoding\s*=\s*["']([\w.:-]+)""", re.IGNORECASE)


@dataclass
class Rendered:
    """The text of an HTML document, its headings (start, end, level, text), the offsets of
    the elements asked for by id, and the source line of each line of text."""

    text: str
    headings: list[tuple[int, int, int, str]] = field(default_factory=list)
    marks: dict[str, int] = field(default_factory=dict)
    starts: list[int] = field(default_factory=list)  # rendered lines where a source line begins
    origins: list[int] = field(default_factory=list)  # … and that source line

    def source_line(self, line: int) -> int:
        """The HTML line that rendered line `line` (1-based) came from."""
        index = bisect.bisect_right(self.starts, line) - 1
        return self.origins[index] if index >= 0 else 1


def _classes(element) -> set[str]:
    names = set((element.get("class") or "").lower().split())
    return names | set((element.get("epub:type") or "").lower().split())


def _hidden(element) -> bool:
    style = (element.get("style") or "").replace(" ", "").lower()
    return element.get("hidden") is not None or "display:none" in style or \
        element.get("aria-hidden") == "true"


class _Writer:
    """Text out, with pending line breaks (the most asked for wins, so nested blocks never
    pile up blank lines) and HTML's collapsing of spaces."""

    def __init__(self, book: bool, chrome: bool, marks: frozenset[str] = frozenset(),
                 skip: object = None):
        self.book, self.chrome, self.wanted, self.skip = book, chrome, marks, skip
        # A book's notes and pictures are kept as its text edition writes them; elsewhere they
        # are not the story's words and are left out.
        self.notes = book
        self.parts: list[str] = []
        self.size = 0
        self.line = 1
        self.pending = 0
        self.space = False
        self.breaks = 0  # <br>s since the last text
        self.in_table = 0
        self.verse = 0  # inside a poem: each line indented, as verse is in a text edition
        self.out = Rendered("")

    def request(self, newlines: int) -> None:
        if (self.in_table or self.verse) and newlines > 1:
            newlines = 1  # a table's rows and a poem's lines, one line each
        self.pending = max(self.pending, newlines)

    def _emit(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        self.line += text.count("\n")

    def write(self, text: str, source_line: int | None, pre: bool = False) -> None:
        if not pre:
            text = _SPACE.sub(" ", text)
            if text.startswith(" "):
                self.space = True
            if not text.strip(" "):
                return
            trailing = text.endswith(" ")
            text = text.strip(" ")
        elif not text:
            return
        if self.pending and self.size:
            self._emit("\n" * self.pending)
            self._origin(source_line)
            self._indent(pre)
        elif not self.size:
            self._origin(source_line)
            self._indent(pre)
        elif self.space and not self.parts[-1].endswith(("\n", " ")):
            self._emit(" ")
        self.pending, self.space, self.breaks = 0, False, 0
        if pre and "\n" in text and source_line is not None:
            first, _, rest = text.partition("\n")
            self._emit(first)
            for offset, piece in enumerate(rest.split("\n"), start=1):
                self._emit("\n")
                self._origin(source_line + offset)
                self._emit(piece)
        else:
            self._emit(text)
        if not pre:
            self.space = trailing

    def _indent(self, pre: bool) -> None:
        if self.verse and not pre:
            self._emit("    ")

    def trim(self) -> None:
        """Drop the whitespace at the end of the text (a <pre>'s trailing blank lines)."""
        while self.parts and not self.parts[-1].strip():
            gone = self.parts.pop()
            self.size -= len(gone)
            self.line -= gone.count("\n")
        if self.parts and self.parts[-1] != self.parts[-1].rstrip():
            kept = self.parts[-1].rstrip()
            self.size -= len(self.parts[-1]) - len(kept)
            self.line -= self.parts[-1][len(kept):].count("\n")
            self.parts[-1] = kept

    def _origin(self, source_line: int | None) -> None:
        if source_line is not None:
            self.out.starts.append(self.line)
            self.out.origins.append(source_line)

    def mark(self, element) -> None:
        ident = element.get("id") or element.get("name")
        if ident and ident in self.wanted and ident not in self.out.marks:
            self.out.marks[ident] = self.size + (self.pending if self.size else 0)

    def finish(self) -> Rendered:
        self.out.text = "".join(self.parts)
        return self.out


def _render_children(writer: _Writer, element, pre: bool) -> None:
    if element.text:
        writer.write(element.text, element.sourceline, pre)
    for child in element:
        _render(writer, child, pre)
        if child.tail:
            writer.write(child.tail, child.sourceline, pre)


def _subtext(element) -> str:
    """An element's text on one line, for a footnote or a caption (its pictures left out)."""
    inner = _Writer(book=False, chrome=True)
    inner.notes = True  # a note's own number is often a link back to where it is marked
    _render_children(inner, element, False)
    return _SPACE.sub(" ", inner.finish().text).strip()


def _footnote(element) -> str:
    text = re.sub(r"\(\s*\)", "", _subtext(element)).strip()
    label = _NOTE_LABEL.match(text)
    if label:
        text = text[label.end():]
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1].strip()
    return f"[Footnote {label.group(1)}: {text}]" if label else f"[Footnote: {text}]"


def _figure(element) -> str:
    caption = _subtext(element)
    if not caption:
        alts = [img.get("alt", "").strip() for img in element.iter("img")]
        caption = next((a for a in alts if a and not re.search(r"\.\w{3,4}$", a)), "")
    return f"[Illustration: {caption}]" if caption else "[Illustration]"


def _render(writer: _Writer, element, pre: bool = False) -> None:
    tag = element.tag if isinstance(element.tag, str) else ""
    if not tag or tag in NEVER or element is writer.skip or _hidden(element):
        return
    if not writer.chrome and tag in CHROME:
        return
    writer.mark(element)
    classes = _classes(element)
    if any(_PAGE_NUMBER.search(name) for name in classes):
        return
    line = element.sourceline
    if tag == "hr":  # a section break: the wider gap a text edition leaves between sections
        writer.request(4)
        return
    if tag == "br":
        writer.breaks += 1
        writer.request(min(writer.breaks, 2))
        return
    if tag == "img":
        alt = (element.get("alt") or "").strip()
        if len(alt) == 1 and alt.isalpha():  # a drop capital drawn as a picture
            writer.write(alt, line)
        elif writer.book:
            writer.request(2)
            writer.write("[Illustration]", line)
            writer.request(2)
        return
    if tag == "a" and _BACKLINK.match((element.text_content() or "").strip()):
        return
    if tag == "a" and _is_note_reference(element, classes):
        if not writer.notes:
            return
        number = _SPACE.sub("", element.text_content())
        writer.write(number if number.startswith("[") else f"[{number}]", line)
        return
    note = None
    if classes & _FOOTNOTE and tag in BLOCKS | LINES | {"p"}:
        note = _footnote
    elif tag == "figure" or (tag in BLOCKS and any(_FIGURE.match(c) for c in classes)):
        note = _figure
    if note is not None:
        # A note or a picture is a paragraph of its own, or nothing where notes are left out.
        if writer.notes:
            writer.request(2)
            writer.write(note(element), line)
            writer.request(2)
        return
    if tag in HEADINGS:
        writer.request(3)
        first, size = len(writer.parts), writer.size
        _render_children(writer, element, pre)
        text = "".join(writer.parts[first:])
        if text.strip():
            start = size + len(text) - len(text.lstrip("\n"))
            writer.out.headings.append((start, writer.size, HEADINGS[tag], text.strip()))
        writer.request(2)
        return
    if tag == "pre":
        writer.request(2)
        body = element.text or ""
        element_text = body[1:] if body.startswith("\n") else body
        writer.write(element_text, line + (body.startswith("\n")), pre=True)
        for child in element:
            _render(writer, child, True)
            if child.tail:
                writer.write(child.tail, child.sourceline, True)
        writer.trim()
        writer.request(2)
        return
    verse = bool(classes & _VERSE)
    stanza = "stanza" in classes or "lg" in classes
    if stanza or (verse and not writer.verse):  # a poem, and each stanza, after a blank line
        writer.pending = max(writer.pending, 2)
    writer.verse += verse
    if tag in ("td", "th"):
        writer.space = True
    if tag == "table":
        writer.request(2)
        writer.in_table += 1
    elif tag in LINES:
        writer.request(1)
    elif tag in BLOCKS:
        writer.request(2)
    _render_children(writer, element, pre)
    if tag == "table":
        writer.in_table -= 1
        writer.request(2)
    elif tag in LINES:
        writer.request(1)
    elif tag in BLOCKS:
        writer.request(2)
    writer.verse -= verse
    if stanza or (verse and not writer.verse):
        writer.pending = max(writer.pending, 2)


def _is_note_reference(element, classes: set[str]) -> bool:
    """A link to a footnote, written `[1]` as the plain-text editions write it."""
    href = (element.get("href") or "").lower()
    text = _SPACE.sub("", element.text_content() or "")
    return bool(href.startswith("#") and re.fullmatch(r"\[?(?:\d{1,4}|[*†‡])\]?", text)
                and (classes & {"fnanchor", "noteref", "footnote-ref"}
                     or re.search(r"note|fn|foot", href)))


def parse(data: bytes, where: str):
    """The document tree of HTML bytes, decoded by their BOM, their declared charset, else as
    UTF-8 with the usual fallback."""
    if not data.strip():
        raise InputError.at(where, "the file is empty")
    declared = _CHARSET.search(data[:4096])
    text = None
    if declared and not data.startswith(b"\xef\xbb\xbf"):
        name = (declared.group(1) or declared.group(2)).decode("ascii", "replace")
        try:
            text = data.decode(name, errors="replace")
        except LookupError:
            text = None
    if text is None:
        text = decode_bytes(data)[0]
    parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, huge_tree=True)
    try:
        return lxml.html.document_fromstring(text.encode("utf-8"), parser=parser)
    except Exception as exc:  # lxml.etree.ParserError and friends for a file with no markup
        raise InputError.at(where, f"not readable as HTML: {exc}") from None


def render(root, *, book: bool = True, chrome: bool = True, marks: frozenset[str] = frozenset(),
           skip: object = None) -> Rendered:
    """The text of `root` (a document or an element). `book`: notes, note marks and pictures
    kept as a Gutenberg text edition writes them (`[Footnote 1: …]`, `[1]`, `[Illustration]`),
    else left out; `chrome`: a page's nav, header, footer, aside and forms kept; `marks`: ids
    whose offsets to record; `skip`: an element left out (a title)."""
    writer = _Writer(book, chrome, marks, skip)
    _render(writer, root)
    return writer.finish()


def _page_title(root) -> tuple[str, object]:
    """A web page's title and the element it came from: its first <h1>, else <title>."""
    for h1 in root.iter("h1"):
        text = _SPACE.sub(" ", h1.text_content()).strip()
        if text:
            return text, h1
    title = root.find(".//title")
    text = _SPACE.sub(" ", title.text_content()).strip() if title is not None else ""
    return text, None


def _page_body(root):
    """Where a web page's story is: its one <article>, else its <main>, else its <body>."""
    articles = list(root.iter("article"))
    if len(articles) == 1:
        return articles[0]
    main = root.find(".//main")
    if main is not None:
        return main
    body = root.find(".//body")
    return body if body is not None else root


def read_html(path: Path, encoding: str = "auto") -> Iterator[RawStory | Rejected]:
    yield from read_html_reading(path, encoding)[0]


def read_html_reading(path: Path, encoding: str = "auto"
                      ) -> tuple[list[RawStory | Rejected], dict[str, object]]:
    """The page's records, and for a Gutenberg edition how the book was divided (for the
    report); a page that is not a book says nothing of that."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError.at(str(path), f"cannot read: {exc.strerror or exc}") from None
    if encoding != "auto":
        data = decode_bytes(data, encoding)[0].encode("utf-8")
    root = parse(data, str(path))
    whole = render(root)
    if is_gutenberg(whole.text):
        book = read_book(whole.text, str(path))
        for item in book.records:
            if item.line is not None:
                item.line = whole.source_line(item.line)
        return book.records, {"method": book.method, "notes": book.notes}
    return list(page_records(root, str(path))), {}


def page_records(root, source: str) -> Iterator[RawStory | Rejected]:
    """A page that is not a book: one story, titled by its <h1> or <title>."""
    title, title_element = _page_title(root)
    body = _page_body(root)
    page = render(body, book=False, chrome=False, skip=title_element)
    text = page.text.strip()
    line = body.sourceline or 1
    if not text:
        yield Rejected(source, line, "empty", "the page holds no text outside its title, "
                                              "navigation and scripts")
        return
    meta = {"title": title} if title else {}
    yield RawStory(text=text, source=source, line=page.source_line(1) if page.starts else line,
                   meta=meta)
