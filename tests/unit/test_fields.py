"""Tables whose story spans several columns (`source.fields` lists and templates), the one error
for a table with no story column, and tables with mixed encodings."""

from __future__ import annotations

import json

import pytest

from storyteller.config import load_config
from storyteller.curate.config import CurateConfig
from storyteller.curate.records import Rejected, RawStory
from storyteller.curate.sources import detect_format, read_source
from storyteller.curate.sources.fields import parse_spec, suggestion, text_like
from storyteller.curate.sources.structured import decode_records
from storyteller.errors import ConfigError

SENTENCES = ["storyid", "storytitle", "sentence1", "sentence2", "sentence3", "sentence4",
             "sentence5"]
ROWS = [
    ["a1f3", "The Kite", "Mira built a kite out of her father's old newspapers.",
     "The first gust of wind tore it straight down the middle.",
     "She patched the tear with tape and a strip of her own blue scarf.",
     "The second gust carried it higher than any kite on the hill.",
     "Her father said the blue stripe was the best headline he had ever read."],
    ["b2e4", "Bread", "Tomas had never baked bread before the snow closed the roads.",
     "His first loaf came out as flat and hard as a roof tile.",
     "His neighbour knocked and showed him how long to let the dough rest.",
     "The second loaf rose so high it lifted the tea towel off the bowl.",
     "They ate it together while the snow kept falling outside."],
]
STORY_COLUMNS = SENTENCES[2:]
MAP_ALL = "source.fields.text=[sentence1,sentence2,sentence3,sentence4,sentence5]"


def fields(*sets: str):
    return load_config(CurateConfig, None, list(sets)).source.fields


def read(path, fields_=None, fmt=None):
    return list(read_source(str(path), fmt or detect_format(path), fields_ or {}))


def write_csv(path, header=SENTENCES, rows=ROWS, delimiter=","):
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_a_list_of_columns_is_joined_in_order(tmp_path):
    items = read(write_csv(tmp_path / "rocstories.csv"),
                 fields(MAP_ALL, "source.fields.title=storytitle", "source.fields.id=storyid"))
    assert [(s.meta["title"], s.meta["id"], s.line) for s in items] == [
        ("The Kite", "a1f3", 2), ("Bread", "b2e4", 3)]
    assert items[0].text == " ".join(ROWS[0][2:])


def test_a_template_lays_the_columns_out(tmp_path):
    template = 'source.fields.text="{sentence1} {sentence2}\\n\\n{sentence5}"'
    (story, _) = read(write_csv(tmp_path / "r.tsv", delimiter="\t"), fields(template))
    assert story.text == f"{ROWS[0][2]} {ROWS[0][3]}\n\n{ROWS[0][6]}"
    assert parse_spec("{a} and {b}").columns == ("a", "b")
    assert parse_spec("body").columns == ("body",) and parse_spec("body").template is None


def test_lists_in_json_jsonl_and_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    records = [dict(zip(SENTENCES, row)) for row in ROWS]
    (tmp_path / "s.json").write_text(json.dumps(records, indent=1))
    (tmp_path / "s.jsonl").write_text("\n".join(map(json.dumps, records)))
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "s.parquet")
    mapping = fields(MAP_ALL)
    for name in ("s.json", "s.jsonl", "s.parquet"):
        assert [s.text for s in read(tmp_path / name, mapping)] == [
            " ".join(row[2:]) for row in ROWS], name


def test_a_record_lacking_one_listed_column_is_a_located_reject(tmp_path):
    records = [dict(zip(SENTENCES, row)) for row in ROWS]
    del records[1]["sentence4"]
    (tmp_path / "s.jsonl").write_text("\n".join(map(json.dumps, records)))
    kept, rejected = read(tmp_path / "s.jsonl", fields(MAP_ALL))
    assert isinstance(kept, RawStory) and isinstance(rejected, Rejected)
    assert (rejected.line, rejected.reason, rejected.detail) == (
        2, "missing_text", "no 'sentence4' field (source.fields.text is "
                           "[sentence1, sentence2, sentence3, sentence4, sentence5])")


def test_no_story_column_is_one_error_naming_the_columns_and_the_set(tmp_path):
    path = write_csv(tmp_path / "stories.csv")
    with pytest.raises(ConfigError) as info:
        read(path)
    (problem,) = info.value.problems
    assert str(problem) == (
        f"{path}:1: no story text column (columns: storyid, storytitle, sentence1, sentence2, "
        "sentence3, sentence4, sentence5) (map them: --set "
        "'source.fields.text=[sentence1,sentence2,sentence3,sentence4,sentence5]')")


@pytest.mark.parametrize("name", ["s.jsonl", "s.json", "s.parquet", "saved"])
def test_no_story_column_in_other_tables(tmp_path, name):
    records = [dict(zip(SENTENCES, row)) for row in ROWS]
    path = tmp_path / name
    if name == "s.jsonl":
        path.write_text("\n\n" + "\n".join(map(json.dumps, records)))
    elif name == "s.json":
        path.write_text(json.dumps(records, indent=1))
    elif name == "s.parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(records), path)
    else:
        import datasets

        datasets.Dataset.from_list(records).save_to_disk(str(path))
    with pytest.raises(ConfigError) as info:
        read(path)
    (problem,) = info.value.problems
    where = {"s.jsonl": f"{path}:3", "s.json": f"{path}:2"}.get(name, str(path))
    assert problem.where == where
    assert problem.hint == f"map them: --set '{MAP_ALL}'"


def test_a_mapped_column_the_file_lacks_is_one_error(tmp_path):
    path = write_csv(tmp_path / "stories.csv")
    with pytest.raises(ConfigError, match=r"no column 'body' for source.fields.text = body"):
        read(path, fields("source.fields.text=body"))
    with pytest.raises(ConfigError, match=r"no column 'sentence9' for source.fields.text"):
        read(path, fields("source.fields.text=[sentence1,sentence9]"))
    with pytest.raises(ConfigError, match=r"no column 'name' for source.fields.title = name"):
        read(path, fields(MAP_ALL, "source.fields.title=name"))


def test_text_like_columns_and_the_suggestion():
    samples = [dict(zip(SENTENCES, row)) for row in ROWS]
    assert text_like(SENTENCES, samples) == STORY_COLUMNS
    assert text_like(["id", "headline"], [{"id": "1", "headline": "Two words"}]) == ["headline"]
    assert suggestion(["body"]) == "--set source.fields.text=body"
    assert suggestion(["my story", "a,b"]) == \
        """--set 'source.fields.text=[my story,"a,b"]'"""


@pytest.mark.parametrize("setting,message", [
    ("source.fields.text=[]", "must name at least one column"),
    ("source.fields.text={a", "not a valid template"),
    ('source.fields.text="{} {a}"', "must name a column"),
    ("source.fields.txt=body", "not a field curate reads"),
])
def test_bad_field_settings_are_named(setting, message):
    with pytest.raises(ConfigError) as info:
        fields(setting)
    assert message in str(info.value) and info.value.problems[0].where.startswith("--set source")


def test_mixed_encodings_repair_only_the_bad_lines(tmp_path, capsys):
    path = tmp_path / "mixed.csv"
    path.write_bytes("title,story\nCafé,Le café était fermé.\n".encode("utf-8") +
                     "Naïve,Une histoire – naïve.\n".encode("cp1252") +
                     "Fin,Voilà la fin.\n".encode("utf-8"))
    items = read(path)
    assert [(s.line, s.meta["title"], s.text) for s in items] == [
        (2, "Café", "Le café était fermé."), (3, "Naïve", "Une histoire – naïve."),
        (4, "Fin", "Voilà la fin.")]
    warning = capsys.readouterr().err.splitlines()
    assert f"warning: {path}: line 3 is not UTF-8 like the rest of the file; read as " \
           "Windows-1252 (check it, or set source.encoding)" in warning[0]


def test_decode_records():
    assert decode_records("a\r\nb".encode("utf-8-sig")) == ("a\nb", [], False)
    assert decode_records("été\nsé".encode("cp1252")) == ("été\nsé", [1, 2], False)
    mixed = "é\n".encode() + "é\n".encode("cp1252") + "x é".encode() + b"\x92"
    assert decode_records(mixed) == ("é\né\nx é’", [2, 3], True)
    assert decode_records("ü".encode("utf-16")) == ("ü", [], False)
    assert decode_records(b"caf\xe9", "latin-1") == ("café", [], False)
