"""A real `storyteller serve` on loopback for tests: the tiny model trained for a few steps,
merged, and served by the CPU engine behind the gateway."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

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


class StubChat:
    """An OpenAI-compatible chat completions endpoint on loopback whose answers come from
    `reply(body)` → (text, finish_reason, completion tokens), for the one `model` it serves
    (404 for any other); every request body is kept in `bodies`. For commands whose subject
    is what they do with the answers, not the serving."""

    def __init__(self, model: str, reply: Callable[[dict], tuple[str, str, int]]):
        self.bodies: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.bodies.append(body)
                if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions") \
                        or body.get("model") != model:
                    self.send_response(404)
                    self.end_headers()
                    self.wfile.write(b'{"error": "no such model"}')
                    return
                text, finish, tokens = reply(body)
                data = json.dumps({"choices": [{"message": {"role": "assistant",
                                                            "content": text},
                                                "finish_reason": finish}],
                                   "usage": {"completion_tokens": tokens}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
