"""The number of worker processes never changes what curate writes."""

import json

from tests.conftest import SAMPLES, run_cli


def test_one_worker_and_two_workers_write_the_same_dataset(tmp_path):
    outs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        done = run_cli("curate", str(SAMPLES), "--config", "configs/curate/samples.yaml",
                       "--out", str(out), "--set", f"workers={workers}")
        assert done.returncode == 0, done.stderr
        outs[workers] = out
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "rejects.jsonl", "report.md",
                 "genres.png", "lengths.png"):
        assert (outs[1] / name).read_bytes() == (outs[2] / name).read_bytes(), name
    one, two = (json.loads((outs[w] / "manifest.json").read_text()) for w in (1, 2))
    assert one["config"].pop("workers") == 1 and two["config"].pop("workers") == 2
    assert one == two


def test_unknown_format_names_the_option():
    done = run_cli("curate", str(SAMPLES), "--format", "csvv", "--out", "/tmp/never-written")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: --format: unknown format 'csvv' (use one of: auto, jsonl, json, csv, parquet, "
        "folder, text, gutenberg, tinystories, writingprompts, datasets, docx, odt, rtf, epub, "
        "html)"]
