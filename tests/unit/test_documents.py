"""The document and book readers (Word, OpenDocument, RTF, EPUB, HTML) on files written here:
the stories and titles they find, what they reject, and one located error for a broken file."""

from __future__ import annotations

import zipfile

import pytest

from storyteller.curate.records import RawStory
from storyteller.curate.sources import FORMATS, detect_format, expand_inputs, read_source
from storyteller.curate.sources import html
from storyteller.curate.sources.documents import Block, sections
from storyteller.errors import InputError
from tests.unit import document_fixtures as F


def read(path, fmt=None):
    return list(read_source(str(path), fmt or detect_format(path), {}))


def found(items):
    """(title, text) of each story and (reason, detail) of each reject, in order."""
    return [(i.meta.get("title"), i.text) if isinstance(i, RawStory) else (i.reason, i.detail)
            for i in items]


def error_of(path, fmt=None) -> str:
    with pytest.raises(InputError) as info:
        read(path, fmt)
    (problem,) = info.value.problems
    assert problem.where.startswith(str(path))
    return str(problem)


def half(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path


def test_the_new_formats_have_names():
    assert {"docx", "odt", "rtf", "epub", "html"} <= set(FORMATS)


# ------------------------------------------------------------------------------------ Word


def test_docx_headings_and_page_breaks_split_the_stories(tmp_path):
    items = read(F.write_docx(tmp_path / "harbour.docx"))
    assert found(items) == [
        ("front_matter", "section 'Contents': 5 words"),
        ("The Lamplighter's Cat", f"{F.LAMPLIGHTER}\n\nOne lamp, two lamps,\nand the quay goes "
                                  f"dark.\n\nWinter\n\n{F.LAMPLIGHTER_2}"),
        (None, F.GULLS),
        ("The Ferryman", F.FERRYMAN),
        ("back_matter", "section 'Acknowledgements': 6 words"),
    ]
    assert [i.position for i in items] == [0, 1, 2, 3, 4]
    assert all(i.source == str(tmp_path / "harbour.docx") for i in items)


def test_a_one_story_docx_is_titled_by_its_file_name(tmp_path):
    (story,) = read(F.write_story_docx(tmp_path / "the_keeper.docx"))
    assert story.meta == {"title": "The keeper"} and story.text.startswith(F.KEEPER[:40])


def test_story_level_is_the_highest_repeated_heading():
    blocks = [Block("heading", "Collected Tales", 0), Block("heading", "Fox", 1),
              Block("text", "A fox."), Block("heading", "Night", 2), Block("text", "Dark."),
              Block("heading", "Owl", 1), Block("text", "An owl."), Block("break"),
              Block("heading", "Empty", 1)]
    assert [(s.title, s.paragraphs) for s in sections(blocks)] == [
        ("Fox", ["A fox.", "Night", "Dark."]), ("Owl", ["An owl."]), ("Empty", [])]


def test_broken_docx_files_are_one_located_error_each(tmp_path):
    assert "cut short" in error_of(half(F.write_docx(tmp_path / "half.docx")))
    renamed = tmp_path / "notes.docx"
    renamed.write_text("Just some notes I typed.\nNot a Word file.\n")
    assert "plain text (a text file renamed?)" in error_of(renamed, "docx")
    locked = tmp_path / "locked.docx"
    locked.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 64 +
                       "EncryptionInfo".encode("utf-16-le") + b"\0" * 512)
    assert "password-protected" in error_of(locked, "docx")
    old = tmp_path / "old.docx"
    old.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)
    assert "old binary Word file (.doc)" in error_of(old, "docx")
    other_zip = tmp_path / "photos.docx"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("a.txt", "not a document")
    assert "not a Word document" in error_of(other_zip, "docx")


@pytest.mark.parametrize("name", ["e.docx", "e.odt", "e.rtf", "e.epub", "e.html", "e.csv",
                                  "e.jsonl", "e.json", "e.parquet", "e.txt"])
def test_an_empty_file_of_any_format_is_one_located_reject(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    assert [(r.source, r.reason, r.detail) for r in read(path)] == [
        (str(path), "empty", "the file is empty")]


# ---------------------------------------------------------------------- OpenDocument, RTF


def test_odt_headings_and_page_breaks_split_the_stories(tmp_path):
    items = read(F.write_odt(tmp_path / "tales.odt"))
    assert found(items) == [
        ("The Keeper", "The keeper of the lighthouse kept a ledger.\n"
                       "One night he wrote down a ship that was not there."),
        ("The Orchard", F.ORCHARD),
        (None, F.GULLS)]


def test_broken_odt_is_one_located_error(tmp_path):
    assert "cut short" in error_of(half(F.write_odt(tmp_path / "half.odt")))
    text = tmp_path / "text.odt"
    text.write_text("plain words")
    assert "not a OpenDocument text" in error_of(text)


def test_rtf_section_and_page_breaks_split_it(tmp_path):
    items = read(F.write_rtf(tmp_path / "ledger.rtf"))
    assert found(items) == [
        (None, "The keeper kept a ledger of every ship.\n\n"
               "He wrote a name there café owners still whisper."),
        (None, "An old woman planted an orchard."), (None, "The gulls argued.")]
    (story,) = read(F.write_rtf(tmp_path / "one.rtf", breaks=False))
    assert story.meta == {"title": "The Keeper's Ledger"}


def test_a_text_file_named_rtf_is_one_located_error(tmp_path):
    path = tmp_path / "story.rtf"
    path.write_text("Once upon a time.")
    assert "not an RTF document" in error_of(path)


# ------------------------------------------------------------------------------------- EPUB

EPUB_FOUND = [
    ("front_matter", "section 'Cover': 0 words"),
    ("front_matter", "section 'Copyright': 7 words"),
    ("front_matter", "section number 3 (untitled): 5 words"),
    ("front_matter", "section 'Preface': 7 words"),
    ("The Keeper", f"{F.KEEPER}\n\n{F.KEEPER_2}"),
    ("The Orchard", F.ORCHARD),
    ("The Gulls", F.GULLS),
    ("back_matter", "section 'Notes': 4 words"),
]


@pytest.mark.parametrize("version", [3, 2])
def test_epub_spine_gives_the_stories_in_order_and_rejects_the_matter(tmp_path, version):
    items = read(F.write_epub(tmp_path / "harbour.epub", version))
    assert found(items) == EPUB_FOUND
    assert [i.position for i in items] == list(range(8))


def test_an_epub_contents_page_in_the_reading_order_is_front_matter(tmp_path):
    items = read(F.write_epub(tmp_path / "harbour.epub", nav_in_spine=True))
    shifted = [(a, b.replace("number 3", "number 4")) for a, b in EPUB_FOUND]
    assert found(items) == [("front_matter", "section 'Contents': 10 words")] + shifted


def test_broken_epubs(tmp_path):
    assert "cut short" in error_of(half(F.write_epub(tmp_path / "half.epub")))
    assert "holds no text" in error_of(F.write_imageonly_epub(tmp_path / "pictures.epub"))
    not_zip = tmp_path / "book.epub"
    not_zip.write_text("<html><body>a page</body></html>")
    assert "an HTML page" in error_of(not_zip)


def test_an_epub_missing_a_chapter_keeps_the_others(tmp_path):
    whole = F.write_epub(tmp_path / "whole.epub")
    broken = tmp_path / "broken.epub"
    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(broken, "w") as target:
        for entry in source.infolist():
            if not entry.filename.endswith("tales.xhtml"):
                target.writestr(entry, source.read(entry))
    items = read(broken)
    assert ("unreadable", "section 'The Orchard': the EPUB has no OEBPS/tales.xhtml"
            ) in found(items)
    assert [i.meta["title"] for i in items if isinstance(i, RawStory)] == ["The Keeper"]


def test_an_epub_with_drm_is_one_located_error(tmp_path):
    path = F.write_epub(tmp_path / "drm.epub")
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("META-INF/encryption.xml", (
            '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
            'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
            '<enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
            '<enc:CipherData><enc:CipherReference URI="OEBPS/keeper.xhtml"/></enc:CipherData>'
            '</enc:EncryptedData></encryption>'))
    assert "protected by DRM" in error_of(path)


# ------------------------------------------------------------------------------------- HTML


def test_gutenberg_html_renders_as_its_text_edition_would():
    text = html.render(html.parse(F.GUTENBERG_HTML.encode(), "book.html")).text
    assert "\n\n\nTHE KEEPER\n\n" in text and "CONTENTS\n\nTHE KEEPER\nTHE ORCHARD\n" in text
    assert "kept a ledger[1] of every ship" in text
    assert "\n\n[Illustration: The lighthouse at dusk]\n\n" in text
    assert "\n\n[Footnote 1: A ledger is a book of accounts.]\n\n" in text
    assert "One night he wrote down a ship\nthat was not there." in text  # <br>, no [Pg 2]
    assert "\n\n    Sleep, little trees,\n    the frost will pass.\n\n" in text  # <pre> verse
    assert "p { text-indent" not in text and "orchard — she" in text


def test_verse_keeps_its_lines_and_stanzas():
    page = (b'<p>Before.</p><div class="poem"><div class="stanza"><span>Sleep, little trees,<br/>'
            b'</span><span class="i2">the frost will pass.</span></div><div class="stanza">'
            b'<div>A second stanza</div><div>ends here.</div></div></div><p>After.</p>')
    assert html.render(html.parse(page, "poem.html")).text == (
        "Before.\n\n    Sleep, little trees,\n    the frost will pass.\n\n"
        "    A second stanza\n    ends here.\n\nAfter.")


def test_gutenberg_html_goes_through_the_book_splitter_with_html_lines(tmp_path):
    path = tmp_path / "harbour-h.htm"
    path.write_text(F.GUTENBERG_HTML)
    items = [i for i in read(path) if isinstance(i, RawStory)]
    assert [(s.meta["title"], s.line) for s in items] == [("The Keeper", 19), ("The Orchard", 29)]
    assert items[1].text.startswith("An old woman planted an orchard — she would never see")


def test_a_saved_web_page_is_one_story(tmp_path):
    path = tmp_path / "gulls.html"
    path.write_bytes(F.WEB_PAGE.encode("cp1252"))
    (story,) = read(path)
    assert story.meta == {"title": "The Gulls"}
    assert story.text == ("Two gulls argued over a crust – until the tide took it from both of "
                          "them.\n\nThe crust, they say, is still at sea.")
    assert story.line == 7


def test_a_page_with_no_text_is_a_located_reject(tmp_path):
    path = tmp_path / "blank.html"
    path.write_text("<html><head><title>Blank</title><script>x()</script></head>\n"
                    "<body><nav>Home</nav></body></html>")
    assert [(r.reason, r.line) for r in read(path)] == [("empty", 2)]


# -------------------------------------------------------------------------------- detection


def test_detection_by_suffix_and_by_content(tmp_path):
    docx = F.write_docx(tmp_path / "a.docx")
    assert detect_format(docx) == "docx"
    (tmp_path / "manuscript").write_bytes(docx.read_bytes())
    assert detect_format(tmp_path / "manuscript") == "docx"
    F.write_rtf(tmp_path / "letter.txt")
    assert detect_format(tmp_path / "letter.txt") == "rtf"
    (tmp_path / "page.txt").write_text("<!DOCTYPE html><html><body>x</body></html>")
    assert detect_format(tmp_path / "page.txt") == "html"
    F.write_epub(tmp_path / "book")
    assert detect_format(tmp_path / "book") == "epub"
    (tmp_path / "old.doc").write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(InputError, match="save it as .docx"):
        detect_format(tmp_path / "old.doc")


def test_a_folder_of_documents_is_read_file_by_file(tmp_path):
    F.write_docx(tmp_path / "a.docx")
    F.write_odt(tmp_path / "b.odt")
    F.write_epub(tmp_path / "c.epub")
    (tmp_path / "d.html").write_bytes(F.WEB_PAGE.encode("cp1252"))
    (tmp_path / "d_files").mkdir()
    (tmp_path / "d_files" / "frame.html").write_text("<p>an advert</p>")
    (tmp_path / "~$a.docx").write_bytes(b"lock")
    assert expand_inputs([str(tmp_path)], "auto") == [
        (str(tmp_path / "a.docx"), "docx"), (str(tmp_path / "b.odt"), "odt"),
        (str(tmp_path / "c.epub"), "epub"), (str(tmp_path / "d.html"), "html")]
    assert expand_inputs([str(tmp_path)], "docx") == [(str(tmp_path / "a.docx"), "docx")]
