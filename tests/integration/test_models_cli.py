"""`storyteller models` against a real `storyteller serve` of the tiny model: the run it was
trained in and the merged model, with the merged one served and verified."""

from __future__ import annotations

import json

import pytest

from storyteller.processes import free_port
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def test_models_lists_the_run_and_the_served_merged_model(tiny_endpoint):
    url, name, model_dir = tiny_endpoint
    root = model_dir.parent.parent  # tiny_model(root): root/runs/tiny and root/models/tiny
    args = ["models", "--runs", str(root / "runs"), "--models", str(root / "models")]
    done = run_cli(*args, "--endpoint", url, "--json")
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    assert listing["endpoint"] == {"url": url, "reachable": True, "problem": "",
                                   "models": [name]}
    entries = {(e["kind"], e["name"]): e for e in listing["entries"]}
    run, model = entries[("run", "tiny")], entries[("model", name)]
    assert run["base_model"] == model["base_model"] == "tiny-random"
    assert run["method"] == model["method"] == "lora" and run["steps"] == model["steps"] == 3
    assert run["complete"] and model["verified"] is True
    assert model["served"] and model["served_as"] == name and not run["served"]
    assert run["data"] == model["data"] and run["data"].endswith("curated")

    table = run_cli(*args, "--endpoint", url)
    assert table.returncode == 0, table.stderr
    assert "tiny (run)" in table.stdout and "verified" in table.stdout
    assert f"yes, as {name}" in table.stdout

    # Nothing listening: nothing served, said why, and still exit 0.
    nowhere = f"http://127.0.0.1:{free_port()}"
    down = run_cli(*args, "--endpoint", nowhere, "--json")
    assert down.returncode == 0, down.stderr
    gone = json.loads(down.stdout)
    assert gone["endpoint"]["reachable"] is False
    assert gone["endpoint"]["problem"] == "cannot reach the endpoint"
    assert not any(e["served"] for e in gone["entries"])
    down = run_cli(*args, "--endpoint", nowhere)
    assert down.returncode == 0 and "tiny (run)" in down.stdout
    assert f"endpoint {nowhere}: cannot reach the endpoint" in down.stderr


def test_models_with_nothing_there_says_where_it_looked(tmp_path):
    done = run_cli("models", "--runs", str(tmp_path / "runs"), "--models",
                   str(tmp_path / "models"), "--endpoint", "")
    assert done.returncode == 0, done.stderr
    assert f"no runs in {tmp_path / 'runs'}/" in done.stdout and "storyteller merge" in done.stdout


def test_models_use_and_unload_change_what_the_endpoint_serves(tiny_endpoint, tmp_path):
    url, name, model_dir = tiny_endpoint
    used = run_cli("models", "use", str(model_dir), "--name", "second-copy", "--endpoint", url)
    assert used.returncode == 0, used.stderr
    assert "serving second-copy" in used.stdout
    try:
        listing = json.loads(run_cli("models", "--runs", str(tmp_path), "--models",
                                     str(tmp_path), "--endpoint", url, "--json").stdout)
        assert listing["endpoint"]["models"][0] == name  # not --default: the first stays first
        assert "second-copy" in listing["endpoint"]["models"]
    finally:
        gone = run_cli("models", "unload", "second-copy", "--endpoint", url)
    assert gone.returncode == 0, gone.stderr
    assert "no longer serving second-copy" in gone.stdout
    listing = json.loads(run_cli("models", "--runs", str(tmp_path), "--models", str(tmp_path),
                                 "--endpoint", url, "--json").stdout)
    assert listing["endpoint"]["models"] == [name]

    missing = run_cli("models", "use", str(tmp_path / "nothing"), "--endpoint", url)
    assert missing.returncode == 1 and "nothing" in missing.stderr
    unknown = run_cli("models", "unload", "never-served", "--endpoint", url)
    assert unknown.returncode == 1 and "never-served" in unknown.stderr
