"""Word (.docx, python-docx) and OpenDocument (.odt, odfpy) manuscripts as blocks: paragraphs,
headings by their style (Title, Heading 1, Heading 2, … or an outline level) and page or
section breaks, for `documents.sections` to cut into stories."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Iterator

from storyteller.curate.records import Rejected, RawStory
from storyteller.curate.sources.documents import (Block, document_records, open_package,
                                                  read_member, title_from_name)
from storyteller.errors import InputError

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
# Runs of text inside these are not the paragraph's own words: a text box drawn over the page,
# deleted text, field codes, the alternative a newer Word already gave as its first choice.
_W_SKIP = {W + "txbxContent", W + "del", W + "instrText", W + "delText", MC_FALLBACK,
           W + "footnoteReference", W + "endnoteReference", W + "commentReference"}
_HEADING = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)


def _style_level(style) -> int | None:
    """0 for a Title style, N for Heading N (or a style based on one), else None."""
    seen = 0
    while style is not None and seen < 10:
        name = (style.name or "").strip()
        if name.lower() == "title":
            return 0
        match = _HEADING.match(name)
        if match:
            return int(match.group(1))
        style, seen = style.base_style, seen + 1
    return None


def _outline_level(p) -> int | None:
    found = p.find(f"{W}pPr/{W}outlineLvl")
    value = found.get(W + "val") if found is not None else None
    return int(value) + 1 if value and value.isdigit() and int(value) < 9 else None


def _on(element) -> bool:
    """A Word on/off property: present and not switched off."""
    return element is not None and element.get(W + "val", "true") not in ("0", "false", "off")


def _runs(element) -> Iterator[str | None]:
    """The text of a paragraph in order; None where a page break falls inside it."""
    for child in element:
        tag = child.tag
        if tag in _W_SKIP:
            continue
        if tag == W + "t":
            yield child.text or ""
        elif tag == W + "tab":
            yield "\t"
        elif tag == W + "br":
            yield None if child.get(W + "type") == "page" else "\n"
        elif tag == W + "cr":
            yield "\n"
        elif tag == W + "noBreakHyphen":
            yield "-"
        else:
            yield from _runs(child)


def _paragraph_blocks(paragraph, level: int | None) -> Iterator[Block]:
    p = paragraph._p
    if _on(p.find(f"{W}pPr/{W}pageBreakBefore")):
        yield Block("break")
    kind = "heading" if level is not None else "text"
    text: list[str] = []
    for piece in _runs(p):
        if piece is None:
            yield Block(kind, "".join(text), level or 0)
            yield Block("break")
            text = []
        else:
            text.append(piece)
    yield Block(kind, "".join(text), level or 0)
    section = p.find(f"{W}pPr/{W}sectPr/{W}type")
    if p.find(f"{W}pPr/{W}sectPr") is not None and (
            section is None or section.get(W + "val") != "continuous"):
        yield Block("break")  # a section break that starts a new page


def docx_blocks(document) -> Iterator[Block]:
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    def walk(container) -> Iterator[Block]:
        for item in container.iter_inner_content():
            if isinstance(item, Paragraph):
                try:
                    level = _style_level(item.style)
                except (KeyError, ValueError):  # a style the document names but never defines
                    level = None
                level = level if level is not None else _outline_level(item._p)
                yield from _paragraph_blocks(item, level)
            elif isinstance(item, Table):
                for row in item.rows:
                    cells = [c.text.strip() for c in row.cells]
                    yield Block("text", " ".join(dict.fromkeys(c for c in cells if c)))

    yield from walk(document)


def read_docx(path: Path) -> Iterator[RawStory | Rejected]:
    import docx

    archive, data = open_package(path, "Word document (.docx)")
    if "word/document.xml" not in archive.namelist():
        raise InputError.at(str(path), "a zip archive, but not a Word document (no "
                                       "word/document.xml)", "pass the original .docx")
    read_member(archive, "word/document.xml", str(path), "Word document")  # damaged → one error
    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(docx_blocks(document))
        title = (document.core_properties.title or "").strip()
    except (zipfile.BadZipFile, KeyError, ValueError, SyntaxError) as exc:
        # python-docx's errors for a package with broken parts (lxml's are SyntaxErrors)
        raise InputError.at(str(path), f"a damaged Word document: {exc}",
                            "open and save it again in Word or LibreOffice") from None
    yield from document_records(blocks, path, "Word document", title or title_from_name(path))


# ----------------------------------------------------------------------------- OpenDocument

TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
# Inside a paragraph these are not its own words: notes, annotations, tracked deletions.
_ODF_SKIP = {(TEXT, "note"), (OFFICE, "annotation"), (TEXT, "tracked-changes"),
             (TEXT, "bookmark-ref"), (TEXT, "soft-page-break")}


def _odf_text(node) -> str:
    parts: list[str] = []
    for child in node.childNodes:
        if child.nodeType == child.TEXT_NODE:
            parts.append(str(child.data))
            continue
        name = getattr(child, "qname", None)
        if name in _ODF_SKIP:
            continue
        if name == (TEXT, "s"):
            parts.append(" " * int(child.getAttribute("c") or 1))
        elif name == (TEXT, "tab"):
            parts.append("\t")
        elif name == (TEXT, "line-break"):
            parts.append("\n")
        else:
            parts.append(_odf_text(child))
    return "".join(parts)


class _OdfStyles:
    """Paragraph styles by name: the heading level and the page breaks each one implies,
    following parent styles (an automatic style P3 based on "Heading 1" is a heading)."""

    def __init__(self, document):
        self.styles = {}
        for group in (document.styles, document.automaticstyles):
            for style in group.childNodes:
                if getattr(style, "qname", (None, None))[1] == "style":
                    self.styles[style.getAttribute("name")] = style

    def _chain(self, name: str):
        seen = set()
        while name and name in self.styles and name not in seen:
            seen.add(name)
            yield self.styles[name]
            name = self.styles[name].getAttribute("parentstylename")

    def level(self, name: str) -> int | None:
        for style in self._chain(name):
            label = (style.getAttribute("displayname") or style.getAttribute("name") or "")
            label = label.replace("_20_", " ").strip()
            if label.lower() == "title":
                return 0
            match = _HEADING.match(label)
            if match:
                return int(match.group(1))
        return None

    def breaks(self, name: str) -> tuple[bool, bool]:
        before = after = False
        for style in self._chain(name):
            for child in style.childNodes:
                if getattr(child, "qname", (None, None))[1] == "paragraph-properties":
                    before |= child.getAttribute("breakbefore") == "page"
                    after |= child.getAttribute("breakafter") == "page"
        return before, after


def odt_blocks(document) -> Iterator[Block]:
    styles = _OdfStyles(document)

    def walk(node) -> Iterator[Block]:
        for child in node.childNodes:
            name = getattr(child, "qname", None)
            if name not in ((TEXT, "h"), (TEXT, "p")):
                if name and name not in _ODF_SKIP and child.nodeType == child.ELEMENT_NODE:
                    yield from walk(child)  # sections, lists, tables, frames
                continue
            style = child.getAttribute("stylename") or ""
            before, after = styles.breaks(style)
            level = styles.level(style)
            if name == (TEXT, "h"):
                outline = child.getAttribute("outlinelevel")
                level = int(outline) if outline and outline.isdigit() else (level or 1)
            if before:
                yield Block("break")
            yield Block("text" if level is None else "heading", _odf_text(child), level or 0)
            if after:
                yield Block("break")

    yield from walk(document.text)


def read_odt(path: Path) -> Iterator[RawStory | Rejected]:
    from odf.dc import Title
    from odf.opendocument import load

    archive, data = open_package(path, "OpenDocument text (.odt)")
    manifest = read_member(archive, "META-INF/manifest.xml", str(path), "OpenDocument text")
    if b"encryption-data" in manifest:
        raise InputError.at(str(path), "the OpenDocument text is password-protected",
                            "save a copy without the password and curate that")
    read_member(archive, "content.xml", str(path), "OpenDocument text")
    try:
        document = load(io.BytesIO(data))
        blocks = list(odt_blocks(document))
        titles = document.meta.getElementsByType(Title)
        title = _odf_text(titles[0]).strip() if titles else ""
    except Exception as exc:  # odfpy surfaces XML, zip and attribute errors of a broken file
        raise InputError.at(str(path), f"a damaged OpenDocument text: {exc}",
                            "open and save it again in LibreOffice") from None
    yield from document_records(blocks, path, "OpenDocument text",
                                title or title_from_name(path))
