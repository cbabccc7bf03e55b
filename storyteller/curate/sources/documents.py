"""Writers' documents: Word (.docx), OpenDocument (.odt) and RTF manuscripts.

Each document is read as blocks (paragraphs, headings with their level, page breaks) and cut
into stories at headings and page breaks, each heading its story's title (`sections`). Word is
read with python-docx, OpenDocument with odfpy, RTF with striprtf. A file that is not what its
name says (a text file renamed .docx, a password-protected or cut-short document) is one located
error saying what it is instead; everything else in it is read.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from storyteller.curate.decode import decode_bytes
from storyteller.curate.records import Rejected, RawStory
from storyteller.curate.sources.matter import matter_of
from storyteller.errors import InputError

CFB = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the container of .doc files and encrypted Office files
_ENCRYPTED = "EncryptionInfo".encode("utf-16-le")


def sniff(head: bytes) -> str | None:
    """What a file's first bytes say it is: docx, odt, epub, rtf, html, a zip, pdf, cfb."""
    if head.startswith(CFB):
        return "cfb"
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        if b"mimetypeapplication/epub+zip" in head[:100]:
            return "epub"
        if b"mimetypeapplication/vnd.oasis.opendocument.text" in head[:100]:
            return "odt"
        return "docx" if b"word/" in head or b"[Content_Types].xml" in head else "zip"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"{\\rtf"):
        return "rtf"
    if re.match(rb"(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)", text[:2048],
                re.IGNORECASE | re.DOTALL):
        return "html"
    return None


_WHAT = {"rtf": "an RTF document (rename it .rtf)", "html": "an HTML page (rename it .html)",
         "pdf": "a PDF, which curate does not read (export its text)",
         "epub": "an EPUB book (rename it .epub)", "odt": "an OpenDocument text (rename it .odt)",
         "docx": "a Word document (rename it .docx)"}


def open_package(path: Path, kind: str) -> tuple[zipfile.ZipFile, bytes]:
    """The zip archive that a .docx, .odt or .epub is (and its bytes), or one located error
    saying why not."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError.at(str(path), f"cannot read: {exc.strerror or exc}") from None
    where = str(path)
    if not data:
        raise InputError.at(where, "the file is empty", f"save the {kind} again")
    found = sniff(data[:4096])
    if found == "cfb":
        if _ENCRYPTED in data:
            raise InputError.at(where, f"the {kind} is password-protected",
                                "save a copy without the password and curate that")
        raise InputError.at(where, f"an old binary Word file (.doc), not a {kind}",
                            "save it as .docx")
    if not data.startswith(b"PK"):
        what = _WHAT.get(found or "", "")
        if not what:
            what = "plain text (a text file renamed?)" if _looks_like_text(data) else "unknown data"
        raise InputError.at(where, f"not a {kind}: it holds {what}",
                            "pass the original file, or --format for what it is")
    try:
        return zipfile.ZipFile(io.BytesIO(data)), data
    except zipfile.BadZipFile:
        raise InputError.at(where, f"the {kind} is cut short or damaged (its zip directory is "
                                   "missing)", "copy or download it again") from None


def _looks_like_text(data: bytes) -> bool:
    sample = decode_bytes(data[:4096])[0]
    return sum(c.isprintable() or c in "\n\t" for c in sample) > 0.95 * max(len(sample), 1)


def read_member(archive: zipfile.ZipFile, name: str, where: str, kind: str) -> bytes:
    try:
        return archive.read(name)
    except KeyError:
        raise InputError.at(where, f"the {kind} has no {name}",
                            "it is damaged or not a real one: save it again") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise InputError.at(where, f"the {kind}'s {name} is damaged ({exc})",
                            "copy or download it again") from None


# ------------------------------------------------------------------------- blocks → stories


@dataclass
class Block:
    """A paragraph ("text"), a heading with its level (0 for a Title style, 1 for Heading 1,
    ...), or a page or section break ("break")."""

    kind: str
    text: str = ""
    level: int = 0


@dataclass
class Section:
    title: str | None
    paragraphs: list[str] = field(default_factory=list)
    # Titled by a heading at the level that divides the stories (not a book's or part's title).
    story_heading: bool = False


def story_level(blocks: Iterable[Block]) -> int | None:
    """The heading level that divides the stories: the highest level used more than once, else
    the deepest one used. A level above it (a manuscript's title over its stories) names the
    book, and levels below it (scene headings inside a story) stay in the story's text."""
    counts = Counter(b.level for b in blocks if b.kind == "heading")
    repeated = [level for level, n in counts.items() if n > 1]
    return min(repeated) if repeated else max(counts, default=None)


def sections(blocks: list[Block]) -> list[Section]:
    """Cut at each heading of the story level (its title), at each heading above it (a part's
    or the book's title, kept only where text follows it) and at each page break."""
    level = story_level(blocks)
    found: list[Section] = [Section(None)]
    for block in blocks:
        if block.kind == "break":
            found.append(Section(None))
        elif block.kind == "heading" and block.level <= (level if level is not None else -1):
            found.append(Section(block.text.strip(), story_heading=block.level == level))
        elif block.text.strip():
            found[-1].paragraphs.append(block.text.strip("\n"))
    # A break before a heading is layout; a heading with no text above the story level names
    # a part; at the story level, it is a story with no text (rejected, so it is seen).
    return [s for s in found if s.paragraphs or (s.title and s.story_heading)]


def section_records(found: list[Section], source: str, default_title: str | None
                    ) -> Iterator[RawStory | Rejected]:
    """Each section as a story, or as a reject: front or back matter (by its title and place,
    `matter.py`), or a story heading with no text under it."""
    last = max(len(found) - 1, 1)
    for index, section in enumerate(found):
        title = section.title
        if title and (verdict := matter_of(title, index / last)):
            words = sum(len(p.split()) for p in section.paragraphs)
            yield Rejected(source, None, verdict, f"section {title!r}: {words} words", index)
            continue
        if not section.paragraphs:
            yield Rejected(source, None, "empty", f"section {title!r} has no text", index)
            continue
        meta = {"title": title} if title else {}
        if not title and len(found) == 1 and default_title:
            meta["title"] = default_title
        yield RawStory(text="\n\n".join(section.paragraphs), source=source, position=index,
                       meta=meta)


def document_records(blocks: list[Block], path: Path, kind: str,
                     default_title: str | None) -> Iterator[RawStory | Rejected]:
    found = sections(blocks)
    if not found:
        raise InputError.at(str(path), f"the {kind} holds no text", "is it the right file?")
    yield from section_records(found, str(path), default_title)


def title_from_name(path: Path) -> str:
    """A one-story document's title where it names none: its file name, as for text files."""
    return path.stem.replace("_", " ").replace("-", " ").strip().capitalize()


# ------------------------------------------------------------------------------------- RTF

_BREAK = "\x0c"
# \page (page break), \sect (section break) and \pagebb (page break before a paragraph) become a
# form feed the converter passes through; \pagebb's kin (\pagebbN) and \sectd are not breaks.
_RTF_BREAKS = re.compile(r"(?<!\\)\\(?:page|sect|pagebb)(?![a-z])(?:-?\d+)? ?")
_RTF_TITLE = re.compile(r"\{\\title\s+((?:[^{}\\]|\\.)*)\}")


def read_rtf(path: Path, encoding: str = "auto") -> Iterator[RawStory | Rejected]:
    from striprtf.striprtf import rtf_to_text

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError.at(str(path), f"cannot read: {exc.strerror or exc}") from None
    raw = decode_bytes(data, encoding)[0]
    if not raw.strip():
        raise InputError.at(str(path), "the file is empty", "save the RTF again")
    if not raw.lstrip("\ufeff \t\n").startswith("{\\rtf"):
        what = _WHAT.get(sniff(data[:4096]) or "", "plain text, not RTF")
        raise InputError.at(str(path), f"not an RTF document: it holds {what}",
                            "pass the original file, or --format for what it is")
    try:
        text = rtf_to_text(_RTF_BREAKS.sub("\\\\par " + _BREAK + "\\\\par ", raw),
                           errors="replace")
        title = _RTF_TITLE.search(raw)
        title_text = rtf_to_text("{\\rtf1 " + title.group(1) + "}").strip() if title else ""
    except Exception as exc:  # the converter's own failures on a malformed file
        raise InputError.at(str(path), f"not readable as RTF: {exc}",
                            "open and save it again in a word processor") from None
    blocks: list[Block] = []
    for piece in text.split(_BREAK):
        blocks.append(Block("break"))
        blocks.extend(Block("text", line) for line in piece.split("\n") if line.strip())
    yield from document_records(blocks, path, "RTF document", title_text or title_from_name(path))
