"""EPUB books (2 and 3): one story per section of the reading order, titled by the book's own
navigation (its table of contents), else by the section's heading.

The container is a zip with a package file (`content.opf`) that lists the documents and their
order (the spine) and points at the navigation (EPUB 3's nav document or EPUB 2's NCX). A
contents entry starts a section, also inside a document (`chapter.xhtml#tale-2`); a document the
contents do not name continues the section before it (a long chapter split over files), unless
it opens with a heading of its own or the book's landmarks name it. Front and back matter
(cover, title page, copyright, contents, preface, notes, …) is rejected with its title, by the
verdict every book reader shares (`matter.py`) or by what the book declares a page to be.
Read with the standard library's zipfile and lxml, so a damaged book is one located error.
"""

from __future__ import annotations

import bisect
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urldefrag

from lxml import etree

from storyteller.curate.records import Rejected, RawStory
from storyteller.curate.sources.html import Rendered, parse, render
from storyteller.curate.sources.documents import open_package, read_member
from storyteller.curate.sources.matter import matter_of, normalise
from storyteller.errors import InputError

KIND = "EPUB"
_XML = etree.XMLParser(recover=True, resolve_entities=False, no_network=True, huge_tree=True)
_CHAPTER_TYPES = ("application/xhtml+xml", "text/html", "application/xml", "text/xml")
# What a book may declare a page to be (EPUB 3 landmarks and epub:type, EPUB 2 guide types).
FRONT_TYPES = {"cover", "titlepage", "title-page", "halftitlepage", "copyright-page",
               "copyright", "toc", "loi", "lot", "preface", "foreword", "dedication",
               "epigraph", "acknowledgments", "acknowledgements", "frontmatter", "imprint",
               "contributors", "other.ms-coverimage-standard"}
BACK_TYPES = {"bibliography", "glossary", "index", "appendix", "colophon", "notes",
              "endnotes", "rearnotes", "footnotes", "backmatter", "afterword", "imprimatur"}
_BOILERPLATE = re.compile(r"\*\*\*\s*(?:START|END) OF (?:THE|THIS) PROJECT GUTENBERG"
                          r"|(?:FULL )?PROJECT GUTENBERG(?:™|-tm)? LICEN[SC]E", re.IGNORECASE)


def _local(element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _find_all(root, name: str):
    return [e for e in root.iter() if _local(e) == name]


@dataclass
class Book:
    """What the package says: the reading order, the contents and the landmarks."""

    title: str = ""
    spine: list[tuple[str, str, bool]] = field(default_factory=list)  # (file, media, linear)
    contents: list[tuple[str, str, str]] = field(default_factory=list)  # (file, anchor, title)
    # (file, anchor) → the types the landmarks or the guide declare there, and their titles
    landmarks: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    nav: str = ""  # the navigation document, a contents page where the spine holds it


def _resolve(base: str, href: str) -> tuple[str, str]:
    path, fragment = urldefrag(href.strip())
    return posixpath.normpath(posixpath.join(posixpath.dirname(base), unquote(path))), fragment


def _xml(data: bytes, where: str, name: str):
    root = etree.fromstring(data, _XML) if data.strip() else None
    if root is None:
        raise InputError.at(where, f"the {KIND}'s {name} is not readable XML",
                            "the book is damaged: download or export it again")
    return root


def read_package(archive, where: str) -> Book:
    names = set(archive.namelist())
    opf_path = ""
    if "META-INF/container.xml" in names:
        container = _xml(read_member(archive, "META-INF/container.xml", where, KIND), where,
                         "META-INF/container.xml")
        opf_path = next((e.get("full-path", "") for e in _find_all(container, "rootfile")), "")
    if opf_path not in names:  # a missing or wrong container: the one package file, if any
        opf_path = next((n for n in sorted(names) if n.lower().endswith(".opf")), "")
    if not opf_path:
        raise InputError.at(where, f"not an {KIND}: no package file (.opf) in the archive",
                            "pass the original .epub")
    opf = _xml(read_member(archive, opf_path, where, KIND), where, opf_path)
    manifest = {}
    for item in _find_all(opf, "item"):
        file, _ = _resolve(opf_path, item.get("href", ""))
        manifest[item.get("id")] = (file, item.get("media-type", ""),
                                    set((item.get("properties") or "").split()))
    book = Book(title=next((t.text.strip() for t in _find_all(opf, "title") if t.text), ""))
    spines = _find_all(opf, "spine")
    for ref in _find_all(spines[0], "itemref") if spines else []:
        if ref.get("idref") in manifest:
            file, media, _ = manifest[ref.get("idref")]
            book.spine.append((file, media, ref.get("linear", "yes") != "no"))
    for reference in _find_all(opf, "reference"):  # EPUB 2's guide
        file, anchor = _resolve(opf_path, reference.get("href", ""))
        declared = (reference.get("type") or "").lower()
        book.landmarks.setdefault((file, anchor), set()).add(declared)
        if declared in FRONT_TYPES | BACK_TYPES:
            book.labels.setdefault(file, (reference.get("title") or "").strip())
    nav = next((f for f, _, props in manifest.values() if "nav" in props), None)
    ncx_id = spines[0].get("toc") if spines else None
    ncx = manifest.get(ncx_id, (None,))[0] or next(
        (f for f, media, _ in manifest.values() if media == "application/x-dtbncx+xml"), None)
    if nav and nav in names:
        book.nav = nav
        book.labels.setdefault(nav, "Contents")
        _read_nav(book, archive.read(nav), nav)
    if not book.contents and ncx and ncx in names:
        _read_ncx(book, archive.read(ncx), ncx)
    return book


def _read_nav(book: Book, data: bytes, nav_path: str) -> None:
    root = parse(data, nav_path)
    for nav in root.iter("nav"):
        kinds = set((nav.get("epub:type") or nav.get("role") or "").lower().split())
        for link in nav.iter("a"):
            file, anchor = _resolve(nav_path, link.get("href", ""))
            if kinds & {"toc", "doc-toc"}:
                title = re.sub(r"\s+", " ", link.text_content()).strip()
                book.contents.append((file, anchor, title))
            elif kinds & {"landmarks", "doc-landmarks"}:
                declared = set((link.get("epub:type") or "").lower().split())
                book.landmarks.setdefault((file, anchor), set()).update(declared)
                if declared & (FRONT_TYPES | BACK_TYPES):
                    book.labels[file] = re.sub(r"\s+", " ", link.text_content()).strip()


def _read_ncx(book: Book, data: bytes, ncx_path: str) -> None:
    root = etree.fromstring(data, _XML) if data.strip() else None
    for point in _find_all(root, "navPoint") if root is not None else []:
        label = next((t for t in _find_all(point, "text")), None)
        content = next((c for c in point if _local(c) == "content"), None)
        if content is not None:
            file, anchor = _resolve(ncx_path, content.get("src", ""))
            title = re.sub(r"\s+", " ", "".join(label.itertext()) if label is not None else "")
            book.contents.append((file, anchor, title.strip()))


def _protected(archive, spine_files: set[str]) -> bool:
    """Whether the book's text is encrypted (DRM); obfuscated fonts are not."""
    if "META-INF/encryption.xml" not in archive.namelist():
        return False
    root = etree.fromstring(archive.read("META-INF/encryption.xml"), _XML)
    for data in _find_all(root, "EncryptedData") if root is not None else []:
        method = next((m.get("Algorithm", "") for m in _find_all(data, "EncryptionMethod")), "")
        uri = next((c.get("URI", "") for c in _find_all(data, "CipherReference")), "")
        if "embedding" not in method and "adobe.com/pdf/enc" not in method \
                and unquote(uri) in spine_files:
            return True
    return False


@dataclass
class Section:
    title: str
    text: str
    declared: set[str]
    titled_by_contents: bool
    linear: bool = True
    error: str = ""  # why the document could not be read


def _strip_heading(rendered: Rendered, start: int, end: int, title: str) -> tuple[str, str]:
    """The section's title and text without the heading(s) it opens with that repeat it."""
    text = rendered.text[start:end]
    offset = start + len(text) - len(text.lstrip())
    index = bisect.bisect_left(rendered.headings, (offset,))
    for h_start, h_end, _, heading in rendered.headings[index:]:
        if h_start != offset or h_end > end:
            break
        key, wanted = normalise(heading), normalise(title)
        if title and key != wanted and not (key and (key in wanted or wanted in key)):
            break
        title = title or re.sub(r"\s+", " ", heading)
        rest = rendered.text[h_end:end]
        offset = h_end + len(rest) - len(rest.lstrip())
    return title, rendered.text[offset:end].strip()


def _types(element) -> set[str]:
    return set((element.get("epub:type") or "").lower().split()) if element is not None else set()


def _leading_types(body) -> set[str]:
    """The types declared by the elements a document opens with (`<section
    epub:type="frontmatter toc">` around all of it, or around its first part)."""
    found, element = set(), body
    for _ in range(3):
        children = [c for c in element if isinstance(c.tag, str)] if element is not None else []
        if not children:
            break
        element = children[0]
        found |= _types(element)
    return found


def _typed_ids(root, anchors: set[str]) -> dict[str, set[str]]:
    """id → the types declared on the element and around it, for the contents' anchors and for
    each element that declares one (a one-file book's frontmatter, rearnotes …)."""
    found: dict[str, set[str]] = {}
    for element in root.iter():
        ident = element.get("id") if isinstance(element.tag, str) else None
        if ident and (ident in anchors or element.get("epub:type")):
            found[ident] = set().union(*map(_types, [element, *element.iterancestors()]))
    return found


def book_sections(archive, book: Book, where: str) -> list[Section]:
    entries: dict[str, list[tuple[str, str]]] = {}
    for file, anchor, title in book.contents:
        entries.setdefault(file, []).append((anchor, title))
    sections: list[Section] = []
    for file, media, linear in book.spine:
        if media not in _CHAPTER_TYPES and not file.lower().endswith((".xhtml", ".html", ".htm")):
            continue  # an image or SVG page: no text to read
        try:
            root = parse(read_member(archive, file, where, KIND), file)
        except InputError as error:  # one damaged or missing chapter: the others are read
            message = error.problems[0].message
            sections.append(Section(entries.get(file, [("", "")])[0][1], "", set(), True, linear,
                                    message if file in message else f"{file}: {message}"))
            continue
        named = entries.get(file, [])
        typed = _typed_ids(root, {a for a, _ in named if a})
        landmarks = {a: t for (f, a), t in book.landmarks.items() if f == file}
        rendered = render(root, book=False, marks=frozenset(
            [*typed, *(a for a, _ in named if a), *(a for a in landmarks if a)]))
        body = root.find(".//body")
        whole = _types(body) | landmarks.get("", set())
        if file == book.nav:
            whole.add("toc")

        at_offset: dict[int, set[str]] = {}
        for ident, types in [*typed.items(), *landmarks.items()]:
            if ident in rendered.marks:
                at_offset.setdefault(rendered.marks[ident], set()).update(types)

        def declared_at(offset: int) -> set[str]:
            """What the book declares the section starting at `offset` to be."""
            leading = _leading_types(body) if offset == 0 else set()
            return whole | leading | at_offset.get(offset, set())

        cuts = sorted({(rendered.marks.get(a, 0) if a else 0): t for a, t in named}.items())
        opens_with_heading = bool(rendered.headings) and \
            not rendered.text[:rendered.headings[0][0]].strip()
        if (not cuts or cuts[0][0] > 0) and any(s.titled_by_contents for s in sections) and \
                not opens_with_heading and not declared_at(0) & (FRONT_TYPES | BACK_TYPES) \
                and sections[-1].linear == linear and not sections[-1].error:
            # The contents do not name this document's start: it goes on the section before.
            first = cuts[0][0] if cuts else len(rendered.text)
            more = rendered.text[:first].strip()
            if more:
                sections[-1].text = (sections[-1].text + "\n\n" + more).strip()
            starts = cuts
        else:
            starts = cuts if cuts and cuts[0][0] == 0 else [(0, "")] + cuts
        bounds = [offset for offset, _ in starts[1:]] + [len(rendered.text)]
        for (offset, title), end in zip(starts, bounds):
            named_by_contents = bool(title)
            title, text = _strip_heading(rendered, offset, end, title)
            # A page the contents skip but the landmarks name (a cover, a copyright page).
            title = title or (book.labels.get(file, "") if offset == 0 else "")
            sections.append(Section(title, text, declared_at(offset), named_by_contents, linear))
    return sections


def _declared_matter(section: Section, share: float) -> str | None:
    if section.declared & FRONT_TYPES:
        return "front_matter"
    if section.declared & BACK_TYPES:
        return "back_matter"
    if _BOILERPLATE.search(section.text[:5000]) or _BOILERPLATE.search(section.title):
        return "front_matter" if share < 0.5 else "back_matter"
    if not section.linear:
        return "front_matter" if share < 0.5 else "back_matter"
    return None


def read_epub(path: Path) -> Iterator[RawStory | Rejected]:
    where = str(path)
    archive, _ = open_package(path, KIND)
    book = read_package(archive, where)
    if not book.spine:
        raise InputError.at(where, f"the {KIND} lists no documents to read (an empty spine)",
                            "the book is damaged: download or export it again")
    if _protected(archive, {f for f, _, _ in book.spine}):
        raise InputError.at(where, f"the {KIND} is protected by DRM (its text is encrypted)",
                            "curate a copy without DRM")
    sections = book_sections(archive, book, where)
    if not any(s.text for s in sections) and any(s.error for s in sections):
        raise InputError.at(where, next(s.error for s in sections if s.error),
                            "the book is damaged: download or export it again")
    if not any(s.text for s in sections):
        raise InputError.at(where, f"the {KIND} holds no text",
                            "are its pages images? curate a text edition")
    last = max(len(sections) - 1, 1)
    # Before the first section the contents name, an untitled page (a title page, a
    # dedication) is front matter.
    first_named = next((i for i, s in enumerate(sections) if s.titled_by_contents), 0)
    for index, section in enumerate(sections):
        share = index / last
        verdict = (matter_of(section.title, share) if section.title else None) \
            or _declared_matter(section, share) \
            or ("front_matter" if index < first_named and not section.title else None)
        label = repr(section.title) if section.title else f"number {index + 1} (untitled)"
        if section.error:
            yield Rejected(where, None, "unreadable", f"section {label}: {section.error}", index)
        elif verdict:
            words = len(section.text.split())
            yield Rejected(where, None, verdict, f"section {label}: {words} words", index)
        elif not section.text:
            if section.titled_by_contents or section.title:
                yield Rejected(where, None, "empty", f"section {label} has no text", index)
        else:
            meta = {"title": section.title} if section.title else {}
            if not meta and len(sections) == 1 and book.title:
                meta["title"] = book.title
            yield RawStory(text=section.text, source=where, position=index, meta=meta)
