"""Each reader on small files written here, byte-level quirks included."""

import json

import pytest

from storyteller.curate.decode import decode_bytes
from storyteller.curate.records import Rejected, RawStory
from storyteller.curate.sources import detect_format, expand_inputs, read_source
from storyteller.curate.sources.gutenberg import find_tales, heading_key, strip_boilerplate
from storyteller.curate.sources.text import detect_separator
from storyteller.curate.sources.tinystories import parse_instruct
from storyteller.curate.sources.writingprompts import detokenize, split_tags
from storyteller.errors import InputError


def read(path, fmt=None, fields=None, **kwargs):
    return list(read_source(str(path), fmt or detect_format(path), fields or {}, **kwargs))


def stories(items):
    return [i for i in items if isinstance(i, RawStory)]


def rejects(items):
    return [i for i in items if isinstance(i, Rejected)]


def test_decode_bom_latin1_and_newlines():
    assert decode_bytes(b"\xef\xbb\xbfHi\r\nthere\r") == ("Hi\nthere\n", "utf-8-sig")
    assert decode_bytes("café".encode("latin-1")) == ("café", "latin-1")


def test_jsonl_bad_lines_are_rejected_with_their_line(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "one", "title": "A"}\r\n'
                     b'{"text": "two"\n'
                     b'[1, 2]\n'
                     b'\n'
                     b'{"title": "no text"}\n'
                     b'{"text": 5}\n'
                     b'{"story": "six", "genre": "fable"}\n')
    items = read(path)
    assert [(s.text, s.line) for s in stories(items)] == [("one", 1), ("six", 7)]
    assert stories(items)[1].meta == {"genre": "fable"}
    assert [(r.line, r.reason) for r in rejects(items)] == [
        (2, "malformed"), (3, "malformed"), (5, "missing_text"), (6, "not_text")]


def test_json_field_mapping_and_item_lines(tmp_path):
    path = tmp_path / "f.json"
    path.write_text(json.dumps([{"name": "Fox", "body": "A fox.", "lesson": "Be kind."},
                                {"name": "Owl", "body": "An owl."}], indent=1))
    items = read(path, fields={"text": "body", "title": "name"})
    assert [(s.text, s.meta["title"], s.line, s.position) for s in items] == [
        ("A fox.", "Fox", 2, 0), ("An owl.", "Owl", 7, 1)]
    assert items[0].meta["moral"] == "Be kind."


def test_csv_crlf_multiline_and_wrong_column_counts(tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes(b'title,story\r\n"A","line one\r\nline two, with ""quotes"""\r\n'
                     b'B,short,extra\r\n"C","three"\r\n')
    items = read(path)
    assert [(s.meta["title"], s.line) for s in stories(items)] == [("A", 2), ("C", 5)]
    assert stories(items)[0].text == 'line one\nline two, with "quotes"'
    assert [(r.line, r.reason) for r in rejects(items)] == [(4, "malformed")]


def test_latin1_csv(tmp_path):
    path = tmp_path / "l.csv"
    path.write_bytes("title,story\nCafé,La señora était naïve.\n".encode("latin-1"))
    (story,) = read(path)
    assert story.text == "La señora était naïve." and story.meta["title"] == "Café"


def test_parquet_and_null_text(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"title": ["A", "B"], "text": ["story a", None]}), path)
    items = read(path)
    assert stories(items)[0].position == 0 and rejects(items)[0].reason == "missing_text"
    assert rejects(items)[0].position == 1


def test_saved_dataset(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"text": ["a story", "b story"], "genre": ["fable", "mystery"]}) \
        .save_to_disk(str(tmp_path / "ds"))
    assert detect_format(tmp_path / "ds") == "datasets"
    items = read(tmp_path / "ds")
    assert [(s.text, s.meta["genre"]) for s in items] == [("a story", "fable"), ("b story", "mystery")]


def test_unreachable_dataset_hub_id_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError) as info:
        list(read_source("nobody/no-such-dataset", "datasets", {}))
    assert info.value.problems[0].where == "nobody/no-such-dataset"


def test_folder_with_markdown_front_matter_and_empty_file(tmp_path):
    (tmp_path / "a.md").write_text("---\ntitle: The Well\ngenre: ghost story\n---\n# Ignored\n\nIt *was* dark.")
    (tmp_path / "b.md").write_text("# Heading Title\n\nSome **bold** story.")
    (tmp_path / "c.txt").write_bytes(b"\xef\xbb\xbfPlain\r\nstory.")
    (tmp_path / "d.txt").write_text("")
    items = read(tmp_path)
    found = {s.source.rsplit("/", 1)[1]: s for s in stories(items)}
    assert found["a.md"].meta["title"] == "The Well" and found["a.md"].meta["genre"] == "ghost story"
    assert found["b.md"].meta["title"] == "Heading Title"
    assert found["c.txt"].text == "Plain\nstory."
    assert [r.reason for r in rejects(items)] == ["empty"]


@pytest.mark.parametrize("content,kind", [
    ("one\n\n\n\ntwo", "blank-lines"), ("a<|endoftext|>b", "endoftext"),
    ("one\n* * *\ntwo", "asterism"), ("one\ntwo\nthree", "line")])
def test_separator_detection(content, kind):
    assert detect_separator(content) == kind


def test_separated_file_keeps_paragraphs_and_line_numbers(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("First story.\n\nSecond paragraph.\n\n\n\nNext story here.\n")
    items = read(path, "text")
    assert [(s.text, s.line) for s in items] == [
        ("First story.\n\nSecond paragraph.", 1), ("Next story here.", 7)]


def test_regex_separator(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("one\n~~ END ~~\ntwo\n~~ END ~~\n")
    items = read(path, "text", separator="regex", separator_regex=r"^~~ END ~~$")
    assert [s.text for s in items] == ["one", "two"]


def test_endoftext_truncated_last_story_is_rejected(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("\n\nA full story.\n<|endoftext|>\nAnother one.\n<|endoftext|>\nCut in the mid")
    items = read(path)
    assert [s.text for s in stories(items)] == ["A full story.", "Another one."]
    assert [(r.reason, r.line) for r in rejects(items)] == [("truncated", 7)]


def test_tinystories_instruct_fields():
    fields = parse_instruct("Features: Dialogue, Twist\nWords: jump, blue\nSummary: A hop.\nStory: \n\nOnce.")
    assert fields == {"features": "Dialogue, Twist", "words": "jump, blue", "summary": "A hop.",
                      "story": "Once."}
    assert parse_instruct("Once upon a time. Story: not a field") is None


def test_tinystories_instruct_records(tmp_path):
    path = tmp_path / "i.txt"
    path.write_text("Words: cat, hat\nSummary: A cat finds a hat.\nStory: The cat found a hat.\n"
                    "<|endoftext|>\nFeatures: Dialogue\nSummary: No story here.\n<|endoftext|>\n")
    items = read(path, "tinystories")
    (story,) = stories(items)
    assert story.meta == {"premise": "A cat finds a hat.", "words": ["cat", "hat"]}
    assert rejects(items)[0].reason == "missing_text"


def test_writingprompts_detokenize_and_tags():
    assert detokenize("`` I do n't know , '' she said . <newline> <newline> It 's -LRB- ok -RRB- .") == \
        "\"I don't know,\" she said.\n\nIt's (ok)."
    assert split_tags("[ WP ] [eu] You wake up") == (["WP", "EU"], "You wake up")
    assert split_tags("(IP) A picture") == (["IP"], "A picture")
    assert split_tags("No tag [ here ]") == ([], "No tag [ here ]")


def test_writingprompts_pair_files(tmp_path):
    (tmp_path / "v.wp_source").write_text("[ WP ] A door appears .\nNo tag prompt\n")
    (tmp_path / "v.wp_target").write_text("I open it . <newline> It 's dark .\n\n")
    assert detect_format(tmp_path / "v.wp_source") == "writingprompts"
    items = read(tmp_path / "v.wp_source")
    (story,) = stories(items)
    assert story.text == "I open it.\nIt's dark." and story.meta["premise"] == "A door appears."
    assert story.meta["tags"] == ["writing prompt"]
    assert (rejects(items)[0].line, rejects(items)[0].reason) == (2, "empty")


def test_writingprompts_mismatched_files_are_an_error(tmp_path):
    (tmp_path / "v.wp_source").write_text("a\nb\n")
    (tmp_path / "v.wp_target").write_text("only one\n")
    with pytest.raises(InputError, match="1 stories for 2 prompts"):
        read(tmp_path / "v.wp_source")


BOOK = """\ufeffThe Project Gutenberg eBook of Tales\r
\r
*** START OF THE PROJECT GUTENBERG EBOOK\r
TALES ***\r
\r
CONTENTS\r
\r
     THE FIRST TALE\r
     SECOND ONE\r
       1. A PART\r
     FIRST STORY\r
\r
\r
\r
THE FIRST TALE\r
\r
Once there was a\r
wrapped line.\r
\r
A NOISY HEADING INSIDE\r
\r
More of the first.\r
\r
SECOND ONE\r
\r
The second tale.\r
\r
FIRST STORY\r
\r
Still the second.\r
\r
THE END\r
\r
End of the Project Gutenberg EBook of Tales\r
\r
*** END OF THE PROJECT GUTENBERG EBOOK TALES ***\r
Licence text that must go.\r
"""


def test_gutenberg_markers_contents_and_parts(tmp_path):
    path = tmp_path / "pg.txt"
    path.write_bytes(BOOK.encode("utf-8"))
    assert detect_format(path) == "gutenberg"
    items = read(path)
    assert [s.meta["title"] for s in items] == ["The First Tale", "Second One"]
    assert items[0].text == "Once there was a wrapped line.\n\nA NOISY HEADING INSIDE\n\nMore of the first."
    assert items[1].text == "The second tale.\n\nFIRST STORY\n\nStill the second."
    assert all("Licence" not in s.text and "Gutenberg" not in s.text for s in items)


def test_gutenberg_without_contents_uses_caps_headings():
    body = "\n\n\nTHE FOX\n\nA fox ran.\n\n\nTHE OWL\n\nAn owl sat.\n"
    assert [t for t, _, _ in find_tales(body)] == ["THE FOX", "THE OWL"]


def test_gutenberg_heading_keys():
    assert heading_key("VII. THE ADVENTURE OF THE BLUE CARBUNCLE") == heading_key(
        "The Adventure of the Blue Carbuncle")
    assert heading_key("LITTLE RED-CAP [LITTLE RED RIDING HOOD]") == heading_key("Little Red-Cap")


def test_gutenberg_without_markers_is_an_error():
    with pytest.raises(InputError, match="START OF"):
        strip_boilerplate("Just a text file.")


def test_unknown_suffix_asks_for_a_format(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"\x00")
    with pytest.raises(InputError, match="--format"):
        detect_format(path)


def test_missing_input_path(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        expand_inputs([str(tmp_path / "nope.jsonl")], "auto")
