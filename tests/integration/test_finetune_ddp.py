"""DDP for real: two CPU processes (gloo) train the same steps as one process with twice the
batch. They are started by torchrun, the launcher `accelerate launch` uses for multi-GPU runs
(its multi-CPU mode needs MPI); the Accelerator in the trainer picks the processes up the same way."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from storyteller.processes import free_port
from tests.conftest import ROOT
from tests.integration.finetune_data import write_data
from tests.integration.test_finetune import QUICKSTART, TINY, adapter, config, max_difference

pytestmark = pytest.mark.slow

COMMON = ["train.max_steps=3", "eval.every_steps=0", "checkpoint.every_steps=0",
          "checkpoint.keep_best=false", "log.plots=false", "data.max_length=256",
          "train.max_grad_norm=0",
          # fp32: the sum over two processes equals the double batch only up to bf16 rounding
          "model.precision=fp32"]


def test_two_process_ddp_equals_one_process_with_double_batch(tmp_path):
    from storyteller.finetune.run import run

    data = write_data(tmp_path / "data")
    out = tmp_path / "ddp"
    sets = [*TINY, *COMMON, "train.batch_size=1"]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_port", str(free_port()), "-m", "storyteller.cli", "finetune",
               "--config", str(QUICKSTART),
               "--data", str(data), "--out", str(out), *[a for s in sets for a in ("--set", s)]]
    env = {**os.environ, "STORYTELLER_QUIET": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["processes"] == 2

    single = run(config(data, tmp_path / "single", *COMMON, "train.batch_size=2"))
    losses = lambda d: [json.loads(line)["loss"] for line in (d / "metrics.jsonl").read_text().splitlines()
                        if json.loads(line)["kind"] == "train"]
    assert losses(out) == pytest.approx(losses(single.run_dir), rel=1e-5)
    assert max_difference(adapter(out), adapter(single.run_dir)) <= 1e-5
