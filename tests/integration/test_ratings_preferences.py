"""`storyteller ratings export`: filled rating sheets (made, filled and imported for real) as
preference pairs and thumbs, curated back by `storyteller curate --preferences`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from storyteller.cli import app
from storyteller.ratings.key import Key
from storyteller.ratings.preferences import build_pairs, majority
from storyteller.ratings.store import PreferenceRow
from tests.conftest import run_cli
from tests.integration.test_ratings_cli import fill_csv, fill_xlsx
from tests.unit.test_ratings_fixture import generations, write_generations

FILLER = "There was a person"


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def rated(tmp_path_factory):
    """Sheets for three raters, filled (rater-03 careless, so flagged) and imported."""
    out = tmp_path_factory.mktemp("eval")
    write_generations(out)
    made = cli("ratings", "make", "--from", str(out), "--raters", "3", "--seed", "7")
    assert made.exit_code == 0, made.output
    folder = out / "ratings"
    key = json.loads((folder / "key.json").read_text())
    sheets = folder / "sheets"
    fill_csv(sheets / "rater-01.csv", "rater-01", key)
    fill_csv(sheets / "rater-01-pairs.csv", "rater-01", key)
    fill_xlsx(sheets / "rater-02.xlsx", "rater-02", key)
    fill_csv(sheets / "rater-03.csv", "rater-03", key)
    fill_csv(sheets / "rater-03-pairs.csv", "rater-03", key)
    filled = [sheets / n for n in ("rater-01.csv", "rater-01-pairs.csv", "rater-02.xlsx",
                                   "rater-03.csv", "rater-03-pairs.csv")]
    imported = cli("ratings", "import", *map(str, filled))
    assert imported.exit_code == 0, imported.output
    return {"out": out, "folder": folder, "key": key,
            "generations": {g["id"]: g for g in generations()}}


def test_pairs_are_the_kept_raters_majority_with_the_evaluated_prompt(rated, tmp_path):
    out = tmp_path / "ratings-prefs.jsonl"
    result = cli("ratings", "export", "--from", str(rated["out"]), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "flagged raters (left out): rater-03" in result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    key, gens = rated["key"], rated["generations"]
    # The two kept raters prefer the real story to the filler; equal stories are ties: no pair.
    decided = [item for item, info in key["pairs"].items()
               if (FILLER in gens[info["a"]["generation"]]["text"])
               != (FILLER in gens[info["b"]["generation"]]["text"])]
    assert 0 < len(decided) < len(key["pairs"])
    assert sorted(r["item"] for r in records) == sorted(decided)
    for record in records:
        info = key["pairs"][record["item"]]
        winner = next(side for side in (info["a"], info["b"])
                      if FILLER not in gens[side["generation"]]["text"])
        assert record["chosen"] == gens[winner["generation"]]["text"]
        assert FILLER in record["rejected"] and record["models"]["chosen"] == "tuned"
        assert record["prompt"] == gens[winner["generation"]]["messages"]
        assert record["judgement"] == "rating sheet"
        assert record["agreement"] == 1.0 and record["votes"] in ({"A": 2}, {"B": 2})
        assert record["scores"] == {"chosen": 1.0, "rejected": 0.0}
        assert record["controls"]["genre"] == gens[winner["generation"]]["controls"]["genre"]


def test_scores_give_thumbs_and_both_files_curate(rated, tmp_path):
    thumbs = tmp_path / "ratings-thumbs.jsonl"
    pairs = tmp_path / "ratings-prefs.jsonl"
    assert cli("ratings", "export", "--from", str(rated["folder"]), "--kind", "kto",
               "--out", str(thumbs)).exit_code == 0
    assert cli("ratings", "export", "--from", str(rated["folder"]),
               "--out", str(pairs)).exit_code == 0
    records = [json.loads(line) for line in thumbs.read_text().splitlines()]
    gens = rated["generations"]
    # Every story rated: the real ones 4.5–5 overall (good), the filler 1–2 (bad).
    assert len(records) == len(gens)
    for record in records:
        generation = gens[record["id"].removeprefix("rating-")]
        assert record["label"] is (FILLER not in generation["text"])
        assert record["completion"] == generation["text"] and record["raters"] == 2
    assert sum(not r["label"] for r in records) == 6

    out = tmp_path / "data"
    result = run_cli("curate", str(pairs), str(thumbs), "--preferences", "--out", str(out))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"]
    # Where both models wrote the same story for a prompt, the second thumb is the first again.
    same = sum(1 for g in gens.values() if g["model"] == "base"
               and g["text"] == gens[g["id"].replace("base-", "tuned-", 1)]["text"])
    assert same == 6 and counts["rejected"] == {"duplicate_exact": same}
    assert sum(counts[s]["unpaired"] for s in ("train", "val", "test")) == len(records) - same
    assert sum(counts[s]["pair"] for s in ("train", "val", "test")) == \
        len(pairs.read_text().splitlines())
    assert {j for s in ("train", "val", "test") for j in counts["judgement"][s]} == \
        {"rating sheet"}


def test_majority_ties_and_split_votes():
    assert majority(["A", "A", "B"]) == ("A", pytest.approx(2 / 3))
    assert majority(["B"]) == ("B", 1.0)
    assert majority(["A", "B"]) is None            # no majority
    assert majority(["tie", "tie", "A"]) is None   # most say tie
    assert majority(["A", "tie", "B", "B"]) == ("B", 0.5)
    assert majority([]) is None


def test_build_pairs_counts_only_kept_raters():
    key = Key(("r1", "r2", "r3"), ("overall",), (1, 5), {}, {
        "it-1": {"a": {"generation": "g-a", "model": "x"},
                 "b": {"generation": "g-b", "model": "y"}}}, {})
    gens = {"g-a": {"prompt": "Tell a tale.", "text": "Tale A."},
            "g-b": {"prompt": "Tell a tale.", "text": "Tale B.", "controls": {"genre": "myth"}}}
    prefs = [PreferenceRow("r1", "it-1", "B"), PreferenceRow("r2", "it-1", "B"),
             PreferenceRow("r3", "it-1", "A")]
    [record] = build_pairs(key, prefs, {"r1", "r2", "r3"}, gens)
    assert (record["chosen"], record["rejected"]) == ("Tale B.", "Tale A.")
    assert record["prompt"] == [{"role": "user", "content": "Tell a tale."}]
    assert record["scores"] == {"chosen": 0.6667, "rejected": 0.3333}
    assert record["controls"] == {"genre": "myth"}
    assert build_pairs(key, prefs, {"r1", "r3"}, gens) == []  # one each: no majority


def test_export_errors_are_located(rated, tmp_path):
    result = cli("ratings", "export", "--from", str(rated["folder"]), "--kind", "dpo",
                 "--out", str(tmp_path / "x.jsonl"))
    assert result.exit_code == 1 and "--kind: 'dpo' is not an export kind" in result.output
    result = cli("ratings", "export", "--from", str(tmp_path), "--out", str(tmp_path / "x.jsonl"))
    assert result.exit_code == 1 and "holds no key.json" in result.output


def test_answers_imported_for_another_key_are_refused_as_report_refuses_them(tmp_path):
    """Sheets A and B made from the same generations and seed share item ids, so answers to
    A's sheets stored in B's folder would export as if B's raters had given them."""
    write_generations(tmp_path)
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, raters in ((first, "2"), (second, "3")):
        made = cli("ratings", "make", "--from", str(tmp_path), "--raters", raters,
                   "--seed", "7", "--out", str(folder))
        assert made.exit_code == 0, made.output
    key_a = json.loads((first / "key.json").read_text())
    key_b = json.loads((second / "key.json").read_text())
    assert set(key_a["pairs"]) == set(key_b["pairs"])  # the same items, another key
    filled = []
    for rater in ("rater-01", "rater-02"):
        for name in (f"{rater}.csv", f"{rater}-pairs.csv"):
            fill_csv(first / "sheets" / name, rater, key_a)
            filled.append(str(first / "sheets" / name))
    store = second / "ratings.sqlite"
    imported = cli("ratings", "import", *filled, "--store", str(store))
    assert imported.exit_code == 0, imported.output

    out = tmp_path / "prefs.jsonl"
    refused = [cli("ratings", command, "--from", str(second), "--out", str(target))
               for command, target in (("export", out), ("report", tmp_path / "report"))]
    for result in refused:
        assert result.exit_code == 1, result.output
        assert f"{store}: holds answers for another key.json than {second / 'key.json'}" \
            in result.output
        assert "storyteller ratings import" in result.output
    assert refused[0].output == refused[1].output  # one check, one message
    assert not out.exists() and not (tmp_path / "report").exists()

    # The same store with the key its answers belong to exports as before.
    exported = cli("ratings", "export", "--from", str(first), "--store", str(store),
                   "--out", str(out))
    assert exported.exit_code == 0, exported.output
    assert out.read_text().count("\n") > 0


def test_generations_rewritten_after_the_sheets_were_made_are_not_exported(tmp_path):
    """The raters judged the stories as they were: a generations file changed since ratings make
    would attach their verdicts to other text, so export refuses it, naming the file."""
    write_generations(tmp_path)
    folder = tmp_path / "sheets-out"
    made = cli("ratings", "make", "--from", str(tmp_path), "--raters", "2", "--seed", "7",
               "--out", str(folder))
    assert made.exit_code == 0, made.output
    key = json.loads((folder / "key.json").read_text())
    filled = []
    for rater in ("rater-01", "rater-02"):
        for name in (f"{rater}.csv", f"{rater}-pairs.csv"):
            fill_csv(folder / "sheets" / name, rater, key)
            filled.append(str(folder / "sheets" / name))
    assert cli("ratings", "import", *filled).exit_code == 0
    generations = (folder / key["source"]["generations"]).resolve()
    original = generations.read_text()
    generations.write_text("\n".join(
        json.dumps({**json.loads(line), "text": "REWRITTEN " + json.loads(line)["text"]})
        for line in original.splitlines() if line.strip()) + "\n")
    out = tmp_path / "prefs.jsonl"
    refused = cli("ratings", "export", "--from", str(folder), "--out", str(out))
    assert refused.exit_code == 1 and "changed after the sheets were made" in refused.output
    assert str(generations.name) in refused.output and not out.exists()
    generations.write_text(original)
    exported = cli("ratings", "export", "--from", str(folder), "--out", str(out))
    assert exported.exit_code == 0, exported.output
    assert "REWRITTEN" not in out.read_text() and out.read_text().strip()
