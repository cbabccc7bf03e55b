"""The runner of a studio training job: `python -m storyteller.studio.trainer JOB_DIR`.

It runs the pipeline's own commands one after another, each a child process writing to the
job's runner.log: `curate` (unless the job trains on a curated folder) and `finetune --resume`
for the action `train`, `evaluate` for `evaluate`, `merge` for `use`. It is started detached
(its own session, its parent gone at once), so it outlives a browser reload and a studio
restart; the studio finds it again from runner.json (pid and the process's start time, so a
recycled pid is not taken for it).

One job runs at a time in a training folder: the runner holds an exclusive `flock` on
`training/.lock` for its whole life (the kernel lets go when it dies, however it dies). The
studio takes that lock before it starts a runner and hands it over, so two Start clicks
cannot both win.

Pause is SIGTERM to the runner, which hands it to the stage it runs: finetune saves a checkpoint and exits
(docs/finetune.md), the runner records `paused`, and Resume runs `finetune --resume`."""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from storyteller.errors import InputError
from storyteller.files import write_atomic
from storyteller.processes import die_with_parent
from storyteller.studio.training import (LOG_FILE, ROOT, RUNNER_FILE, STATUS_FILE, Job,
                                         error_lines, log_tail, open_job, source_paths,
                                         usable_model)

ACTIONS = ("train", "evaluate", "use")
LOCK_FILE = ".lock"
PAUSED_CODES = (130, -signal.SIGTERM, -signal.SIGINT)


class TrainingBusy(InputError):
    """Another job holds the training folder's lock."""


# ------------------------------------------------------------------------------ processes
def process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks after boot, /proc/PID/stat field 22); None if
    there is no such process or it has exited and awaits its parent (a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def runner_record(job: Job) -> dict | None:
    try:
        return json.loads((job.dir / RUNNER_FILE).read_text())
    except (OSError, ValueError):
        return None


def runner_alive(job: Job) -> bool:
    """The job's runner is running now: its pid exists and started when the runner did."""
    record = runner_record(job)
    return bool(record) and process_start(int(record["pid"])) == record.get("start")


def read_status(job: Job) -> dict:
    try:
        return json.loads((job.dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {}


def write_status(job: Job, **fields) -> None:
    status = {**read_status(job), **fields, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_atomic(job.dir / STATUS_FILE, (json.dumps(status, indent=2) + "\n").encode())


def state_of(job: Job) -> dict:
    """status.json as the page shows it, with `state` one of: new, running, paused,
    stopped (crashed or killed: resumable), failed (a stage said why), done."""
    status = read_status(job)
    if not status:
        return {"state": "new"}
    if status.get("state") in ("running", "starting", "pausing") and not runner_alive(job):
        return {**status, "state": "stopped", "message": "the runner stopped unexpectedly "
                "(killed, or the machine restarted); Resume goes on from the last checkpoint",
                "log": log_tail(job)}
    if status.get("state") == "failed":
        return {**status, "log": log_tail(job)}
    return status


# ------------------------------------------------------------------------------ the lock
def take_lock(root: Path, holder: str) -> int:
    """An fd holding the training folder's exclusive lock, with `holder` written in it; a
    TrainingBusy naming who holds it otherwise."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise TrainingBusy.at(str(root), f"another training is running ({lock_holder(root)})",
                              "wait for it to finish, or pause it first") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, holder.encode(), 0)
    return fd


def lock_holder(root: Path) -> str:
    try:
        return (root / LOCK_FILE).read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def lock_free(root: Path) -> bool:
    try:
        os.close(take_lock(root, lock_holder(root)))
        return True
    except TrainingBusy:
        return False


# ------------------------------------------------------------------------------ start, pause
def launch(job: Job, action: str, python: str = sys.executable, timeout: float = 30) -> int:
    """Start the job's runner for `action`, detached; its pid. TrainingBusy if another job
    runs."""
    if action not in ACTIONS:
        raise InputError.at("action", f"{action!r} is not an action", f"use {', '.join(ACTIONS)}")
    fd = take_lock(job.dir.parent, f"{job.name or job.id}: {action}")
    try:
        write_status(job, state="starting", action=action, message="", phase="")
        with open(job.log, "a", encoding="utf-8") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {action} ===\n")
            log.flush()
            starter = subprocess.Popen(
                [python, "-m", "storyteller.studio.trainer", str(job.dir), "--action", action,
                 "--lock-fd", str(fd), "--detach"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                pass_fds=(fd,), start_new_session=True)
        code = starter.wait(timeout=timeout)
        record = runner_record(job)
        if code != 0 or record is None:
            write_status(job, state="failed", message="the runner did not start")
            raise InputError.at(str(job.log), "the training runner did not start",
                                "see its log:\n" + log_tail(job, 10))
        return int(record["pid"])
    finally:
        os.close(fd)  # the runner holds its own copy of the lock now


def pause(job: Job) -> bool:
    """Ask the job's runner to stop at a checkpoint: SIGTERM to the runner, which hands it to
    the stage it runs (once: a second one could cut finetune's checkpoint short). False when
    no runner of this job is alive."""
    record = runner_record(job)
    if not record or process_start(int(record["pid"])) != record.get("start"):
        return False
    write_status(job, state="pausing")
    try:
        os.kill(int(record["pid"]), signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


# ------------------------------------------------------------------------------ the runner
class Runner:
    def __init__(self, job: Job, action: str):
        self.job, self.action = job, action
        self.stopping = False
        self.child: subprocess.Popen | None = None

    def on_term(self, signum, frame) -> None:
        # Handed to the stage once (finetune saves a checkpoint and exits); the runner then
        # records the pause when the stage has stopped.
        if self.stopping:
            return
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            try:
                self.child.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def stage(self, phase: str, *args: str) -> int:
        write_status(self.job, state="running", phase=phase, action=self.action)
        command = [sys.executable, "-m", "storyteller.cli", *args]
        print(f"--- {phase}: {' '.join(command[1:])}", flush=True)
        env = {k: v for k, v in os.environ.items() if k != "STORYTELLER_QUIET"}
        self.child = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                      preexec_fn=die_with_parent)
        if self.stopping:  # paused while the stage was being started
            self.child.send_signal(signal.SIGTERM)
        code = self.child.wait()
        self.child = None
        return code

    def run(self) -> int:
        job = self.job
        steps = {"train": self.train_steps, "evaluate": self.evaluate_steps,
                 "use": self.use_steps}[self.action]()
        for phase, args in steps:
            if self.stopping:
                break
            code = self.stage(phase, *args)
            if self.stopping or code in PAUSED_CODES:
                write_status(job, state="paused", phase=phase, code=code,
                             message=f"paused during {phase}")
                return 0
            if code != 0:
                errors = error_lines(log_tail(job, 60))
                write_status(job, state="failed", phase=phase, code=code,
                             message="; ".join(errors[-3:]) or f"{phase} exited with code {code}")
                return 1
        if self.stopping:
            write_status(job, state="paused", message="paused")
            return 0
        if self.action == "use" and usable_model(job) is None:
            write_status(job, state="failed", phase="merge", message="the merged model did not "
                         "pass verification; nothing is offered")
            return 1
        write_status(job, state="done", phase=self.action, code=0, message="")
        return 0

    def train_steps(self) -> list[tuple[str, list[str]]]:
        job = self.job
        steps = []
        if not job.sources.get("curated") and not (job.data / "manifest.json").is_file():
            paths = [str(p) for p in source_paths(job)]
            if not paths:
                raise InputError.at(str(job.uploads), "no stories to train on",
                                    "upload files or choose library stories")
            config = ROOT / "configs" / "curate" / "default.yaml"
            steps.append(("curate", ["curate", *paths, "--out", str(job.data),
                                     *(["--config", str(config)] if config.is_file() else [])]))
        steps.append(("finetune", ["finetune", "--config", str(job.config), "--resume"]))
        return steps

    def evaluate_steps(self) -> list[tuple[str, list[str]]]:
        job, options = self.job, self.job.evaluation
        config = ROOT / "configs" / "evaluate" / "default.yaml"
        return [("evaluate", ["evaluate", "--model", str(job.run), "--data", str(job.data),
                              "--out", str(job.evaluation_dir),
                              "--limit", str(int(options.get("prompts", 6))), "--samples", "1",
                              *(["--config", str(config)] if config.is_file() else []),
                              "--set", f"generation.max_tokens={int(options.get('max_tokens', 400))}",
                              "--set", "metrics.bootstrap_resamples=1000"])]

    def use_steps(self) -> list[tuple[str, list[str]]]:
        if usable_model(self.job) is not None:
            return []
        return [("merge", ["merge", "--run", str(self.job.run), "--out", str(self.job.model),
                           "--force"])]


def detach(job: Job) -> None:
    """Fork: the parent records the child as the runner and exits; the child, in a session of
    its own and no longer anyone's child but init's, goes on."""
    pid = os.fork()
    if pid:
        start = None
        for _ in range(100):
            start = process_start(pid)
            if start is not None:
                break
            time.sleep(0.01)
        record = {"pid": pid, "start": start, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_atomic(job.dir / RUNNER_FILE, (json.dumps(record) + "\n").encode())
        os._exit(0)
    os.setsid()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m storyteller.studio.trainer",
                                     description="Run a studio training job's next action.")
    parser.add_argument("job_dir", type=Path)
    parser.add_argument("--action", choices=ACTIONS, default="train")
    parser.add_argument("--lock-fd", type=int, default=None,
                        help="an fd that already holds the training lock (the studio's)")
    parser.add_argument("--detach", action="store_true", help="fork into the background")
    args = parser.parse_args(argv)
    job = open_job(args.job_dir.resolve())
    try:
        fd = args.lock_fd if args.lock_fd is not None else \
            take_lock(job.dir.parent, f"{job.name or job.id}: {args.action}")
    except TrainingBusy as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.detach:
        detach(job)
    else:
        record = {"pid": os.getpid(), "start": process_start(os.getpid()),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_atomic(job.dir / RUNNER_FILE, (json.dumps(record) + "\n").encode())
    runner = Runner(job, args.action)
    signal.signal(signal.SIGTERM, runner.on_term)
    signal.signal(signal.SIGINT, runner.on_term)
    try:
        return runner.run()
    except InputError as error:
        write_status(job, state="failed", message="; ".join(str(p) for p in error.problems))
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 — recorded for the page, then re-raised to the log
        write_status(job, state="failed", message=f"{type(error).__name__}: {error}")
        raise
    finally:
        os.close(fd)


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["LOG_FILE", "launch", "pause", "state_of", "runner_alive", "take_lock"]
