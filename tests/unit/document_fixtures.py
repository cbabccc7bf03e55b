"""Small documents written here, with stories written for these tests: Word, OpenDocument, RTF,
EPUB (2 and 3) and HTML files, good and broken, for the readers' tests and the CLI's."""

from __future__ import annotations

import zipfile
from pathlib import Path

LAMPLIGHTER = ("Every evening the lamplighter's cat walked the quay beside him, counting the "
               "lamps under her breath.")
LAMPLIGHTER_2 = "When the harbour froze she counted the stars instead, and lost count at nine."
FERRYMAN = "The ferryman rowed the fog across the river, one grey oar at a time."
GULLS = "Two gulls argued over a crust until the tide took it from both of them."
KEEPER = ("The keeper of the lighthouse kept a ledger of every ship that passed, and one night "
          "he wrote down a ship that was not there.")
KEEPER_2 = "In the morning the ledger showed its name, though no one had seen it sail."
ORCHARD = "An old woman planted an orchard she would never see bear fruit, and sang to it."


def write_docx(path: Path) -> Path:
    """A manuscript: a title, a contents page, two stories under Heading 1 (one with a scene
    heading and a line break), a page break before an untitled sketch, acknowledgements."""
    import docx
    from docx.enum.text import WD_BREAK

    document = docx.Document()
    document.add_heading("Tales from the Harbour", 0)
    document.add_heading("Contents", 1)
    document.add_paragraph("The Lamplighter's Cat")
    document.add_paragraph("The Ferryman")
    document.add_heading("The Lamplighter's Cat", 1)
    document.add_paragraph(LAMPLIGHTER)
    verse = document.add_paragraph("One lamp, two lamps,")
    verse.add_run().add_break()
    verse.add_run("and the quay goes dark.")
    document.add_heading("Winter", 2)
    ending = document.add_paragraph(LAMPLIGHTER_2)
    ending.add_run().add_break(WD_BREAK.PAGE)
    document.add_paragraph(GULLS)
    document.add_heading("The Ferryman", 1)
    document.add_paragraph(FERRYMAN)
    document.add_heading("Acknowledgements", 1)
    document.add_paragraph("My thanks to the harbour master.")
    document.save(path)
    return path


def write_story_docx(path: Path, words: int = 80) -> Path:
    """One untitled story long enough to pass curate's filters."""
    import docx

    document = docx.Document()
    sentences = [KEEPER, KEEPER_2, ORCHARD, FERRYMAN, GULLS, LAMPLIGHTER]
    text = " ".join(sentences)
    while len(text.split()) < words:
        text += " " + " ".join(sentences)
    for paragraph in text.split(". "):
        document.add_paragraph(paragraph.rstrip(".") + ".")
    document.save(path)
    return path


def write_odt(path: Path) -> Path:
    """Two stories under text:h headings, the second after a paragraph with a page break."""
    from odf.opendocument import OpenDocumentText
    from odf.style import ParagraphProperties, Style
    from odf.text import H, LineBreak, P, S, Span

    document = OpenDocumentText()
    page_break = Style(name="PageBreak", family="paragraph")
    page_break.addElement(ParagraphProperties(breakbefore="page"))
    document.automaticstyles.addElement(page_break)
    document.text.addElement(H(outlinelevel=1, text="The Keeper"))
    paragraph = P(text="The keeper of the lighthouse")
    paragraph.addElement(S(c=1))
    paragraph.addElement(Span(text="kept a ledger."))
    paragraph.addElement(LineBreak())
    paragraph.addText("One night he wrote down a ship that was not there.")
    document.text.addElement(paragraph)
    document.text.addElement(H(outlinelevel=1, text="The Orchard"))
    document.text.addElement(P(text=ORCHARD))
    document.text.addElement(P(stylename=page_break, text=GULLS))
    document.save(str(path))
    return path


def write_rtf(path: Path, breaks: bool = True) -> Path:
    """An RTF file with a title in its info group, accents as escapes, and (with `breaks`) a
    page break and a section break between three stories."""
    body = (r"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0 Times New Roman;}}"
            r"{\info{\title The Keeper's Ledger}}"
            r"\pard The keeper kept a ledger of every ship.\par "
            r"He wrote a name there caf\'e9 owners still whisper.\par ")
    if breaks:
        body += r"\page An old woman planted an orchard.\par\sect\sectd The gulls argued.\par"
    return _write(path, (body + "}").encode("ascii"))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


CONTAINER = ('<?xml version="1.0"?><container version="1.0" '
             'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
             '<rootfile full-path="OEBPS/content.opf" '
             'media-type="application/oebps-package+xml"/></rootfiles></container>')


def _xhtml(body: str, title: str = "") -> str:
    return ('<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml" '
            f'xmlns:epub="http://www.idpf.org/2007/ops"><head><title>{title}</title></head>'
            f'<body>{body}</body></html>')


def write_epub(path: Path, version: int = 3, nav_in_spine: bool = False) -> Path:
    """A book: cover, copyright page, an untitled title page, a preface, three tales (the second
    and third in one document, cut by an anchor; the first, with a footnote, continued in a
    second document the contents do not name), and notes; EPUB 3 navigation (in the reading order with
    `nav_in_spine`), or EPUB 2's NCX."""
    chapters = {
        "cover.xhtml": _xhtml('<div><img src="cover.jpg" alt="Cover"/></div>'),
        "copyright.xhtml": _xhtml("<p>Copyright 2024 the author. All rights reserved.</p>"),
        "titlepage.xhtml": _xhtml("<p>Harbour Tales</p><p>by A. Writer</p>"),
        "preface.xhtml": _xhtml("<h1>Preface</h1><p>These tales were told on the quay.</p>"),
        "keeper.xhtml": _xhtml(f'<h1>The Keeper</h1><p>{KEEPER}<a epub:type="noteref" '
                               'href="#n1">1</a></p><aside epub:type="footnote" id="n1"><p>'
                               'A ledger is a book of accounts.</p></aside>'),
        "keeper-2.xhtml": _xhtml(f"<p>{KEEPER_2}</p>"),
        "tales.xhtml": _xhtml(f'<h2 id="orchard">The Orchard</h2><p>{ORCHARD}</p>'
                              f'<h2 id="gulls">The Gulls</h2><p>{GULLS}</p>'),
        "notes.xhtml": _xhtml("<h1>Notes</h1><p>The quay is imaginary.</p>"),
    }
    named = [("preface.xhtml", "Preface"), ("keeper.xhtml", "The Keeper"),
             ("tales.xhtml#orchard", "The Orchard"), ("tales.xhtml#gulls", "The Gulls"),
             ("notes.xhtml", "Notes")]
    manifest = "".join(f'<item id="c{i}" href="{name}" media-type="application/xhtml+xml"/>'
                       for i, name in enumerate(chapters))
    spine = "".join(f'<itemref idref="c{i}"/>' for i in range(len(chapters)))
    files = {f"OEBPS/{name}": body for name, body in chapters.items()}
    if version == 3:
        links = "".join(f'<li><a href="{href}">{title}</a></li>' for href, title in named)
        files["OEBPS/nav.xhtml"] = _xhtml(
            f'<nav epub:type="toc"><ol>{links}</ol></nav>'
            '<nav epub:type="landmarks"><ol><li><a epub:type="cover" href="cover.xhtml">Cover'
            '</a></li><li><a epub:type="copyright-page" href="copyright.xhtml">Copyright</a>'
            '</li></ol></nav>')
        manifest += ('<item id="nav" href="nav.xhtml" properties="nav" '
                     'media-type="application/xhtml+xml"/>')
        spine = ('<itemref idref="nav"/>' if nav_in_spine else "") + spine
        guide, toc = "", ""
    else:
        points = "".join(f'<navPoint id="p{i}" playOrder="{i}"><navLabel><text>{title}</text>'
                         f'</navLabel><content src="{href}"/></navPoint>'
                         for i, (href, title) in enumerate(named, start=1))
        files["OEBPS/toc.ncx"] = ('<?xml version="1.0"?><ncx xmlns="http://www.daisy.org/z3986/'
                                  f'2005/ncx/" version="2005-1"><navMap>{points}</navMap></ncx>')
        manifest += '<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>'
        guide = ('<guide><reference type="cover" href="cover.xhtml" title="Cover"/>'
                 '<reference type="copyright-page" href="copyright.xhtml" title="Copyright"/>'
                 '</guide>')
        toc = ' toc="ncx"'
    files["OEBPS/content.opf"] = (
        f'<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="{version}.0"'
        ' unique-identifier="id"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
        '<dc:title>Harbour Tales</dc:title></metadata>'
        f'<manifest>{manifest}</manifest><spine{toc}>{spine}</spine>{guide}</package>')
    return write_epub_files(path, files)


def write_epub_files(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        archive.writestr("META-INF/container.xml", CONTAINER)
        for name, body in files.items():
            archive.writestr(name, body, compress_type=zipfile.ZIP_DEFLATED)
    return path


def write_imageonly_epub(path: Path) -> Path:
    """An EPUB whose pages are pictures: nothing to read."""
    page = _xhtml('<div><img src="p1.jpg" alt=""/></div>')
    files = {"OEBPS/p1.xhtml": page, "OEBPS/content.opf": (
        '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
        '<metadata/><manifest><item id="p1" href="p1.xhtml" '
        'media-type="application/xhtml+xml"/></manifest><spine><itemref idref="p1"/></spine>'
        '</package>')}
    return write_epub_files(path, files)


GUTENBERG_HTML = """<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN"
  "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Harbour Tales</title>
<style>p { text-indent: 1em }</style></head><body>
<pre>
The Project Gutenberg EBook of Harbour Tales

*** START OF THIS PROJECT GUTENBERG EBOOK HARBOUR TALES ***
</pre>
<h1>HARBOUR TALES</h1>
<hr />
<h2>CONTENTS</h2>
<table>
<tr><td><a href="#keeper">THE KEEPER</a></td></tr>
<tr><td><a href="#orchard">THE ORCHARD</a></td></tr>
</table>
<hr />
<h2><a id="keeper"></a>THE KEEPER</h2>
<p>The keeper of the lighthouse kept a ledger<a href="#note1" class="fnanchor">1</a>
of every ship that passed.</p>
<div class="figcenter"><img src="images/light.jpg" alt="" />
<p class="caption">The lighthouse at dusk</p></div>
<p><span class="pagenum">[Pg 2]</span>One night he wrote down a ship<br />
that was not there.</p>
<div class="footnote"><p><a id="note1" href="#ref1">[1]</a> A ledger is a book of
accounts.</p></div>
<hr />
<h2><a id="orchard"></a>THE ORCHARD</h2>
<p>An old woman planted an orchard &mdash; she would never see it bear fruit.</p>
<pre>
    Sleep, little trees,
    the frost will pass.
</pre>
<hr />
<pre>
*** END OF THIS PROJECT GUTENBERG EBOOK HARBOUR TALES ***
</pre>
</body></html>
"""

WEB_PAGE = """<!DOCTYPE html>
<html><head><meta charset="windows-1252"><title>The Gulls | A Story Blog</title>
<script>var tracking = "nothing to read";</script><style>body { color: red }</style></head>
<body><nav><a href="/">Home</a> <a href="/about">About</a></nav>
<header><p>A Story Blog</p></header>
<main><h1>The Gulls</h1>
<p>Two gulls argued over a crust – until the tide took it from both of them.</p>
<p style="display:none">hidden text</p>
<p>The crust, they say, is still at sea.</p></main>
<footer><p>© 2024 A Story Blog</p></footer></body></html>
"""
