"""Books as Project Gutenberg prints them, in the layouts met in real collections (the measured
books are in docs/BENCHMARKS.md, `bench/books.py`): every header era, contents lists per part,
headings without a contents list, front and back matter, notes and pictures. The books here are
written for the tests; their layouts are those of real books."""

from __future__ import annotations

from storyteller.curate.records import RawStory, Rejected
from storyteller.curate.sources import detect_format, read_source
from storyteller.curate.sources.book import find_sections
from storyteller.curate.sources.gutenberg import is_gutenberg, read_book, strip_boilerplate

SENTENCES = [
    "The lamp in the window burned all night, and nobody in the village knew who kept it lit.",
    "A girl with a basket of eggs crossed the bridge twice before she dared to knock.",
    "In the morning the river had risen to the third step of the mill, and then it stopped.",
    "He said nothing about the letter, but he kept it in his coat until the coat wore out.",
    "The old dog barked once at the gate and then lay down as if the matter were settled.",
]


def prose(seed: int, paragraphs: int = 2) -> str:
    """A few hard-wrapped paragraphs of story text (about 40 words each)."""
    out = []
    for p in range(paragraphs):
        words = " ".join(SENTENCES[(seed + p + i) % len(SENTENCES)] for i in range(2)).split()
        lines, line = [], []
        for word in words:
            if len(" ".join(line + [word])) > 66:
                lines.append(" ".join(line))
                line = []
            line.append(word)
        lines.append(" ".join(line))
        out.append("\n".join(lines))
    return "\n\n".join(out)


MODERN_HEAD = ("The Project Gutenberg eBook of Lamp Tales\n\nTitle: Lamp Tales\n\n"
               "*** START OF THE PROJECT GUTENBERG EBOOK LAMP TALES ***\n")
MODERN_FOOT = ("\n*** END OF THE PROJECT GUTENBERG EBOOK LAMP TALES ***\n\n"
               "Section 1. General Terms of Use and Redistributing Project Gutenberg works\n")
ETEXT_HEAD = ("The Project Gutenberg Etext of Lamp Tales\n\nPlease take a look at the important "
              "information in this header.\n\n**Welcome To The World of Free Plain Vanilla "
              "Electronic Texts**\n\n***START**THE SMALL PRINT!**FOR PUBLIC DOMAIN ETEXTS**START"
              "***\nWhy is this \"Small Print!\" statement here?  You know: lawyers.\n"
              "*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n\n"
              "This etext was prepared by a volunteer.\n")
ETEXT_FOOT = "\n\nEnd of Project Gutenberg's Etext of Lamp Tales\n"


def tales(titles: list[str], gap: str = "\n\n\n\n\n", first_seed: int = 0) -> str:
    return "".join(f"{gap}{title}\n\n{prose(first_seed + i)}\n" for i, title in enumerate(titles))


def read(tmp_path, text: str, name: str = "book.txt", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    assert detect_format(path) == "gutenberg"
    items = list(read_source(str(path), "gutenberg", {}))
    return ([i for i in items if isinstance(i, RawStory)],
            [i for i in items if isinstance(i, Rejected)])


def titles_of(stories) -> list[str]:
    return [s.meta["title"] for s in stories]


BODY = ("\n\nLAMP TALES\n\nBy Anna Verity\n\n\n\nCONTENTS\n\n     THE LAMP IN THE WINDOW\n"
        "     THE EGG BRIDGE\n     THE MILL STEP\n\n\n"
        + tales(["THE LAMP IN THE WINDOW", "THE EGG BRIDGE", "THE MILL STEP"]))


def test_every_header_era_strips_to_the_same_stories(tmp_path):
    modern, _ = read(tmp_path, MODERN_HEAD + BODY + MODERN_FOOT, "modern.txt")
    etext, _ = read(tmp_path, ETEXT_HEAD + BODY + ETEXT_FOOT, "etext.txt")
    no_footer, _ = read(tmp_path, MODERN_HEAD + BODY, "open.txt")
    assert titles_of(modern) == ["The Lamp in the Window", "The Egg Bridge", "The Mill Step"]
    assert [(s.meta, s.text) for s in etext] == [(s.meta, s.text) for s in modern]
    assert [(s.meta, s.text) for s in no_footer] == [(s.meta, s.text) for s in modern]
    for story in modern + etext:
        assert "Gutenberg" not in story.text and "SMALL PRINT" not in story.text


def test_etext_detection_and_markers():
    assert is_gutenberg(ETEXT_HEAD + BODY)
    assert is_gutenberg("*****This is the Project Gutenberg Etext of Fables*****\n" + BODY)
    assert not is_gutenberg("A story about a project that went well.\n" + BODY)
    wrapped = ("*** START OF THE PROJECT GUTENBERG EBOOK LAMP\nTALES ***\n" + BODY
               + "\n*** END OF THE PROJECT GUTENBERG EBOOK LAMP TALES ***\nlicence")
    assert strip_boilerplate(wrapped).strip().startswith("LAMP TALES")
    old_footer = "*END*THE SMALL PRINT!*END*\n" + BODY + "\n***End of Project Gutenberg 10th " \
                 "Edition of Lamp Tales***\nmore"
    assert strip_boilerplate(old_footer).rstrip().endswith(prose(2).split()[-1])


def test_fables_without_contents_and_matter_at_the_back(tmp_path):
    # Title Case titles set off by blank-line runs (one slip with a single blank line), the
    # author's life and the preface printed after the fables.
    names = [f"The {a} and the {b}" for a, b in (("Fox", "Crow"), ("Ant", "Dove"),
                                                 ("Wolf", "Lamb"), ("Hare", "Hound"),
                                                 ("Cat", "Cock"), ("Kite", "Wren"),
                                                 ("Goat", "Vine"), ("Bear", "Bees"),
                                                 ("Lion", "Mouse"), ("Frog", "Ox"),
                                                 ("Crab", "Heron"), ("Owl", "Lark"))]
    body = "\n\nFABLES\n\n" + tales(names[:6], "\n\n\n\n") + tales(names[6:7], "\n") \
        + tales(names[7:], "\n\n\n\n", 7) + "\n\n\n\nLIFE OF THE FABULIST\n\n" + prose(3, 3) \
        + "\n\n\n\nPREFACE\n\n" + prose(1, 2) + "\n"
    stories, rejects = read(tmp_path, MODERN_HEAD + body + MODERN_FOOT)
    assert titles_of(stories) == names
    matter = [(r.reason, r.detail.split(":")[0]) for r in rejects]
    assert matter == [("back_matter", "'LIFE OF THE FABULIST'"), ("back_matter", "'PREFACE'")]
    assert all("fabulist" not in s.text.lower() for s in stories)


def test_parts_with_their_own_contents_dividers_and_inscriptions(tmp_path):
    # Two parts, each with a contents list; `* * *` inside a story and an inscription in
    # capitals set apart like a heading must not split it; a part is not a story.
    part = ("\n\n\n\nPART {n}\n\nCONTENTS\n\n{entries}\n\n\n")
    first = ["THE SALT ROAD", "THE DROWNED BELL"]
    second = ["THE OWL CLOCK", "THE COMET CHILDREN"]
    inside = (f"\n\n\n\nTHE DROWNED BELL\n\n{prose(1)}\n\n       *       *       *\n\n"
              f"{prose(2)}\n\n\n        HERE LIES THE MILLER\n\n\n{prose(3)}\n")
    body = ("\n\nTALES OF THE COAST\n\n"
            + part.format(n="I", entries="\n".join(first)) + tales(first[:1]) + inside
            + part.format(n="II", entries="\n".join(second)) + tales(second, first_seed=2))
    stories, rejects = read(tmp_path, MODERN_HEAD + body + MODERN_FOOT)
    assert titles_of(stories) == ["The Salt Road", "The Drowned Bell", "The Owl Clock",
                                  "The Comet Children"]
    bell = stories[1].text
    assert "HERE LIES THE MILLER" in bell and "*" in bell and bell.count("\n\n") >= 5
    assert not any("PART" in s.text for s in stories)


def test_numbered_contents_page_numbers_notes_and_pictures(tmp_path):
    # Roman numerals and page numbers, a title wrapped over two lines, a preface before the
    # stories, notes at the back that repeat every title, footnotes and pictures in the text.
    contents = ("CONTENTS\n\n                                   PAGE\n\n"
                "I.     THE BLIND PIPER                        1\n\n"
                "II.    THE BOY WHO HAD A LANTERN IN HIS HAND\n"
                "           AND A KEY ON HIS BELT              9\n\n"
                "III.   THE GOLDEN STAIR                      17\n\n"
                "       NOTES AND REFERENCES                  25\n")
    story_two = ("\n\n\n\nThe Boy with a Lantern and a Key\n\n" + prose(1) + "\n\n"
                 "[Illustration: THE BOY ON THE STAIR]\n\n" + prose(2) + "[1]\n\n"
                 "[Footnote 1: An old word for a key\nthat opens every door.]\n")
    body = ("\n\nPREFACE\n\n" + prose(4) + "\n\n\n\n" + contents + "\n\n"
            + tales(["The Blind Piper"]) + story_two + tales(["The Golden Stair."], first_seed=3)
            + "\n\n\n\nNOTES AND REFERENCES\n\n\nI. THE BLIND PIPER.\n\nSource: a ballad.\n\n"
            "\nII. THE BOY WHO HAD A LANTERN.\n\nSource: told at Kell.\n\n\nIII. THE GOLDEN "
            "STAIR.\n\nSource: a letter.\n")
    stories, rejects = read(tmp_path, MODERN_HEAD + body + MODERN_FOOT)
    assert titles_of(stories) == ["The Blind Piper", "The Boy with a Lantern and a Key",
                                  "The Golden Stair"]
    assert [(r.reason, r.detail.split(":")[0]) for r in rejects] == [
        ("front_matter", "'PREFACE'"), ("back_matter", "'NOTES AND REFERENCES'")]
    lantern = stories[1]
    assert "Illustration" not in lantern.text and "Footnote" not in lantern.text
    assert "[1]" not in lantern.text
    assert lantern.removed == {"illustrations": 1, "footnotes": 1, "footnote marks": 1}
    assert "Source:" not in stories[-1].text


def test_numbered_labels_over_their_titles_and_chapters_inside(tmp_path):
    # "Adventure I" over the title, no contents list; CHAPTER headings inside a story and
    # lines of dialogue set apart never start a story.
    body = "\n\nMEMOIRS\n"
    for number, title in (("I", "The Silver Fox"), ("II", "The Yellow Door"),
                          ("III", "The Lost Key")):
        body += (f"\n\n\n\nAdventure {number}\n\n\n{title}\n\n{prose(len(body) % 5)}\n\n"
                 f"\"No.\"\n\n{prose(1)}\n\n\nCHAPTER II\n\n{prose(2)}\n")
    stories, _ = read(tmp_path, MODERN_HEAD + body + MODERN_FOOT)
    assert titles_of(stories) == ["The Silver Fox", "The Yellow Door", "The Lost Key"]
    assert all("CHAPTER II" in s.text and '"No."' in s.text for s in stories)


def test_a_book_read_as_latin1_and_its_method_named(tmp_path):
    body = "\n\nCONTES\n\nCONTENTS\n\nL'ÉTÉ\nLA FÊTE\n\n\n\n" + tales(["L'ÉTÉ", "LA FÊTE"])
    stories, _ = read(tmp_path, MODERN_HEAD + body + MODERN_FOOT, encoding="latin-1")
    assert titles_of(stories) == ["L'Été", "La Fête"]
    reading = read_book(MODERN_HEAD + body + MODERN_FOOT, "contes.txt")
    assert reading.method.startswith("contents list (2 stories named, 2 found")


def test_sections_keep_their_order_and_bounds():
    body = tales(["THE FOX", "THE OWL", "THE HEN"])
    structure = find_sections(body)
    stories = [s for s in structure.sections if s.kind == "story"]
    assert [s.title for s in stories] == ["THE FOX", "THE OWL", "THE HEN"]
    assert all(a.end == b.start for a, b in zip(stories, stories[1:]))
    assert stories[-1].end == len(body)
