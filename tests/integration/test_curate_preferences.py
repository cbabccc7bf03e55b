"""`storyteller curate --preferences` on real files: good and bad lines, exit codes, rejects,
manifest, the directory read back as training reads it; and the studio's exports (a real
library file) curated back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storyteller.client import story_messages
from storyteller.curated import manifest_hash
from storyteller.finetune.prefdata import read_preference_data
from storyteller.prompts import StoryRequest
from storyteller.studio.draft import request_to_json
from storyteller.studio.library import StoryLibrary
from tests.conftest import run_cli
from tests.integration.finetune_data import starter_stories

pytestmark = pytest.mark.slow

SPLITS = ("train", "val", "test")


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def good_records(count: int) -> list[dict]:
    """Pairs over `count` prompts (two per prompt), in the shapes users hand to curate."""
    records = []
    for n in range(count):
        prompt = [{"role": "system", "content": "You are a storyteller."},
                  {"role": "user", "content": f"[ Genre: fable ]\nWrite a story about fox {n}."}]
        records.append({"prompt": prompt, "chosen": f"Fox {n} told a long and careful lie.",
                        "rejected": f"Fox {n}.", "genre": "fable"})
        records.append({"prompt": f"A crow story, number {n}.",
                        "chosen": [{"role": "assistant", "content": f"Crow {n} sang at dawn."}],
                        "rejected": [{"role": "assistant", "content": f"Crow {n}."}],
                        "judgement": "studio pick"})
    return records


BAD_LINES = [
    '{"prompt": "A hare.", "chosen": "The hare ran."}',                           # missing_side
    '{"prompt": "A hare.", "chosen": "Same  words.", "rejected": "Same words."}',  # same_sides
    'this is not JSON',                                                            # malformed
    '{"prompt": [{"role": "user", "content": "A hare."}, {"role": "assistant", '
    '"content": "Hi"}], "chosen": "a", "rejected": "b"}',                          # unrenderable
    '{"prompt": "A hare.", "completion": "The hare ran.", "label": true}',         # mixed_shapes
]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    root = tmp_path_factory.mktemp("prefs")
    good = good_records(10)
    rows = good[:5] + BAD_LINES + good[5:] + [good[0]]  # and an exact duplicate of line 1
    inputs = write_jsonl(root / "prefs.jsonl", rows)
    array = root / "more.json"
    array.write_text(json.dumps([{"prompt": "An owl.", "chosen": "The owl watched.",
                                  "rejected": "Owl."}, {"prompt": "An owl."}]))
    out = root / "data"
    result = run_cli("curate", str(inputs), str(array), "--preferences", "--out", str(out),
                     "--val-fraction", "0.2", "--test-fraction", "0.1", "--seed", "4")
    return {"root": root, "inputs": inputs, "array": array, "out": out, "result": result,
            "rows": rows}


def test_good_and_bad_lines_exit_zero_with_located_rejects(curated):
    result, out, inputs = curated["result"], curated["out"], curated["inputs"]
    assert result.returncode == 0, result.stderr
    rejects = lines(out / "rejects.jsonl")
    assert [(r["source"], r["line"], r["reason"]) for r in rejects] == [
        (str(inputs), 6, "missing_side"), (str(inputs), 7, "same_sides"),
        (str(inputs), 8, "malformed"), (str(inputs), 9, "unrenderable_prompt"),
        (str(inputs), 10, "mixed_shapes"), (str(inputs), 26, "duplicate_exact"),
        (str(curated["array"]), None, "missing_side")]
    assert rejects[-1]["position"] == 1
    assert all(r["detail"] for r in rejects)


def test_the_manifest_counts_splits_judgements_and_rejects(curated):
    out = curated["out"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "preference" and manifest["made_by"] == "curate"
    counts = manifest["counts"]
    kept = {name: lines(out / f"{name}.jsonl") for name in SPLITS}
    assert sum(counts[name]["pair"] for name in SPLITS) == 21 == sum(map(len, kept.values()))
    assert all(counts[name]["unpaired"] == 0 for name in SPLITS)
    assert counts["rejected"] == {"duplicate_exact": 1, "malformed": 1, "missing_side": 2,
                                  "mixed_shapes": 1, "same_sides": 1, "unrenderable_prompt": 1}
    assert sum(counts["judgement"][name].get("studio pick", 0) for name in SPLITS) == 10
    assert sum(counts["judgement"][name].get("rating sheet", 0) for name in SPLITS) == 11
    # 21 prompts: 0.7 / 0.2 / 0.1 of them, to within one.
    assert [counts["groups"][n] for n in SPLITS] == [15, 4, 2]
    groups = [{r["group"] for r in kept[name]} for name in SPLITS]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert manifest["config"]["split"] == {"train": 0.7, "val": 0.2, "test": 0.1,
                                           "stratify": "genre"}
    from storyteller.files import sha256_of
    assert {name: sha256_of(out / name) for name in manifest["outputs"]} == manifest["outputs"]
    assert [i["kept"] for i in manifest["inputs"]] == [20, 1]
    report = (out / "report.md").read_text()
    assert "| train | " in report and "| unrenderable_prompt | 1 |" in report


def test_training_reads_the_directory(curated):
    out = curated["out"]
    splits, data_hash = read_preference_data(out)
    assert data_hash == manifest_hash(out)
    assert len(splits["train"]) == json.loads((out / "manifest.json").read_text())[
        "counts"]["train"]["pair"]
    record = splits["train"][0]
    assert set(record) == {"id", "group", "kind", "prompt", "chosen", "rejected", "scores",
                           "controls", "source", "judgement"}


def test_the_same_inputs_and_seed_give_the_same_bytes(curated, tmp_path):
    again = tmp_path / "again"
    result = run_cli("curate", str(curated["inputs"]), str(curated["array"]), "--preferences",
                     "--out", str(again), "--val-fraction", "0.2", "--test-fraction", "0.1",
                     "--seed", "4")
    assert result.returncode == 0, result.stderr
    for name in (*(f"{s}.jsonl" for s in SPLITS), "rejects.jsonl", "manifest.json"):
        assert (again / name).read_bytes() == (curated["out"] / name).read_bytes(), name


def test_mostly_bad_input_writes_everything_and_exits_1(tmp_path):
    inputs = write_jsonl(tmp_path / "bad.jsonl", good_records(1)[:1] + BAD_LINES[:4])
    out = tmp_path / "data"
    result = run_cli("curate", str(inputs), "--preferences", "--out", str(out))
    assert result.returncode == 1
    assert "4 of 5 records (80%) were rejected" in result.stderr
    assert len(lines(out / "rejects.jsonl")) == 4 and (out / "manifest.json").is_file()


def test_nothing_usable_is_an_error_naming_the_first_problem(tmp_path):
    inputs = write_jsonl(tmp_path / "bad.jsonl", BAD_LINES[:3])
    out = tmp_path / "data"
    result = run_cli("curate", str(inputs), "--preferences", "--out", str(out))
    assert result.returncode == 1
    assert f"{inputs}:1: missing_side: no rejected" in result.stderr
    assert "no usable preference record" in result.stderr
    assert not (out / "manifest.json").exists()


def test_preview_shows_what_was_read_and_writes_nothing(curated, tmp_path):
    result = run_cli("curate", str(curated["inputs"]), "--preferences", "--preview",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "records read" in result.stderr and "rejected: same_sides" in result.stderr
    # the console wraps long lines where its output is not a terminal (a long temporary path)
    said = " ".join(result.stderr.split())
    assert f"rejected {curated['inputs']}:7: same_sides" in said
    assert '"kind": "pair"' in said
    assert list(tmp_path.iterdir()) == []


def test_split_flags_are_checked(curated, tmp_path):
    inputs = str(curated["inputs"])
    result = run_cli("curate", inputs, "--val-fraction", "0.2", "--out", str(tmp_path / "x"))
    assert result.returncode == 1 and "--val-fraction: only with --preferences" in result.stderr
    result = run_cli("curate", inputs, "--preferences", "--val-fraction", "0.6",
                     "--test-fraction", "0.5", "--out", str(tmp_path / "x"))
    assert result.returncode == 1 and "leave nothing to train on" in result.stderr
    result = run_cli("curate", inputs, "--preferences", "--judgement", "vibes",
                     "--out", str(tmp_path / "x"))
    assert result.returncode == 1 and "--judgement: 'vibes' is not a judgement" in result.stderr


# ---------------------------------------------------------------------- studio → curate


@pytest.fixture()
def library(tmp_path):
    """Four starter stories written as in the studio: each asked, regenerated, rated; the
    first version edited by the writer; and in one story three candidates, one kept."""
    path = tmp_path / "library.sqlite"
    stories = starter_stories()[::25][:4]
    with StoryLibrary(path) as lib:
        for index, source in enumerate(stories):
            controls = {k: source[k] for k in ("genre", "style", "tone") if source.get(k)}
            request = StoryRequest(controls=controls, premise=source["premise"],
                                   title=source["title"])
            story = lib.create_story(source["title"], source["premise"], controls)
            asked = {"messages": story_messages(request), "request": request_to_json(request),
                     "model": "quickstart", "settings": {"preset": "balanced"}}
            short = " ".join(source["text"].split()[:60])
            best = lib.add_generation(story.id, kind="write", text=source["text"], **asked)
            worse = lib.add_generation(story.id, kind="regenerate", text=short, **asked)
            middling = lib.add_generation(story.id, kind="regenerate", text=short + " The end.",
                                          **asked)
            lib.rate(best.id, 5)
            lib.rate(worse.id, 1)
            lib.rate(middling.id, 3)
            lib.add_generation(story.id, kind="edit", parent_id=worse.id,
                               text=short + " And then, at last, the fox understood.")
            if index == 0:
                candidates = [lib.add_generation(story.id, kind="regenerate", make_current=False,
                                                 text=f"Candidate {n}: " + short, **asked)
                              for n in range(3)]
                lib.record_pick(story.id, candidates[1].id, [c.id for c in candidates])
    return path, stories


def test_library_exports_are_curated_back_as_preferences(library, tmp_path):
    path, stories = library
    prefs, thumbs = tmp_path / "prefs.jsonl", tmp_path / "thumbs.jsonl"
    for kind, out in (("preference", prefs), ("kto", thumbs)):
        result = run_cli("library", "export", "--library", str(path), "--kind", kind,
                         "--out", str(out))
        assert result.returncode == 0, result.stderr
    exported = lines(prefs)
    judgements = [r["judgement"] for r in exported]
    # Per story: 5★ > 1★, 5★ > 3★, 3★ > 1★; two picks; one writer edit per story.
    assert judgements.count("studio stars") == 3 * len(stories)
    assert judgements.count("studio pick") == 2
    assert judgements.count("writer edit") == len(stories)
    shorts = {" ".join(s["text"].split()[:60]) for s in stories}
    for edit in (r for r in exported if r["judgement"] == "writer edit"):
        assert edit["rejected"] in shorts
        assert edit["chosen"] == edit["rejected"] + " And then, at last, the fox understood."
    assert [r["label"] for r in lines(thumbs)] == [True, False] * len(stories)

    out = tmp_path / "data"
    result = run_cli("curate", str(prefs), str(thumbs), "--preferences", "--out", str(out),
                     "--val-fraction", "0.25", "--test-fraction", "0")
    assert result.returncode == 0, result.stderr
    assert lines(out / "rejects.jsonl") == []
    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"]
    assert sum(counts[s]["pair"] for s in SPLITS) == len(exported)
    assert sum(counts[s]["unpaired"] for s in SPLITS) == 2 * len(stories)
    by_judgement = {}
    for split in SPLITS:
        for name, n in counts["judgement"][split].items():
            by_judgement[name] = by_judgement.get(name, 0) + n
    assert by_judgement == {"studio stars": 3 * len(stories) + 2 * len(stories),
                            "studio pick": 2, "writer edit": len(stories)}
    splits, _ = read_preference_data(out)
    star = next(r for s in SPLITS for r in splits[s] if r["judgement"] == "studio stars"
                and r["kind"] == "pair")
    assert star["scores"] in ({"chosen": 5.0, "rejected": 1.0}, {"chosen": 5.0, "rejected": 3.0},
                              {"chosen": 3.0, "rejected": 1.0})
    assert star["controls"]["genre"] and star["prompt"][-1]["role"] == "user"
    # Every story's records answer one prompt, so each story sits in one split.
    for story in stories:
        where = {s for s in SPLITS for r in splits[s]
                 if story["premise"] in r["prompt"][-1]["content"]}
        assert len(where) == 1
