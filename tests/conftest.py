"""Shared fixtures: paths to the project's own sample files and to the real corpora beside the
checkout (tests that need those skip with a reason where the folder is absent)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "corpora" / "samples"
STARTER = ROOT / "corpora" / "starter"
SHARED_CORPORA = ROOT.parent / "shared" / "corpora"

os.environ.setdefault("STORYTELLER_QUIET", "1")


def shared_corpus(relative: str) -> Path:
    path = SHARED_CORPORA / relative
    if not path.exists():
        pytest.skip(f"real corpus file {relative} is not beside this checkout "
                    f"({SHARED_CORPORA} absent), as on a user's machine")
    return path


def run_cli(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real `storyteller` command in a subprocess."""
    full_env = {**os.environ, "STORYTELLER_QUIET": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "storyteller.cli", *args], cwd=cwd,
                          capture_output=True, text=True, env=full_env, timeout=600)


def pytest_collection_modifyitems(config, items):
    """`gpu`-marked tests need CUDA: elsewhere they are skipped with the reason (run them on a GPU
    machine with `pytest -m gpu`)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run `pytest -m gpu` on one)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_endpoint(tmp_path_factory):
    """(url, model name, model dir) of a real `storyteller serve` of the tiny tuned model, shared
    by the studio's tests in one test process."""
    from tests.integration.served import start_server, stop_server, tiny_model

    model_dir = tiny_model(tmp_path_factory.mktemp("served"))
    process, url = start_server(model_dir)
    yield url, model_dir.name, model_dir
    stop_server(process)
