"""A misbehaving endpoint on loopback, for the studio's error cases only (the real server cannot
be made to refuse a key it was not started with halfway, or to hang): it lists one model and
then answers chat requests with 401, or not at all within the client's timeout. It counts the
chat requests it gets, so a test can show that refused input never left the studio."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = {"id": "fake", "object": "model", "owned_by": "storyteller", "max_model_len": 2048,
         "storyteller": {"genres": ["fable"], "styles": ["moral"],
                         "controls": {"genre": ["fable"], "style": ["moral"]},
                         "header_fields": ["genre", "style"]}}


class FakeEndpoint:
    def __init__(self, mode: str = "slow", delay: float = 5.0):
        self.mode, self.delay, self.chat_requests = mode, delay, 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if owner.mode == "unauthorized" and self.path.startswith("/v1"):
                    return self._send(401, {"error": {"message": "invalid API key",
                                                      "type": "invalid_request_error"}})
                if self.path.startswith("/v1/models"):
                    return self._send(200, {"object": "list", "data": [MODEL]})
                return self._send(200, {"status": "ok"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                owner.chat_requests += 1
                if owner.mode == "unauthorized":
                    return self._send(401, {"error": {"message": "invalid API key"}})
                if owner.mode == "revoked":  # lists models, then refuses to write
                    return self._send(401, {"error": {"message": "the key was revoked"}})
                time.sleep(owner.delay)
                try:
                    self._send(500, {"error": {"message": "too late"}})
                except OSError:  # the client gave up first, as it should
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeEndpoint":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
