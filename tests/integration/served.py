"""A real `storyteller serve` on loopback for tests: the tiny model trained for a few steps,
merged, and served by the CPU engine behind the gateway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from storyteller.processes import free_port
from tests.conftest import run_cli
from tests.integration.finetune_data import train_tiny, write_data


def wait_for(url: str, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise AssertionError("server did not become healthy")


def start_server(model_dir: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "storyteller.cli", "serve", "--model", str(model_dir),
         "--port", str(port), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "STORYTELLER_QUIET": "1"}, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_for(url, process)
    return process, url


def stop_server(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)


def tiny_model(root: Path) -> Path:
    """The tiny model, a few steps tuned on starter stories and merged: a model directory."""
    data = write_data(root / "curated", train=16, val=2, test=6)
    run_dir = train_tiny(data, root / "runs" / "tiny", "train.max_steps=3", "train.lr=5e-3")
    out = root / "models" / "tiny"
    result = run_cli("merge", "--run", str(run_dir), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out
