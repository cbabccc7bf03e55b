"""A real `storyteller serve` on loopback for tests: the tiny model trained for a few steps,
merged, and served by the CPU engine behind the gateway."""

from __future__ import annotations

import sys
from pathlib import Path

from storyteller.errors import InputError
from storyteller.processes import Process, free_port
from tests.conftest import run_cli
from tests.integration.finetune_data import train_tiny, write_data

# Enough lines to hold a server's whole account of a failure: the engine's last words
# follow the line that says it exited.
KEEP_LINES = 200


def wait_for(url: str, process: Process, timeout: float = 240, health: str = "/health") -> None:
    """Until `url` answers on its `health` path; a process that exits or never answers (it is
    then stopped) fails the test with its last output."""
    try:
        process.wait_healthy(f"{url}{health}", timeout)
    except InputError as failure:
        # What went wrong (exit code, or the time waited), then every line kept, not only the
        # last few the error quotes.
        what = str(failure).splitlines()[0]
        raise AssertionError(f"{what}\n{process.output()}") from None


def start_server(model_dir: Path, *extra: str) -> tuple[Process, str]:
    port = free_port()
    process = Process([sys.executable, "-m", "storyteller.cli", "serve", "--model",
                       str(model_dir), "--port", str(port), *extra], "storyteller serve",
                      env={"STORYTELLER_QUIET": "1"}, keep=KEEP_LINES)
    url = f"http://127.0.0.1:{port}"
    wait_for(url, process)
    return process, url


def start_studio(endpoint: str, library: Path) -> tuple[Process, str]:
    """A real `storyteller app` on a free loopback port against `endpoint`, answering."""
    port = free_port()
    process = Process([sys.executable, "-m", "storyteller.cli", "app", "--endpoint", endpoint,
                       "--library", str(library), "--port", str(port)], "storyteller app",
                      env={"STORYTELLER_QUIET": "1"})
    address = f"http://127.0.0.1:{port}"
    wait_for(address, process, timeout=90, health="/_stcore/health")
    return process, address


def stop_server(process: Process) -> int:
    """TERM to its process group, as a supervisor stops it (KILL a minute later): its exit
    code."""
    return process.stop(grace=60)


def tiny_model(root: Path) -> Path:
    """The tiny model, a few steps tuned on starter stories and merged: a model directory."""
    data = write_data(root / "curated", train=16, val=2, test=6)
    run_dir = train_tiny(data, root / "runs" / "tiny", "train.max_steps=3", "train.lr=5e-3")
    out = root / "models" / "tiny"
    result = run_cli("merge", "--run", str(run_dir), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out
