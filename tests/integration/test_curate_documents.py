"""`storyteller curate` through the real command on writers' documents and tables written here:
a broken Word file beside good documents is one located reject and the rest is curated; a
table with no story column stops with one error whose `--set` then works."""

from __future__ import annotations

import csv
import json

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow

LIGHTHOUSE = (
    "The keeper of the lighthouse kept a ledger of every ship that passed the point. He wrote "
    "down its name, its flag and the hour, and he never missed one in thirty years. One "
    "November night he wrote down a ship with three masts and no lights, sailing against the "
    "wind. In the morning the harbour master laughed at him, for no ship had come in. The keeper "
    "said nothing. A week later a ship with three masts came home with no lights at all.")
ORCHARD = (
    "An old woman planted an orchard on the hill above the village, knowing she would never "
    "see it bear fruit. Every evening she carried water up the path in two tin cans and sang "
    "to the saplings about the people who would eat their apples. The children laughed at her "
    "at first. Then they began to carry the cans for her, and learned the songs, and years "
    "later they sang them to their own children under trees heavy with fruit.")


def docx_story(path, text: str):
    import docx

    document = docx.Document()
    document.add_heading(path.stem.replace("-", " ").title(), 1)
    for sentence in text.split(". "):
        document.add_paragraph(sentence.rstrip(".") + ".")
    document.save(path)
    return path


def odt_story(path, text: str):
    from odf.opendocument import OpenDocumentText
    from odf.text import H, P

    document = OpenDocumentText()
    document.text.addElement(H(outlinelevel=1, text="The Orchard"))
    for paragraph in text.split(". "):
        document.text.addElement(P(text=paragraph.rstrip(".") + "."))
    document.save(str(path))
    return path


def rows(out, name):
    return [json.loads(line) for line in (out / name).read_text(encoding="utf-8").splitlines()]


def test_a_broken_docx_beside_good_documents(tmp_path):
    good = docx_story(tmp_path / "the-ledger.docx", LIGHTHOUSE)
    orchard = odt_story(tmp_path / "orchard.odt", ORCHARD)
    broken = tmp_path / "draft.docx"
    broken.write_text("A draft I meant to save from Word, but saved as plain text.\n")
    out = tmp_path / "out"
    proc = run_cli("curate", str(good), str(broken), str(orchard), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert [(r["source"], r["reason"]) for r in rows(out, "rejects.jsonl")] == [
        (str(broken), "unreadable")]
    assert "not a Word document (.docx): it holds plain text" in \
        rows(out, "rejects.jsonl")[0]["detail"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(i["format"], i["kept"]) for i in manifest["inputs"]] == [
        ("docx", 1), ("docx", 0), ("odt", 1)]
    pairs = [p for name in ("train", "val", "test") for p in rows(out, f"{name}.jsonl")]
    titles = {p["request"].get("title") for p in pairs if p["kind"] == "title"}
    assert titles == {"The Ledger", "The Orchard"}


def test_a_table_with_no_story_column_stops_with_the_set_that_maps_it(tmp_path):
    table = tmp_path / "stories.csv"
    with table.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["storyid", "storytitle", "part1", "part2", "part3"])
        for number, text in enumerate((LIGHTHOUSE, ORCHARD)):
            sentences = text.split(". ")
            third = len(sentences) // 3
            writer.writerow([f"s{number}", text.split()[1].title()] +
                            [". ".join(sentences[:third]) + ".",
                             ". ".join(sentences[third:2 * third]) + ".",
                             ". ".join(sentences[2 * third:])])
    proc = run_cli("curate", str(table), "--out", str(tmp_path / "none"))
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and errors == [
        f"error: {table}:1: no story text column (columns: storyid, storytitle, part1, part2, "
        "part3) (map them: --set 'source.fields.text=[part1,part2,part3]')"]
    assert not (tmp_path / "none" / "manifest.json").exists()

    out = tmp_path / "out"
    proc = run_cli("curate", str(table), "--set", "source.fields.text=[part1,part2,part3]",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    pairs = [p for name in ("train", "val", "test") for p in rows(out, f"{name}.jsonl")]
    stories = {p["messages"][-1]["content"] for p in pairs if p["kind"] == "premise"
               and not p["augmented"]}
    assert LIGHTHOUSE in stories and ORCHARD in stories
