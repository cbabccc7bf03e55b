"""curate at scale: the staged run gives the same bytes however it is divided and whoever runs
it (this process, datatrove), resumes from its finished tasks, shards large splits, and says
where and why when a worker dies. The real command in a subprocess on the shipped samples."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES, run_cli

pytestmark = pytest.mark.slow


def digests(out: Path) -> dict[str, str]:
    """SHA-256 of every file of a curated directory (the work folder aside)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.iterdir()) if p.is_file()}


def same_outputs(out: Path, baseline: Path) -> bool:
    """Every file identical; the manifest too, but for `workers` (recorded, as ever, though it
    changes nothing else)."""
    ours, theirs = digests(out), digests(baseline)
    manifests = [json.loads((d / "manifest.json").read_text()) for d in (out, baseline)]
    for manifest in manifests:
        manifest["config"].pop("workers")
    return ours.pop("manifest.json") is not None and theirs.pop("manifest.json") is not None \
        and ours == theirs and manifests[0] == manifests[1]


def curate(out: Path, *args: str) -> subprocess.CompletedProcess:
    result = run_cli("curate", str(SAMPLES), "--out", str(out), *args)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scale") / "baseline"
    curate(out)
    return out


def test_the_work_folder_is_removed_after_a_run(baseline):
    assert not (baseline / ".curate-work").exists()
    assert {"train.jsonl", "val.jsonl", "test.jsonl", "manifest.json"} <= set(digests(baseline))


def test_the_manifest_records_no_execution_setting(baseline):
    manifest = json.loads((baseline / "manifest.json").read_text())
    assert "resources" not in manifest["config"]


@pytest.mark.parametrize("settings", [
    ["--set", "resources.tasks=1"],                      # one read task for all 17 inputs
    ["--set", "resources.tasks=5", "--set", "workers=1"],
    ["--executor", "datatrove", "--set", "resources.tasks=3"],
    # an fsspec URL that is not a local folder: the stages' non-local reads and writes
    ["--set", "resources.work_dir=memory://curate-work", "--set", "workers=1"],
], ids=["one-task", "five-tasks-one-worker", "datatrove", "fsspec-memory"])
def test_same_bytes_however_the_run_is_divided_and_run(baseline, tmp_path, settings):
    out = tmp_path / "out"
    curate(out, *settings)
    if "workers=1" in settings:
        assert same_outputs(out, baseline)
    else:
        assert digests(out) == digests(baseline)


def test_resume_reruns_only_the_unfinished_tasks(baseline, tmp_path):
    out = tmp_path / "out"
    curate(out, "--set", "resources.keep_work=true")
    work = out / ".curate-work"
    # As if the run had been killed during the pairs stage: two of its tasks and everything
    # after them never finished.
    for marker in [work / "pairs" / "00003.done", work / "pairs" / "00010.done",
                   work / "write" / "00000.done"]:
        marker.unlink()
    for name in ("train.jsonl", "manifest.json"):
        (out / name).unlink()
    kept = work / "read" / "00000" / "stories.pkl"
    before = kept.stat().st_mtime_ns
    redone = work / "pairs" / "00003" / "train.jsonl"
    curate(out, "--resume", "--set", "resources.keep_work=true")
    assert digests(out) == digests(baseline)
    assert kept.stat().st_mtime_ns == before  # a finished task was not run again
    assert (work / "pairs" / "00003.done").exists() and redone.exists()


def test_resume_refuses_changed_settings(tmp_path):
    out = tmp_path / "out"
    curate(out, "--set", "resources.keep_work=true")
    result = run_cli("curate", str(SAMPLES), "--out", str(out), "--resume", "--seed", "3")
    assert result.returncode != 0
    assert "--resume" in result.stderr and "config changed" in result.stderr


def test_without_resume_a_leftover_run_is_started_over(baseline, tmp_path):
    out = tmp_path / "out"
    curate(out, "--set", "resources.keep_work=true")
    (out / ".curate-work" / "pairs" / "00001.done").unlink()
    curate(out)
    assert digests(out) == digests(baseline)
    assert not (out / ".curate-work").exists()


def test_a_killed_run_resumes_to_the_same_bytes(baseline, tmp_path):
    """SIGKILL in the middle of the run (once some tasks are done), then --resume."""
    out = tmp_path / "out"
    command = [sys.executable, "-m", "storyteller.cli", "curate", str(SAMPLES), "--out", str(out)]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "STORYTELLER_QUIET": "1"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if len(list((out / ".curate-work" / "read").glob("*.done"))) >= 3:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    curate(out, "--resume")
    assert digests(out) == digests(baseline)


def test_large_splits_are_written_as_shards_datasets_reads(baseline, tmp_path):
    out = tmp_path / "out"
    curate(out, "--set", "resources.shard_mb=0.2")
    shards = sorted(out.glob("train-*-of-*.jsonl"))
    assert len(shards) >= 3 and not (out / "train.jsonl").exists()
    assert shards[0].name == f"train-00000-of-{len(shards):05d}.jsonl"
    # The shards are the one file cut at line ends, in order.
    assert b"".join(s.read_bytes() for s in shards) == (baseline / "train.jsonl").read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["outputs"]) >= {s.name for s in shards}
    import datasets

    loaded = datasets.load_dataset("json", data_files={"train": str(out / "train-*.jsonl")},
                                   split="train")
    assert loaded.num_rows == manifest["counts"]["pairs"]["train"]


def test_a_rerun_with_fewer_shards_leaves_none_of_the_old_ones(tmp_path):
    out = tmp_path / "out"
    curate(out, "--set", "resources.shard_mb=0.2")
    curate(out)
    assert not list(out.glob("train-*-of-*.jsonl")) and (out / "train.jsonl").exists()


def test_a_killed_worker_is_reported_and_resume_finishes(baseline, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "storyteller.cli", "curate", str(SAMPLES), "--out", str(out),
               "--set", "workers=2"]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "STORYTELLER_QUIET": "1"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        found = children.read_text().split() if children.exists() else []
        if found:
            os.kill(int(found[0]), signal.SIGKILL)
            break
        time.sleep(0.01)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1, stderr
    assert "worker process died" in stderr and "--resume" in stderr
    curate(out, "--resume", "--set", "workers=2")
    assert same_outputs(out, baseline)


def test_a_full_disk_is_reported_and_resume_finishes(baseline, tmp_path, monkeypatch):
    """ENOSPC while a task finishes: one clear error naming the way on, then --resume."""
    import errno

    from storyteller.config import load_config
    from storyteller.curate.config import CurateConfig
    from storyteller.curate.run import run
    from storyteller.curate.work import Work
    from storyteller.errors import StorytellerError

    monkeypatch.setenv("STORYTELLER_QUIET", "1")
    config = load_config(CurateConfig, None, ["workers=1"], {})
    marked = Work.mark_done
    calls = [0]

    def filling(self, stage, rank, summary=None):
        calls[0] += 1
        if calls[0] == 20:  # in the middle of the tag stage
            raise OSError(errno.ENOSPC, "No space left on device", self.path(stage, "x"))
        return marked(self, stage, rank, summary)

    monkeypatch.setattr(Work, "mark_done", filling)
    out = tmp_path / "out"
    with pytest.raises(StorytellerError) as raised:
        run([str(SAMPLES)], out, config)
    message = str(raised.value.problems[0])
    assert "disk is full" in message and "--resume" in message
    monkeypatch.setattr(Work, "mark_done", marked)
    run([str(SAMPLES)], out, config, resume=True)
    assert same_outputs(out, baseline)
