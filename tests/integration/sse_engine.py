"""A stand-in engine on loopback that streams chat completions the way vLLM does (chunks named
with the served model, then `data: [DONE]`), for what the real engines cannot be made to do on
demand: break off in the middle of an event, or stream faster than any model on this machine
(the gateway's own cost per event, bench/gateway.py). Everything else is tested against the real
server (tests/integration/test_serve.py)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def chunk(model: str, index: int, text: str | None, finish: str | None = None) -> bytes:
    event = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": model,
             "choices": [{"index": 0, "delta": {"content": text} if text is not None else {},
                          "finish_reason": finish, "logprobs": None}]}
    return f"data: {json.dumps(event)}\n\n".encode()


class SseEngine:
    """Streams `pieces` words per chat request; with break_off=True it stops halfway through
    an event and closes the connection (an engine that died mid-story)."""

    def __init__(self, model: str = "tiny", pieces: int = 20, break_off: bool = False,
                 port: int = 0):
        self.model, self.pieces, self.break_off = model, pieces, break_off
        self.events = [chunk(model, i, f"word{i} ") for i in range(pieces)]
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                body = b'{"status": "ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i, data in enumerate(owner.events):
                    if owner.break_off and i == owner.pieces // 2:
                        self.send_chunk(data[: len(data) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        return  # no terminating chunk: the client sees a broken transfer
                    self.send_chunk(data)
                self.send_chunk(chunk(owner.model, owner.pieces, None, "stop") + b"data: [DONE]\n\n")
                self.send_chunk(b"")

            def send_chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "SseEngine":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class Gateway:
    """storyteller's gateway in front of `engine_url`, served by uvicorn on loopback in a
    thread, as `storyteller serve` runs it."""

    def __init__(self, engine_url: str, engine_kind: str, served: str = "tiny",
                 engine_model: str | None = None, port: int = 0):
        import uvicorn

        from storyteller.processes import free_port
        from storyteller.serve.gateway import GatewaySettings, ServedModel, create_app

        models = {served: ServedModel(served, engine_model or served, 2048)}
        app = create_app(GatewaySettings(engine_url, engine_kind, models))
        port = port or free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "Gateway":
        import time

        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def main() -> None:
    """`python -m tests.integration.sse_engine engine|gateway ...`: either half in its own
    process, for bench/gateway.py (one process each keeps them off each other's interpreter
    lock); on --port where given, and its URL printed once it listens."""
    import argparse
    import time

    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["engine", "gateway"])
    parser.add_argument("--pieces", type=int, default=128)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--engine-url", default="")
    parser.add_argument("--kind", default="vllm")
    parser.add_argument("--engine-model", default=None)
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args()
    if args.role == "engine":
        server = SseEngine(args.model, args.pieces, port=args.port)
    else:
        server = Gateway(args.engine_url, args.kind, args.model, args.engine_model, args.port)
    with server:
        print(server.url, flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
