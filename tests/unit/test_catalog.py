"""storyteller.catalog over run and model folders laid out as finetune, merge and evaluate write
them, and `served_models` against a real HTTP endpoint on loopback (and one that is not there)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from storyteller.catalog import (MODEL, RUN, Entry, Served, catalog, headline, mark_served,
                                 scan, served_models)
from storyteller.processes import free_port


def write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def finished_run(root: Path, name: str = "fables", method: str = "lora") -> Path:
    run = root / "runs" / name
    write(run / "config.yaml", yaml.safe_dump({"name": name, "model": {"base": "smollm2-135m",
                                                                       "method": method}}))
    write(run / "run.json", {"name": name, "data": {"dir": "data/fables", "manifest_sha256": "x"}})
    write(run / "summary.json", {"steps": 240, "best_val_loss": 2.9731, "best_step": 80})
    write(run / "final" / "storyteller.json", {"base_model": "smollm2-135m", "method": method,
                                                "data": {"dir": "data/fables"}})
    write(run / "final" / "COMPLETE", "ok\n")
    return run


def unfinished_run(root: Path, name: str = "big") -> Path:
    run = root / "runs" / name
    write(run / "config.yaml", yaml.safe_dump({"model": {"base": "tiny-random", "method": "qlora"}}))
    write(run / "run.json", {"data": {"dir": "data/big"}})
    for step, complete in ((50, True), (100, True), (150, False)):  # 150 killed mid-save
        folder = run / "checkpoints" / f"step-{step:06d}"
        write(folder / "state.json", {"step": step})
        if complete:
            write(folder / "COMPLETE", "ok\n")
    return run


def merged_model(root: Path, name: str = "fables", passed: bool = True) -> Path:
    model = root / "models" / name
    write(model / "storyteller.json", {
        "base_model": "smollm2-135m", "merged": True, "merged_from": str(root / "runs" / "fables"),
        "trained_with": {"method": "lora"}, "data": {"dir": "data/fables"},
        "results": {"steps": 240, "best_val_loss": 2.9731}})
    write(model / "verification.json", {"passed": passed, "checks": []})
    return model


def metrics(ref: str, style: float, ppl: float) -> dict:
    row = lambda value: {"values": {"tuned": {"value": value, "low": value, "high": value, "n": 9},
                                    "base": {"value": 0.0, "low": 0.0, "high": 0.0, "n": 9}}}
    return {"metrics": {"style_pass": row(style), "perplexity": row(ppl)},
            "models": {"tuned": {"ref": ref}, "base": {"ref": "smollm2-135m"}}}


def by_name(entries, kind: str) -> dict[str, Entry]:
    return {e.name: e for e in entries if e.kind == kind}


def test_runs_and_models_with_what_each_was_trained_on(tmp_path):
    finished_run(tmp_path)
    unfinished_run(tmp_path)
    merged_model(tmp_path)
    merged_model(tmp_path, "failed", passed=False)
    (tmp_path / "runs" / "evaluation").mkdir()  # evaluate's default --out: not a run
    (tmp_path / "models" / "notes").mkdir()  # no storyteller.json: not a model
    entries = scan(tmp_path / "runs", tmp_path / "models")
    assert [(e.kind, e.name) for e in entries] == [
        (RUN, "big"), (RUN, "fables"), (MODEL, "fables"), (MODEL, "failed")]
    runs, models = by_name(entries, RUN), by_name(entries, MODEL)
    fables = runs["fables"]
    assert (fables.base_model, fables.data, fables.steps, fables.method, fables.objective) == \
        ("smollm2-135m", "data/fables", 240, "lora", "sft")
    assert fables.complete and fables.best_val_loss == 2.9731 and fables.verified is None
    big = runs["big"]
    # Unfinished: base and method from config.yaml, steps from the newest complete checkpoint.
    assert (big.base_model, big.method, big.steps, big.complete) == ("tiny-random", "qlora", 100,
                                                                    False)
    assert models["fables"].verified is True and models["failed"].verified is False
    assert models["fables"].method == "lora" and models["fables"].steps == 240


def test_headline_scores_come_from_the_newest_evaluation_of_that_model(tmp_path):
    import os

    run = finished_run(tmp_path)
    model = merged_model(tmp_path)
    old = write(run / "evaluation-old" / "metrics.json", metrics(str(run), 0.2, 30.0))
    new = write(run / "evaluation" / "metrics.json", metrics(str(run / "final"), 0.62, 18.25))
    os.utime(old, (1, 1))
    # evaluate's default --out (runs/evaluation) evaluating the merged model
    write(tmp_path / "runs" / "evaluation" / "metrics.json", metrics(str(model), 0.58, 18.5))
    entries = scan(tmp_path / "runs", tmp_path / "models")
    run_entry, model_entry = by_name(entries, RUN)["fables"], by_name(entries, MODEL)["fables"]
    assert (run_entry.style_followed, run_entry.perplexity, run_entry.evaluation) == \
        (0.62, 18.25, str(new))
    assert (model_entry.style_followed, model_entry.perplexity) == (0.58, 18.5)
    assert headline({"metrics": {}}) == {"style_followed": None, "perplexity": None,
                                          "styles_followed": None}


def test_headline_carries_each_house_style_of_the_evaluated_model():
    metrics = {"metrics": {}, "house_styles": {
        "moral": {"tuned": {"value": 0.75}, "base": {"value": 0.1}},
        "refrain": {"tuned": {"value": 0.0}, "base": {"value": 0.0}},
        "log": {"base": {"value": 0.3}}}}  # the tuned model wrote no log story
    assert headline(metrics)["styles_followed"] == {"moral": 0.75, "refrain": 0.0}


def test_files_cut_short_are_listed_with_what_can_be_read(tmp_path):
    run = finished_run(tmp_path)
    (run / "summary.json").write_text('{"steps": 24')  # killed while writing
    entry = scan(tmp_path / "runs", tmp_path / "models")[0]
    assert entry.name == "fables" and entry.steps is None and entry.base_model == "smollm2-135m"
    assert scan(tmp_path / "nothing", tmp_path / "here") == []


def test_served_marks_merged_models_and_adapters_apart(tmp_path):
    finished_run(tmp_path)
    model = merged_model(tmp_path)
    entries = scan(tmp_path / "runs", tmp_path / "models")
    merged = Served("u", (("fables", {"merged_from": str(tmp_path / "runs" / "fables")}),))
    marked = {(e.kind, e.name): e.served for e in mark_served(entries, merged)}
    assert marked == {(RUN, "fables"): False, (MODEL, "fables"): True}
    adapter = Served("u", (("fables", {"base_model": "smollm2-135m"}),))
    marked = {(e.kind, e.name): e.served for e in mark_served(entries, adapter)}
    assert marked == {(RUN, "fables"): True, (MODEL, "fables"): False}
    # A server that says nothing about its models (vLLM started by hand) names them by path.
    by_path = mark_served(entries, Served("u", ((str(model), {}),)))
    assert [(e.kind, e.served_as) for e in by_path] == [(RUN, None), (MODEL, str(model))]
    assert not any(e.served for e in mark_served(entries, Served("u", (("other", {}),))))


@pytest.fixture
def endpoint():
    """A real HTTP server on loopback answering /v1/models as `storyteller serve` does."""
    body = json.dumps({"object": "list", "data": [
        {"id": "fables", "object": "model", "owned_by": "storyteller", "max_model_len": 2048,
         "storyteller": {"base_model": "smollm2-135m", "merged_from": "runs/fables"}}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            found = self.path == "/v1/models"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            data = body if found else b'{"error": {"message": "not found"}}'
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_served_models_asks_the_endpoint(endpoint, tmp_path):
    served = served_models(endpoint)
    assert served.problem == "" and served.models == (
        ("fables", {"base_model": "smollm2-135m", "merged_from": "runs/fables"}),)
    assert served_models(endpoint + "/v1").models == served.models  # either spelling of the URL


def test_an_unreachable_endpoint_means_nothing_is_served(tmp_path):
    merged_model(tmp_path)
    url = f"http://127.0.0.1:{free_port()}"
    entries, served = catalog(tmp_path / "runs", tmp_path / "models", url)
    assert served is not None and served.models == () and "cannot reach" in served.problem
    assert [e.served for e in entries] == [False]
    entries, served = catalog(tmp_path / "runs", tmp_path / "models", None)
    assert served is None and [e.name for e in entries] == ["fables"]
