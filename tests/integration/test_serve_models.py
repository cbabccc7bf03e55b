"""Several models by name on one endpoint, changed while it runs: a real `storyteller serve`
started on the embedded base model by name, a merged tiny model loaded, replaced and unloaded
through the admin routes (storyteller.client.load_model / unload_model), with streams running
on the engines being switched: each finishes or ends with a clear error, never hangs."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from storyteller.client import (BadRequest, Completion, EndpointBusy, ModelNotFound, StoryClient,
                                Unauthorized, load_model, unload_model)
from storyteller.sampling import Sampling
from tests.integration.served import start_server, stop_server, tiny_model

pytestmark = pytest.mark.slow

KEY = "models-key"
BASE = "tiny-random"


@pytest.fixture(scope="module")
def merged(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("switch"))


@pytest.fixture(scope="module")
def server():
    process, url = start_server(Path(BASE), "--api-key", KEY)
    yield url, process
    stop_server(process)


def call(url: str, method: str, path: str, body=None, key: str | None = KEY) -> tuple[int, dict]:
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=300) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class Stream(threading.Thread):
    """One streamed story in a thread: its pieces, how it ended (a Completion, or the error)."""

    def __init__(self, url: str, model: str, max_tokens: int = 1500):
        super().__init__(daemon=True)
        self.client = StoryClient(url, api_key=KEY, max_retries=0, timeout=60)
        self.model, self.max_tokens = model, max_tokens
        self.pieces: list[str] = []
        self.end: Completion | Exception | None = None
        self.start()

    def run(self) -> None:
        try:
            for piece in self.client.stream(self.model, [{"role": "user", "content": "Go on."}],
                                            Sampling(temperature=0, max_tokens=self.max_tokens)):
                if isinstance(piece, Completion):
                    self.end = piece
                else:
                    self.pieces.append(piece)
        except Exception as error:  # noqa: BLE001 — what the test inspects
            self.end = error

    def running(self, timeout: float = 60) -> None:
        """Until the first pieces have arrived."""
        deadline = time.monotonic() + timeout
        while len(self.pieces) < 3 and self.end is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.pieces) >= 3 and self.end is None, self.end

    def finished(self, timeout: float = 120):
        self.join(timeout)
        assert not self.is_alive(), "the stream hangs"
        return self.end


def names(url: str) -> list[str]:
    return [m.id for m in StoryClient(url, api_key=KEY).models()]


def test_the_base_model_is_served_by_its_name(server):
    url, _ = server
    [model] = StoryClient(url, api_key=KEY).models()
    assert model.id == BASE and model.storyteller["kind"] == "base"
    engine = StoryClient(url, api_key=KEY).health()["engine"]
    # The list says what this engine gives: llama.cpp computes logprobs, transformers serve not.
    assert model.storyteller["capabilities"]["logprobs"] is (engine != "transformers")
    answer = StoryClient(url, api_key=KEY).chat(BASE, [{"role": "user", "content": "Hi"}],
                                                Sampling(temperature=0, max_tokens=4))
    assert answer.completion_tokens == 4


def test_models_are_added_replaced_and_removed_while_streams_run(server, merged):
    url, _ = server
    meta = json.loads((merged / "storyteller.json").read_text())
    # Added while a stream runs on the base: the stream is untouched, the new model is first.
    on_base = Stream(url, BASE)
    on_base.running()
    loader = threading.Thread(target=lambda: load_model(url, "quickstart", str(merged), KEY,
                                                        default=True))
    loader.start()
    # While it loads, a request for it is told so, by name.
    status, answer = 0, {}
    deadline = time.monotonic() + 60
    while loader.is_alive() and time.monotonic() < deadline:
        status, answer = call(url, "POST", "/v1/chat/completions", {
            "model": "quickstart", "messages": [{"role": "user", "content": "x"}]})
        if status == 503:
            break
        time.sleep(0.05)
    assert status == 503 and answer["error"]["code"] == "model_loading"
    assert "'quickstart'" in answer["error"]["message"]
    loader.join(300)
    end = on_base.finished()
    assert isinstance(end, Completion) and end.finish_reason == "length"
    models = StoryClient(url, api_key=KEY).models()
    assert [m.id for m in models] == ["quickstart", BASE]
    assert models[0].genres == meta["genres"]

    # Replaced while a stream runs on it: the stream finishes on the old engine, new requests
    # go to the new one (the base model's files now), and the old engine is stopped after.
    on_old = Stream(url, "quickstart")
    on_old.running()
    replaced = load_model(url, "quickstart", BASE, KEY)
    assert replaced.storyteller["kind"] == "base" and "genres" not in replaced.storyteller
    end = on_old.finished()
    assert isinstance(end, Completion) and end.finish_reason == "length", end
    assert names(url) == ["quickstart", BASE]
    server_process = psutil.Process(server[1].pid)
    deadline = time.monotonic() + 30
    while len(server_process.children()) != 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(server_process.children()) == 2  # the base's engine and the new one

    # Removed while a stream runs on it: the removal waits for the stream, which finishes.
    on_removed = Stream(url, "quickstart", max_tokens=600)
    on_removed.running()
    assert unload_model(url, "quickstart", KEY) == {"id": "quickstart", "object": "model",
                                                   "deleted": True, "cut_short": False}
    end = on_removed.finished()
    assert isinstance(end, Completion) and end.finish_reason == "length", end
    assert names(url) == [BASE]
    status, answer = call(url, "POST", "/v1/chat/completions", {
        "model": "quickstart", "messages": [{"role": "user", "content": "x"}]})
    assert status == 404 and "'quickstart' is not served here" in answer["error"]["message"]


def test_a_removal_that_cannot_wait_ends_the_stream_with_an_error(server):
    url, _ = server
    load_model(url, "brief", BASE, KEY)
    stream = Stream(url, "brief", max_tokens=4000)
    stream.running()
    answer = unload_model(url, "brief", KEY, drain=0)
    assert answer["cut_short"] is True
    end = stream.finished(timeout=30)
    assert isinstance(end, Exception) and "broke off" in str(end), end
    assert names(url) == [BASE]


def test_a_model_whose_engine_dies_is_named_in_the_error(server):
    url, process = server
    load_model(url, "fragile", BASE, KEY)
    [engine] = [p for p in psutil.Process(process.pid).children()
                if "fragile" in " ".join(p.cmdline())]
    engine.kill()
    deadline = time.monotonic() + 10
    while "fragile" in names(url) and time.monotonic() < deadline:
        time.sleep(0.1)
    status, answer = call(url, "POST", "/v1/chat/completions", {
        "model": "fragile", "messages": [{"role": "user", "content": "x"}]})
    assert status == 503 and "'fragile'" in answer["error"]["message"]
    assert "exited" in answer["error"]["message"]
    # The endpoint keeps serving the rest, and the name can be loaded again.
    assert names(url) == [BASE]
    load_model(url, "fragile", BASE, KEY)
    assert "fragile" in names(url)
    unload_model(url, "fragile", KEY)


@pytest.mark.parametrize("body, status, param, words", [
    ({"path": BASE}, 400, "name", "name must be"),
    ({"name": "a/b", "path": BASE}, 400, "name", "name must be"),
    ({"name": "x"}, 400, "path", "path must be"),
    ({"name": "x", "path": BASE, "default": "yes"}, 400, "default", "default must be"),
    ({"name": "x", "path": BASE, "gpu": 1}, 400, "gpu", "unknown field"),
    ({"name": "x", "path": BASE, "weights": "q9_9"}, 400, "weights", "weights must be one of"),
    ({"name": "x", "path": "/no/such/model"}, 400, "path", "is not a directory"),
    (b"{not json", 400, None, "not valid JSON"),
])
def test_a_bad_load_request_is_a_400_naming_the_field(server, body, status, param, words):
    code, answer = call(server[0], "POST", "/v1/storyteller/models", body)
    assert code == status and answer["error"]["param"] == param
    assert words in answer["error"]["message"]


def test_one_model_is_served_with_other_weights_beside_the_first(server, merged):
    """The same merged model as float32 and as q8_0 under two names (how their stories are
    compared through one endpoint); an engine without GGUF weights refuses, naming weights."""
    url, _ = server
    engine = StoryClient(url, api_key=KEY).health()["engine"]
    code, answer = call(url, "POST", "/v1/storyteller/models",
                        {"name": "tiny-q8", "path": str(merged), "weights": "q8_0"})
    if engine != "llama.cpp":
        assert code == 400 and answer["error"]["param"] == "weights"
        assert engine in answer["error"]["message"]
        return
    assert code == 200 and answer["storyteller"]["weights"] == "q8_0"
    # The server's own model has the default type, q8_0 (docs/serve.md says why).
    assert {m.id: m.storyteller.get("weights")
            for m in StoryClient(url, api_key=KEY).models()}[BASE] == "q8_0"
    try:
        load_model(url, "tiny-f32", str(merged), KEY, weights="f32")
        listed = {m.id: m.storyteller.get("weights") for m in StoryClient(url, api_key=KEY).models()}
        assert listed["tiny-q8"] == "q8_0" and listed["tiny-f32"] == "f32"
        client = StoryClient(url, api_key=KEY)
        words = {name: client.chat(name, [{"role": "user", "content": "Tell me a story."}],
                                   Sampling(temperature=0, max_tokens=24))
                 for name in ("tiny-q8", "tiny-f32")}
        assert all(w.completion_tokens > 0 for w in words.values())
        # Each engine reads its own GGUF file.
        commands = {" ".join(p.cmdline()) for p in psutil.process_iter(["cmdline"])
                    if "llama-server" in " ".join(p.info["cmdline"] or [])}
        assert any(".q8_0.gguf" in c and "tiny-q8" in c for c in commands), commands
        assert any(".f32.gguf" in c and "tiny-f32" in c for c in commands), commands
    finally:
        for name in ("tiny-q8", "tiny-f32"):
            if name in names(url):
                unload_model(url, name, KEY)


def test_the_admin_routes_need_the_key_and_the_client_says_what_went_wrong(server, merged):
    url, _ = server
    code, answer = call(url, "POST", "/v1/storyteller/models", {"name": "x", "path": BASE},
                        key=None)
    assert code == 401 and answer["error"]["type"] == "authentication_error"
    assert call(url, "DELETE", f"/v1/storyteller/models/{BASE}", key=None)[0] == 401
    with pytest.raises(Unauthorized):
        load_model(url, "x", BASE, "wrong")
    with pytest.raises(BadRequest, match="is an adapter"):
        load_model(url, "x", str(merged.parent.parent / "runs" / "tiny" / "final"), KEY)
    with pytest.raises(ModelNotFound, match="'nope' is not served here"):
        unload_model(url, "nope", KEY)
    with pytest.raises(BadRequest, match="drain"):
        unload_model(url, BASE, KEY, drain=-1)
    assert names(url) == [BASE]


def test_without_a_key_loopback_clients_may_change_models(tmp_path):
    process, url = start_server(Path(BASE))
    try:
        added = load_model(url, "again", BASE)
        assert added.id == "again"
        assert names(url) == [BASE, "again"]
        unload_model(url, BASE)
        assert names(url) == ["again"]
        with pytest.raises(EndpointBusy):  # a second load of a name that is loading
            started = threading.Thread(target=lambda: load_model(url, "late", BASE))
            started.start()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                code, _ = call(url, "POST", "/v1/chat/completions",
                               {"model": "late", "messages": [{"role": "user", "content": "x"}]},
                               key=None)
                if code == 503:
                    break
                time.sleep(0.02)
            try:
                load_model(url, "late", BASE)
            finally:
                started.join(300)
    finally:
        stop_server(process)
