"""`storyteller curate --executor datatrove` on Slurm, with a stand-in scheduler: `sbatch` keeps
each job script datatrove submits, `srun` runs its command and `scontrol` names this machine as
the node, and the test then runs every job
array's tasks in submission order, as Slurm would after each dependency. What is exercised is
all ours and datatrove's: the executors, their dependencies, the pickled steps, the launch
scripts, and the outputs, which must be those of a local run."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES, run_cli

pytestmark = pytest.mark.slow

SBATCH = """#!/bin/sh
# Keeps the script and how it was submitted; answers as sbatch does.
jobs="$FAKE_SLURM_JOBS"
n=$(ls "$jobs" | grep -c '\\.sh$')
for last; do :; done
cp "$last" "$jobs/$n.sh"
echo "$@" > "$jobs/$n.args"
echo "Submitted batch job $((1000 + n))"
"""

SRUN = """#!/bin/sh
# Drops srun's own options and runs the command on this machine.
while [ "${1#-}" != "$1" ]; do
  case "$1" in -n|-N) shift 2 ;; *) shift ;; esac
done
exec "$@"
"""

SCONTROL = """#!/bin/sh
# `scontrol show hostnames LIST`: this machine is the one node.
echo localhost
"""


def digests(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.iterdir()) if p.is_file()}


def run_jobs(jobs: Path, env: dict[str, str]) -> int:
    """Run every submitted job's array tasks, in submission order; how many tasks ran."""
    ran = 0
    for script in sorted(jobs.glob("*.sh"), key=lambda p: int(p.stem)):
        text = script.read_text()
        args = (jobs / f"{script.stem}.args").read_text()
        offset = re.search(r"RUN_OFFSET=(\d+)", args)
        array = re.search(r"#SBATCH --array=0-(\d+)", text)
        for index in range(int(array.group(1)) + 1 if array else 1):
            result = subprocess.run(["bash", str(script)], env={
                **env, "SLURM_ARRAY_TASK_ID": str(index), "SLURM_ARRAY_JOB_ID": script.stem,
                "SLURM_JOB_ID": script.stem, "SLURM_NODELIST": "localhost", "SLURM_NODEID": "0",
                "SLURM_NNODES": "1", "RUN_OFFSET": offset.group(1) if offset else "0"},
                capture_output=True, text=True, timeout=300)
            assert result.returncode == 0, f"{script.name}[{index}]: {result.stderr[-3000:]}"
            ran += 1
    return ran


def test_slurm_submission_runs_to_the_local_runs_bytes(tmp_path):
    bin_dir, jobs = tmp_path / "bin", tmp_path / "jobs"
    bin_dir.mkdir()
    jobs.mkdir()
    for name, body in (("sbatch", SBATCH), ("srun", SRUN), ("scontrol", SCONTROL)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "STORYTELLER_QUIET": "1", "FAKE_SLURM_JOBS": str(jobs),
           "PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}"
                   f"{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    local, slurm = tmp_path / "local", tmp_path / "slurm"
    assert run_cli("curate", str(SAMPLES), "--out", str(local)).returncode == 0
    settings = ["--executor", "datatrove", "--set", "resources.slurm_partition=cpu",
                "--set", "resources.tasks=3", "--set", f"resources.work_dir={tmp_path / 'work'}"]
    submitted = run_cli("curate", str(SAMPLES), "--out", str(slurm), *settings, env=env)
    assert submitted.returncode == 0, submitted.stderr
    assert "submitted" in submitted.stderr and "--resume" in submitted.stderr
    scripts = sorted(jobs.glob("*.sh"), key=lambda p: int(p.stem))
    assert any("--partition=cpu" in s.read_text() for s in scripts)
    # Each stage after the first waits for the one before.
    assert sum("--dependency=afterok:" in (jobs / f"{s.stem}.args").read_text()
               for s in scripts) >= 5
    assert not slurm.exists() or not (slurm / "manifest.json").exists()
    ran = run_jobs(jobs, env)
    assert ran >= 3 + 1 + 3 + 1 + 3 + 1
    assert digests(slurm) == digests(local)
