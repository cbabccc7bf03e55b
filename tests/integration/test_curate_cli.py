"""End-to-end tests of `storyteller curate`: the real command in a subprocess (no mocks), on the
sample corpora (corpora/samples, whose README says what is planted where), on the starter corpus
and on small files written here.

A run costs several seconds, so each distinct run happens once per test session and the tests
that read its outputs share it, across pytest-xdist workers too (a file lock guards each run)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pytest
from filelock import FileLock

from storyteller.curate import dedup
from tests.conftest import ROOT, SAMPLES, run_cli

pytestmark = pytest.mark.slow

SPLITS = ("train", "val", "test")
S = "corpora/samples"
JSONL = f"{S}/jsonl/stories.jsonl"
SAMPLES_ARGS = (S, "--config", "configs/curate/samples.yaml")
GROUPED_ARGS = (JSONL, "--set", "dedup.near_action=group")


# --------------------------------------------------------------------------- running the command


@dataclass
class Run:
    """One finished `storyteller curate` run and the files it wrote."""

    args: list[str]
    out: Path
    returncode: int
    stdout: str
    stderr: str

    def explain(self) -> str:
        return (f"storyteller {' '.join(self.args)} → exit {self.returncode}\n"
                f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}")

    def rows(self, name: str) -> list[dict]:
        text = (self.out / name).read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines()]

    @cached_property
    def manifest(self) -> dict:
        return json.loads((self.out / "manifest.json").read_text(encoding="utf-8"))

    @cached_property
    def splits(self) -> dict[str, list[dict]]:
        return {name: self.rows(f"{name}.jsonl") for name in SPLITS}

    @cached_property
    def pairs(self) -> list[tuple[str, dict]]:
        """(split, pair) for every line of train, val and test."""
        return [(name, pair) for name in SPLITS for pair in self.splits[name]]

    @cached_property
    def rejects(self) -> list[dict]:
        return self.rows("rejects.jsonl")

    @cached_property
    def story_split(self) -> dict[tuple, str]:
        """story (its source location) → the split its pairs went to."""
        result: dict[tuple, str] = {}
        for split, pair in self.pairs:
            key = story_key(pair)
            assert result.setdefault(key, split) == split, f"story {key} is in {result[key]} and {split}"
        return result

    def pairs_from(self, file: str, line: int) -> list[tuple[str, dict]]:
        return [(s, p) for s, p in self.pairs if p["source"]["file"] == file and p["source"]["line"] == line]


def story_key(pair: dict) -> tuple:
    source = pair["source"]
    return source["file"], source.get("line"), source.get("position")


def _shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session's folder, shared by all workers
    root = base / "curate-cli-runs"
    root.mkdir(exist_ok=True)
    return root


def curate(tmp_path_factory: pytest.TempPathFactory, key: str, *args: str) -> Run:
    """`storyteller curate ARGS --out <shared>/KEY`, run once per session whatever asks for it."""
    root = _shared_root(tmp_path_factory)
    out = root / key
    record = root / f"{key}.run.json"
    with FileLock(str(root / f"{key}.lock")):
        if not record.exists():
            full = ["curate", *args, "--out", str(out)]
            proc = run_cli(*full)
            record.write_text(json.dumps({"args": full, "returncode": proc.returncode,
                                          "stdout": proc.stdout, "stderr": proc.stderr}))
        data = json.loads(record.read_text())
    assert data["args"][:-2] == ["curate", *args], f"run {key!r} was made with other arguments"
    return Run(data["args"], out, data["returncode"], data["stdout"], data["stderr"])


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def input_of(source_file: str, inputs: list[str]) -> str | None:
    """The input (file or folder) a pair's source file was read from. WritingPrompts stories
    come from `X.wp_target`, the partner of the input `X.wp_source`."""
    for path in inputs:
        if source_file == path or source_file.startswith(path.rstrip("/") + "/"):
            return path
    for path in inputs:
        if Path(source_file).with_suffix("") == Path(path).with_suffix(""):
            return path
    return None


def readme_kept() -> tuple[dict[str, int], int]:
    """The README's summary table: input path → good stories to keep, and the stated total."""
    text = (SAMPLES / "README.md").read_text(encoding="utf-8")
    summary = text.split("## Summary", 1)[1].split("\n## ", 1)[0]
    kept, total = {}, None
    for line in summary.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) != 3 or not re.search(r"\*\*\d+\*\*", cells[2]):
            continue
        number = int(re.search(r"\*\*(\d+)\*\*", cells[2]).group(1))
        if "total" in cells[0]:
            total = number
        else:
            name = re.search(r"`([^`]+)`", cells[0]).group(1).rstrip("/")
            kept[f"{S}/{name}"] = number
    assert total is not None and len(kept) >= 17, "README summary table not understood"
    return kept, total


# --------------------------------------------------------------------------- shared runs


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Run:
    return curate(tmp_path_factory, "samples", *SAMPLES_ARGS)


@pytest.fixture(scope="module")
def samples_again(tmp_path_factory) -> Run:
    return curate(tmp_path_factory, "samples-again", *SAMPLES_ARGS)


@pytest.fixture(scope="module")
def samples_seed1(tmp_path_factory) -> Run:
    return curate(tmp_path_factory, "samples-seed1", *SAMPLES_ARGS, "--seed", "1")


@pytest.fixture(scope="module")
def grouped(tmp_path_factory) -> Run:
    return curate(tmp_path_factory, "jsonl-grouped", *GROUPED_ARGS)


@pytest.fixture(scope="module")
def starter(tmp_path_factory) -> Run:
    return curate(tmp_path_factory, "starter", "corpora/starter", "--config", "configs/curate/starter.yaml")


GOOD_STORY = (
    "The lighthouse keeper on Gull Rock kept a notebook of every ship that passed. For forty years "
    "he wrote down their names, their flags and the weather. When the lamp was finally automated, a "
    "young engineer came out on the supply boat to switch it over. She found the notebooks stacked in "
    "the cellar, hundreds of them, dry and neat and tied with string. Before she left, she added one "
    "last line in her own hand: the keeper's name, the date, and the words fair weather, all ships home."
)
MALFORMED_LINES = ['{"title": "Broken", "text": "This record stops in the middle',
                   "not json at all",
                   '{"text": "a missing closing brace"',
                   "{,}"]


@pytest.fixture(scope="module")
def bad_share(tmp_path_factory) -> Run:
    path = _shared_root(tmp_path_factory) / "mostly_bad.jsonl"
    with FileLock(f"{path}.lock"):
        if not path.exists():
            lines = [json.dumps({"title": "The Keeper's Notebooks", "text": GOOD_STORY})] + MALFORMED_LINES
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return curate(tmp_path_factory, "bad-share", str(path))


# --------------------------------------------------------------------------- 1. all samples at once


def test_samples_exit_zero(samples):
    assert samples.returncode == 0, samples.explain()
    assert "Traceback" not in samples.stderr


def test_samples_kept_per_input_match_readme(samples):
    expected, total = readme_kept()
    inputs = {i["path"]: i for i in samples.manifest["inputs"]}
    assert set(inputs) == set(expected), "every sample input is read, and only those"

    kept = Counter()
    for key in samples.story_split:
        owner = input_of(key[0], list(inputs))
        assert owner is not None, f"pair from {key[0]} matches no input"
        kept[owner] += 1
    rejected = Counter(input_of(r["source"], list(inputs)) for r in samples.rejects)
    for path, number in expected.items():
        assert kept[path] == number, f"{path}: {kept[path]} stories kept, README says {number}"
        # Every record read from an input is either kept or rejected, never lost.
        assert inputs[path]["records"] - rejected[path] == number, path
    assert sum(kept.values()) == total == samples.manifest["counts"]["stories_kept"]
    assert samples.manifest["counts"]["stories_read"] == sum(i["stories"] for i in inputs.values())


EXPECTED_REJECTS = {
    (JSONL, 3, "malformed"), (JSONL, 5, "malformed"), (JSONL, 6, "missing_text"),
    (JSONL, 7, "not_text"), (JSONL, 8, "too_short"), (JSONL, 10, "duplicate_exact"),
    (JSONL, 11, "duplicate_near"), (JSONL, 14, "junk"), (JSONL, 15, "repetitive"),
    (f"{S}/csv/stories.csv", 35, "malformed"), (f"{S}/csv/stories.csv", 70, "malformed"),
    (f"{S}/separated/endoftext.txt", 69, "truncated"),
    (f"{S}/folder/untitled.txt", None, "empty"),
    (f"{S}/json/fables.json", 20, "empty"),              # object 4: empty body
    (f"{S}/parquet/stories.parquet", None, "missing_text"),  # row 5: null text
    (f"{S}/tinystories/instruct.txt", 56, "missing_text"),  # record 4: no Story
}


def test_samples_rejects_are_exactly_the_planted_records(samples):
    found = [(r["source"], r["line"], r["reason"]) for r in samples.rejects]
    assert len(found) == len(set(found)), "a record is rejected twice"
    assert set(found) == EXPECTED_REJECTS, (
        f"missing: {sorted(EXPECTED_REJECTS - set(found), key=str)}; "
        f"unexpected: {sorted(set(found) - EXPECTED_REJECTS, key=str)}")
    for row in samples.rejects:
        assert isinstance(row.get("detail"), str) and row["detail"], row
    positions = {r["source"]: r.get("position") for r in samples.rejects}
    assert positions[f"{S}/parquet/stories.parquet"] == 4  # 0-based row 5
    assert positions[f"{S}/json/fables.json"] == 3         # 0-based object 4
    duplicates = {r["line"]: r["detail"] for r in samples.rejects if r["reason"].startswith("duplicate")}
    assert f"{JSONL}:2" in duplicates[10] and f"{JSONL}:4" in duplicates[11]


def test_samples_jsonl_keeps_exactly_the_good_lines(samples):
    lines = {key[1] for key in samples.story_split if key[0] == JSONL}
    assert lines == {1, 2, 4, 9, 12, 13, 16, 17}


def test_samples_line_12_text_is_cleaned(samples):
    pairs = samples.pairs_from(JSONL, 12)
    assert pairs, "line 12 (bad Unicode) must be kept"
    for _, pair in pairs:
        text = pair["messages"][-1]["content"]
        assert "\u200b" not in text and "\u0007" not in text
        assert unicodedata.is_normalized("NFC", text)
    premise = next(p for _, p in pairs if p["kind"] == "premise" and not p["augmented"])
    story = premise["messages"][-1]["content"]
    assert story.startswith("Every weekday at seven")  # the leading U+200B is gone
    assert "caf\u00e9 on Brill Street" in story and "coffee machine" in story
    assert "Mrs. Okafor, who" in story and "na\u00efve" in story


def test_samples_line_12_prompt_and_controls_are_cleaned(samples):
    pairs = samples.pairs_from(JSONL, 12)
    assert pairs
    for _, pair in pairs:
        strings = [m["content"] for m in pair["messages"]]
        strings += [v for v in pair["controls"].values() if isinstance(v, str)]
        for value in strings:
            assert "\u200b" not in value and "\u0007" not in value
            assert unicodedata.is_normalized("NFC", value), (pair["id"], value[:120])


def test_samples_line_13_html_is_removed(samples):
    pairs = samples.pairs_from(JSONL, 13)
    assert pairs, "line 13 (HTML) must be kept"
    for _, pair in pairs:
        for message in pair["messages"]:
            text = message["content"]
            assert not re.search(r"</?(p|i)>", text) and "&amp;" not in text, pair["id"]
    premise = next(p for _, p in pairs if p["kind"] == "premise" and not p["augmented"])
    story = premise["messages"][-1]["content"]
    assert "a rope & came along" in story
    assert story.count("\n\n") >= 4  # the five <p> became paragraphs


def test_samples_outputs_carry_no_format_debris(samples):
    """Separators, markers, BOMs, CRs, PTB tokens and markup stay out of every message."""
    debris = ["\r", "\ufeff", "<newline>", "-LRB-", "-RRB-", "``", " n't", "<|endoftext|>", "* * *",
              "Project Gutenberg", "PROJECT GUTENBERG", "Features:", "Random sentence:", "](http",
              "**", "[ WP ]"]
    found = [(p["id"], d) for _, p in samples.pairs for m in p["messages"] for d in debris
             if d in m["content"]]
    assert not found


# --------------------------------------------------------------------------- 2. each format alone


FORMATS = [
    # jsonl alone is the `grouped` run (shared with the near-duplicate test below).
    pytest.param("jsonl", [JSONL], list(GROUPED_ARGS[1:]), id="jsonl"),
    pytest.param("json", [f"{S}/json/fables.json"],
                 ["--set", "source.fields.text=body", "--set", "source.fields.title=name"], id="json"),
    pytest.param("csv", [f"{S}/csv/stories.csv", f"{S}/csv/latin1.csv"], [], id="csv"),
    pytest.param("parquet", [f"{S}/parquet/stories.parquet"], [], id="parquet"),
    pytest.param("folder", [f"{S}/folder"], [], id="folder"),
    pytest.param("text", [f"{S}/separated/{n}.txt" for n in
                          ("blank_lines", "one_per_line", "endoftext", "asterisms")],
                 ["--format", "text"], id="text"),
    pytest.param("gutenberg", [f"{S}/gutenberg/pg_lantern_tales.txt", f"{S}/gutenberg/pg_old_style.txt"],
                 [], id="gutenberg"),
    pytest.param("tinystories", [f"{S}/tinystories/plain.txt", f"{S}/tinystories/instruct.txt"], [],
                 id="tinystories"),
    pytest.param("writingprompts", [f"{S}/writingprompts/valid.wp_source", f"{S}/writingprompts/sample.csv"],
                 [], id="writingprompts"),
    pytest.param("datasets", [f"{S}/datasets/saved"], [], id="datasets"),
]


@pytest.mark.parametrize("fmt, paths, extra", FORMATS)
def test_each_format_on_its_own_produces_pairs(tmp_path_factory, fmt, paths, extra):
    key = "jsonl-grouped" if fmt == "jsonl" else f"format-{fmt}"
    run = curate(tmp_path_factory, key, *paths, *extra)
    assert run.returncode == 0, run.explain()
    inputs = {i["path"]: i for i in run.manifest["inputs"]}
    assert set(inputs) == set(paths)
    assert {i["format"] for i in inputs.values()} == {fmt}
    per_input = Counter(input_of(p["source"]["file"], paths) for _, p in run.pairs)
    for path in paths:
        assert per_input[path] > 0, f"no pair from {path}"
    assert sum(run.manifest["counts"]["pairs"].values()) == len(run.pairs) > 0
    if fmt == "json":  # the field mapping was applied: titles come from `name`
        names = {o["name"] for o in json.loads((ROOT / paths[0]).read_text(encoding="utf-8"))}
        titles = {p["controls"]["title"] for _, p in run.pairs if p["kind"] == "title"}
        assert titles and titles <= names


# --------------------------------------------------------------------------- 3. determinism


def test_rerun_with_same_seed_is_byte_identical(samples, samples_again):
    assert samples.returncode == samples_again.returncode == 0, samples_again.explain()
    first = sorted(p.name for p in samples.out.iterdir())
    second = sorted(p.name for p in samples_again.out.iterdir())
    assert first == second
    assert any(name.endswith(".png") for name in first), "charts are written"
    for name in first:
        assert (samples.out / name).read_bytes() == (samples_again.out / name).read_bytes(), name


def test_different_seed_changes_the_split(samples, samples_seed1):
    assert samples_seed1.returncode == 0, samples_seed1.explain()
    before, after = samples.story_split, samples_seed1.story_split
    assert set(before) == set(after), "the seed changes where stories go, not which are kept"
    moved = [key for key in before if before[key] != after[key]]
    assert moved, "seed 1 put every story in the same split as seed 0"


# --------------------------------------------------------------------------- 4. leakage


@pytest.mark.parametrize("run_name", ["samples", "grouped", "starter"])
def test_no_group_crosses_splits(request, run_name):
    run = request.getfixturevalue(run_name)
    assert run.returncode == 0, run.explain()
    split_of_group: dict[str, set[str]] = defaultdict(set)
    for split, pair in run.pairs:
        split_of_group[pair["group"]].add(split)
    crossing = {g: s for g, s in split_of_group.items() if len(s) > 1}
    assert not crossing


def test_grouped_near_duplicate_is_kept_in_its_originals_group(grouped):
    assert grouped.returncode == 0, grouped.explain()
    reasons = {(r["line"], r["reason"]) for r in grouped.rejects}
    assert (11, "duplicate_near") not in reasons and (10, "duplicate_exact") in reasons
    assert grouped.manifest["counts"]["duplicates"]["near"] == 1
    original, near = grouped.pairs_from(JSONL, 4), grouped.pairs_from(JSONL, 11)
    assert original and near, "with near_action=group both stories are kept"
    groups = {p["group"] for _, p in original + near}
    assert len(groups) == 1, groups
    assert len({split for split, _ in original + near}) == 1
    # The two really are near-duplicates by the measure the leakage check below uses.
    config = grouped.manifest["config"]["dedup"]
    signer = dedup.Signer(config["num_perm"], config["shingle_words"])
    texts = [next(p for _, p in pairs if p["kind"] == "premise" and not p["augmented"])["messages"][-1]["content"]
             for pairs in (original, near)]
    sets = [signer.sign_with_set(t)[1] for t in texts]
    assert dedup.jaccard(*sets) >= config["threshold"]


def test_no_near_duplicates_across_splits(samples):
    config = samples.manifest["config"]["dedup"]
    signer = dedup.Signer(config["num_perm"], config["shingle_words"], seed=samples.manifest["config"]["seed"] + 1)
    texts: dict[str, set[str]] = defaultdict(set)
    for split, pair in samples.pairs:
        texts[pair["messages"][-1]["content"]].add(split)
    assert all(len(s) == 1 for s in texts.values()), "one text in two splits"
    signed = [(next(iter(splits)), signer.sign_with_set(text)[1], text) for text, splits in texts.items()]
    leaks = []
    for i, (split_a, set_a, text_a) in enumerate(signed):
        for split_b, set_b, text_b in signed[i + 1:]:
            if split_a != split_b:
                similarity = dedup.jaccard(set_a, set_b)
                if similarity >= config["threshold"]:
                    leaks.append((round(similarity, 3), split_a, text_a[:60], split_b, text_b[:60]))
    assert not leaks


# --------------------------------------------------------------------------- 5. pair and manifest contract


@pytest.mark.parametrize("run_name", ["samples", "starter"])
def test_pair_contract(request, run_name):
    run = request.getfixturevalue(run_name)
    assert run.returncode == 0, run.explain()
    config = run.manifest["config"]
    ids = []
    for split, pair in run.pairs:
        for key in ("id", "group", "messages", "controls", "source", "kind", "augmented"):
            assert key in pair, (split, pair.get("id"), key)
        ids.append(pair["id"])
        assert isinstance(pair["id"], str) and pair["id"] and isinstance(pair["group"], str) and pair["group"]
        messages = pair["messages"]
        assert isinstance(messages, list) and len(messages) >= 2
        assert all(set(m) >= {"role", "content"} and isinstance(m["content"], str) and m["content"].strip()
                   for m in messages), pair["id"]
        assert messages[-1]["role"] == "assistant"
        assert any(m["role"] == "user" for m in messages[:-1])
        assert isinstance(pair["controls"], dict)
        assert isinstance(pair["source"], dict) and pair["source"].get("file")
        assert pair["kind"] in config["pairs"]["kinds"]
        if pair["augmented"]:
            assert split in config["augment"]["apply_to"], f"augmented pair {pair['id']} in {split}"
            assert pair["augmented"]["method"] in config["augment"]["methods"]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1][:5]
    assert config["augment"]["apply_to"] == ["train"]  # the default
    assert any(p["augmented"] for p in run.splits["train"]), "augmentation is on, yet no variant"
    assert not any(p["augmented"] for s in ("val", "test") for p in run.splits[s])


def test_manifest_contract(samples):
    manifest = samples.manifest
    for entry in manifest["inputs"]:
        assert set(entry) >= {"path", "sha256", "format", "stories"}
        assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]) and isinstance(entry["stories"], int)
        path = ROOT / entry["path"]
        if path.is_file():
            assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest(), entry["path"]
    counts = manifest["counts"]
    reasons = Counter(r["reason"] for r in samples.rejects)
    assert counts["rejected"] == dict(reasons)
    assert counts["stories_read"] == 106 and counts["stories_kept"] == len(samples.story_split) == 100
    assert counts["duplicates"] == {"exact": reasons["duplicate_exact"], "near": reasons["duplicate_near"]} \
        == {"exact": 1, "near": 1}
    assert counts["pairs"] == {name: len(samples.splits[name]) for name in SPLITS}
    config = manifest["config"]
    assert config["name"] == "samples" and config["seed"] == 0
    assert config["filters"]["min_words"] == 30 and config["filters"]["max_bad_share"] == 0.6  # samples.yaml
    assert config["dedup"]["threshold"] == 0.5                                             # the default
    written = {p.name for p in samples.out.iterdir()} - {"manifest.json"}
    assert set(manifest["outputs"]) == written
    assert {"train.jsonl", "val.jsonl", "test.jsonl", "rejects.jsonl", "report.md"} <= written
    for name, digest in manifest["outputs"].items():
        assert digest == hashlib.sha256((samples.out / name).read_bytes()).hexdigest(), name


# --------------------------------------------------------------------------- 6. too many bad records


def test_bad_share_exits_1_with_one_error_line(bad_share):
    assert bad_share.returncode == 1, bad_share.explain()
    errors = error_lines(bad_share.stderr)
    assert len(errors) == 1, bad_share.stderr
    assert "rejects.jsonl" in errors[0] and "max_bad_share" in errors[0]
    assert "Traceback" not in bad_share.stderr + bad_share.stdout


def test_bad_share_still_writes_everything(bad_share):
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "manifest.json", "rejects.jsonl"):
        assert (bad_share.out / name).is_file(), name
    assert [(r["line"], r["reason"]) for r in bad_share.rejects] == [(n, "malformed") for n in (2, 3, 4, 5)]
    assert bad_share.manifest["counts"]["records_read"] == 5
    assert bad_share.manifest["counts"]["stories_kept"] == 1
    assert any(p["messages"][-1]["content"] == GOOD_STORY for _, p in bad_share.pairs)


# --------------------------------------------------------------------------- 7. config and input errors


def assert_one_error(proc, *fragments: str) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def test_misspelled_config_key(tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text("dedup:\n  treshold: 0.7\n", encoding="utf-8")
    proc = run_cli("curate", JSONL, "--config", str(config), "--out", str(tmp_path / "out"))
    assert_one_error(proc, f"{config}:2: dedup.treshold: unknown key", "did you mean dedup.threshold")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_missing_input_path(tmp_path):
    missing = tmp_path / "no_such_stories.jsonl"
    proc = run_cli("curate", str(missing), "--out", str(tmp_path / "out"))
    assert_one_error(proc, str(missing))


def test_bad_set_value(tmp_path):
    proc = run_cli("curate", JSONL, "--set", "filters.min_words=lots", "--out", str(tmp_path / "out"))
    assert_one_error(proc, "--set filters.min_words")


# --------------------------------------------------------------------------- 8. the starter corpus


def test_starter_curates_cleanly(starter):
    assert starter.returncode == 0, starter.explain()
    assert (starter.out / "rejects.jsonl").read_bytes() == b""
    counts = starter.manifest["counts"]
    assert counts["rejected"] == {}
    assert counts["duplicates"] == {"exact": 0, "near": 0} and counts["near_duplicate_clusters"] == 0
    genres = Counter()
    for split in SPLITS:
        genres.update(counts["stories_by_genre"][split])
    assert len(genres) == 8 and "(none)" not in genres, genres
    assert all(n >= 15 for n in genres.values()), genres
    assert sum(genres.values()) == counts["stories_kept"] == counts["stories_read"]


# --------------------------------------------------------------------------- 9. help


def test_help():
    proc = run_cli("curate", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--config" in proc.stdout and "--set" in proc.stdout
    assert re.search(r"example", proc.stdout, re.IGNORECASE)
    assert "storyteller curate corpora/starter --out" in proc.stdout
