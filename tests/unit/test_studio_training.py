"""The studio's training jobs without a browser: the job folder, uploads kept inside it, the
recipes and their options, the one-training lock, and telling a live runner from a recycled
pid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storyteller.errors import ConfigError, InputError
from storyteller.studio import trainer
from storyteller.studio import training as tr
from tests.conftest import ROOT


@pytest.fixture()
def job(tmp_path):
    return tr.new_job(tr.training_root(tmp_path / "library.sqlite"), "My Fables!")


def test_job_folder_lives_beside_the_library_and_reads_back(tmp_path, job):
    assert job.dir.parent == tmp_path / "training"
    assert job.uploads.is_dir() and job.model_name == "my-fables"
    job.options = {"train.max_steps": 12}
    job.sources = {"library_stars": 4}
    job.save()
    again = tr.open_job(job.dir)
    assert (again.name, again.options, again.sources) == ("My Fables!", {"train.max_steps": 12},
                                                          {"library_stars": 4})
    (job.dir.parent / "stray").mkdir()  # not a job: passed over
    later = tr.new_job(job.dir.parent, "second")
    assert [j.id for j in tr.list_jobs(job.dir.parent)] == sorted([job.id, later.id],
                                                                  reverse=True)
    assert not job.started and trainer.state_of(job) == {"state": "new"}


@pytest.mark.parametrize("name, stored", [
    ("fables.txt", "fables.txt"),
    ("../../etc/passwd.txt", "passwd.txt"),
    ("/abs/path/story.md", "story.md"),
    ("C:\\Users\\me\\tales.jsonl", "tales.jsonl"),
    (".hidden.txt", "hidden.txt"),
    ("we ird$name;.csv", "we ird_name_.csv"),
])
def test_upload_names_are_stripped_to_a_safe_basename(name, stored):
    assert tr.upload_name(name) == stored


@pytest.mark.parametrize("name", ["", "..", ".", "a/..", "dir/", "bad\x00.txt", "...", "$$$"])
def test_upload_names_that_leave_nothing_or_hold_nul_are_refused(name):
    with pytest.raises(InputError):
        tr.upload_name(name)


def test_uploads_stay_in_the_job_folder_within_the_size_limit(job):
    path = tr.save_upload(job, "../../outside.txt", b"Once upon a time.")
    assert path == job.uploads.resolve() / "outside.txt"
    assert not (job.dir.parent / "outside.txt").exists()
    assert not (job.dir.parent.parent / "outside.txt").exists()
    with pytest.raises(InputError, match="over the limit of 1 MB.*max_upload_mb"):
        tr.save_upload(job, "big.txt", b"x" * (1024 * 1024 + 1), max_mb=1)
    assert not (job.uploads / "big.txt").exists()
    with pytest.raises(InputError, match="curate reads no file of this kind"):
        tr.save_upload(job, "tool.exe", b"MZ")
    assert [p.name for p in tr.uploads(job)] == ["outside.txt"]


def test_preview_shows_stories_found_and_curates_own_message_for_a_bad_file(job):
    fables = [json.loads(line) for line in
              (ROOT / "corpora" / "starter" / "fable.jsonl").read_text().splitlines()][:3]
    tr.save_upload(job, "fables.jsonl", "".join(json.dumps(f) + "\n" for f in fables).encode())
    tr.save_upload(job, "broken.docx", b"this is not a zip archive at all")
    tr.save_upload(job, "old.txt", b"")
    readings = {r.name: r for r in tr.preview(tr.uploads(job))}
    assert readings["fables.jsonl"].stories == 3 and readings["fables.jsonl"].format == "jsonl"
    assert readings["fables.jsonl"].rows[0]["title"] == fables[0]["title"]
    broken = readings["broken.docx"]
    assert broken.stories == 0 and broken.set_aside == {"unreadable": 1}
    assert broken.details and "unreadable" in broken.details[0]
    assert readings["old.txt"].set_aside == {"empty": 1}


def test_recipes_offer_qlora_only_with_a_gpu_and_show_their_options():
    assert [r.name for r in tr.recipes(gpu=False)] == ["quickstart", "style"]
    assert [r.name for r in tr.recipes(gpu=True)] == ["quickstart", "style", "qlora"]
    quick = tr.option_defaults(tr.recipe("quickstart"))
    assert quick["train.max_steps"] == 240 and quick["lora.r"] == 16
    style = tr.option_defaults(tr.recipe("style"))
    assert style["train.max_steps"] > quick["train.max_steps"] and style["lora.r"] == 32
    assert tr.option_defaults(tr.recipe("qlora"))["train.lr"] == 2.0e-4
    assert all(o.meaning for o in tr.OPTIONS)
    with pytest.raises(InputError, match="no recipe named"):
        tr.recipe("magic")


def test_settings_carry_the_options_and_the_job_folders(job):
    settings = tr.finetune_settings(tr.recipe("quickstart"),
                                    {"train.max_steps": 8, "eval.every_steps": 4,
                                     "model.base": "tiny-random"}, job.data, job.run, job.name)
    assert settings["train"]["max_steps"] == 8 and settings["model"]["base"] == "tiny-random"
    assert settings["checkpoint"]["every_steps"] == 4  # pause loses at most one check
    assert settings["data"]["dir"] == str(job.data) and settings["out"] == str(job.run)
    tr.check_settings(settings)
    bad = tr.finetune_settings(tr.recipe("quickstart"), {"train.lr": -1.0}, job.data, job.run,
                               job.name)
    with pytest.raises(ConfigError, match="Learning rate"):
        tr.check_settings(bad)
    with pytest.raises(InputError, match="not an option"):
        tr.finetune_settings(tr.recipe("quickstart"), {"seed": 3}, job.data, job.run, "x")


def test_progress_reads_curve_pace_and_eta_from_metrics():
    records = [{"kind": "eval", "step": 0, "val_loss": 3.0},
               *[{"kind": "train", "step": s, "loss": 3.0 - s / 10, "tokens_per_s": 100.0,
                  "seconds": 2.0 * s} for s in range(1, 6)],
               {"kind": "eval", "step": 5, "val_loss": 2.6}]
    progress = tr.progress_of(records, total=10)
    assert progress.step == 5 and progress.val == [(0, 3.0), (5, 2.6)]
    assert progress.train[-1] == (5, 2.5) and progress.tokens_per_s == 100.0
    assert progress.seconds_per_step == pytest.approx(2.0) and progress.eta_s == pytest.approx(10)


def test_a_cut_last_line_is_left_for_the_next_read(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"kind": "train", "step": 1, "loss": 2.0}\n{"kind": "tr')
    assert tr.read_jsonl(path) == [{"kind": "train", "step": 1, "loss": 2.0}]


def test_only_a_verified_merge_is_offered(job):
    assert tr.usable_model(job) is None
    job.model.mkdir()
    (job.model / "model.safetensors").write_bytes(b"half")
    assert tr.usable_model(job) is None
    (job.model / "verification.json").write_text(json.dumps({"passed": False}))
    assert tr.usable_model(job) is None
    (job.model / "verification.json").write_text(json.dumps({"passed": True}))
    assert tr.usable_model(job) == job.model


def test_one_training_at_a_time(tmp_path):
    root = tmp_path / "training"
    fd = trainer.take_lock(root, "fables: train")
    try:
        with pytest.raises(trainer.TrainingBusy, match=r"another training is running "
                                                       r"\(fables: train\)"):
            trainer.take_lock(root, "other: train")
        assert not trainer.lock_free(root)
    finally:
        os.close(fd)
    assert trainer.lock_free(root)


def test_the_lock_dies_with_its_holder(tmp_path):
    """A runner killed outright leaves no stale lock: the kernel lets go of it."""
    root = tmp_path / "training"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from storyteller.studio import trainer; "
        f"trainer.take_lock(Path({str(root)!r}), 'held'); print('ok', flush=True); "
        "time.sleep(60)")], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert holder.stdout.readline().strip() == "ok"
    assert not trainer.lock_free(root)
    holder.kill()
    holder.wait()
    assert trainer.lock_free(root)


def test_a_recycled_pid_is_not_taken_for_the_runner(job):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = trainer.process_start(sleeper.pid)
        assert start is not None
        (job.dir / tr.RUNNER_FILE).write_text(json.dumps({"pid": sleeper.pid, "start": start}))
        assert trainer.runner_alive(job)
        # The same pid with another start time: some other process, not our runner.
        (job.dir / tr.RUNNER_FILE).write_text(json.dumps({"pid": sleeper.pid,
                                                          "start": start - 1}))
        assert not trainer.runner_alive(job)
        assert trainer.pause(job) is False and sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
    assert trainer.process_start(sleeper.pid) is None


def test_a_runner_that_died_shows_as_stopped_with_its_log(job):
    trainer.write_status(job, state="running", action="train", phase="finetune")
    job.log.write_text("step 3/10 loss 2.1\nKilled\n")
    (job.dir / tr.RUNNER_FILE).write_text(json.dumps({"pid": 999999999, "start": 1}))
    state = trainer.state_of(job)
    assert state["state"] == "stopped" and "Resume" in state["message"]
    assert state["log"].endswith("Killed")


def test_runner_pauses_a_stage_and_records_why(job, monkeypatch):
    """The runner hands SIGTERM to its stage once and records a pause; a stage that fails
    leaves its own error line as the message."""
    runner = trainer.Runner(job, "train")
    job.log.write_text("error: data/train.jsonl:3: not JSON (fix the line)\n")
    job.sources = {"curated": str(job.dir)}  # no curate step
    steps = iter([1])
    monkeypatch.setattr(runner, "stage", lambda phase, *args: next(steps))
    assert runner.run() == 1
    status = trainer.read_status(job)
    assert status["state"] == "failed" and "not JSON" in status["message"]

    paused = trainer.Runner(job, "train")
    monkeypatch.setattr(paused, "stage", lambda phase, *args: 130)
    assert paused.run() == 0 and trainer.read_status(job)["state"] == "paused"


def test_the_runner_module_runs_and_refuses_a_busy_folder(job):
    fd = trainer.take_lock(job.dir.parent, "someone else: train")
    try:
        result = subprocess.run([sys.executable, "-m", "storyteller.studio.trainer",
                                 str(job.dir)], capture_output=True, text=True, cwd=ROOT,
                                timeout=60)
    finally:
        os.close(fd)
    assert result.returncode == 1 and "another training is running (someone else: train)" \
        in result.stderr
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "storyteller.studio.trainer", str(job.dir)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 1 and "no stories to train on" in result.stderr
    assert trainer.read_status(job)["state"] == "failed"
    assert time.monotonic() - started < 60


def test_runs_started_outside_the_studio_are_watched_while_they_train(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    runs = tmp_path / "runs"
    live, done, stale = runs / "quickstart", runs / "finished", runs / "abandoned"
    for run in (live, done, stale):
        run.mkdir(parents=True)
        (run / "config.yaml").write_text("train:\n  max_steps: 240\n")
        (run / "metrics.jsonl").write_text("".join(
            json.dumps({"kind": "train", "step": step, "loss": 3.0 - step / 100,
                        "seconds": step * 2.5, "tokens_per_s": 900.0}) + "\n"
            for step in (10, 20, 30)))
    (run_sample := live / "samples.jsonl").write_text(json.dumps(
        {"step": 20, "prompt": "A key in a coat.", "story": "Elena found the key."}) + "\n")
    (done / "final").mkdir()
    (done / "final" / "COMPLETE").write_text("")
    old = time.time() - 3600
    os.utime(stale / "metrics.jsonl", (old, old))
    assert tr.runs_in_progress(runs) == [live]
    progress = tr.run_progress(live)
    assert (progress.step, progress.total) == (30, 240)
    assert progress.seconds_per_step == pytest.approx(2.5)
    assert progress.eta_s == pytest.approx(210 * 2.5)
    assert progress.sample["story"] == "Elena found the key." and run_sample.is_file()
    assert tr.runs_in_progress(tmp_path / "nothing") == []

    monkeypatch.chdir(tmp_path)  # the studio's `runs` setting is relative to where it started
    monkeypatch.setenv("STORYTELLER_LIBRARY", str(tmp_path / "library.sqlite"))
    monkeypatch.setenv("STORYTELLER_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("STORYTELLER_STUDIO_PASSWORD", raising=False)
    at = AppTest.from_file(str(ROOT / "app" / "studio.py"), default_timeout=60)
    at.run()
    at.switch_page("views/train.py").run()
    assert not at.exception, at.exception
    titles = [e.label for e in at.expander]
    assert any("Training now" in t and "quickstart" in t for t in titles), titles
    assert not any("finished" in t or "abandoned" in t for t in titles)
    assert "Elena found the key." in [t.value for t in at.text]
    assert "30 / 240" in [m.value for m in at.metric]
