"""Changing what the endpoint serves while it runs, without a restart:

- `POST /v1/storyteller/models` `{"name": "quickstart", "path": "models/quickstart",
  "default": true}` checks the model as `--model` is checked, starts an engine for it and
  answers once it is ready. On llama.cpp, `"weights": "q8_0"` serves that model's GGUF of
  another number type than the server's `cpu.weights` (the same model as f32 and q8_0 side by
  side under two names, to compare their stories). A name already served keeps answering
  from its old engine until the new one is ready; the old one then stops once its requests
  are done.
- `DELETE /v1/storyteller/models/NAME[?drain=SECONDS]` stops serving NAME and answers once its
  engine has finished its requests (up to `drain` seconds, default
  storyteller.serve.registry.DRAIN_SECONDS; streams still running then end with an error event).

Both need the API key when the server has one (ApiKeyMiddleware); without one they are taken
only from loopback clients. Also here: the watch that notices an engine that died."""

from __future__ import annotations

import asyncio
import math
import re
from typing import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from storyteller.errors import StorytellerError
from storyteller.serve.fleet import EngineStartError, Loader, PreflightError, resolve_ref
from storyteller.serve.gateway import ApiError, model_entry
from storyteller.serve.llamacpp import WEIGHTS
from storyteller.serve.registry import DRAIN_SECONDS, Registry

ROUTE = "/v1/storyteller/models"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
LOOPBACK_CLIENTS = ("127.0.0.1", "::1", "::ffff:127.0.0.1", "localhost")
FIELDS = {"name", "path", "default", "weights"}


def load_request(body) -> tuple[str, str, bool, str | None]:
    """(name, path, default, weights) from the POST body, or a 400 naming the field."""
    if not isinstance(body, dict):
        raise ApiError(400, 'the body must be a JSON object: {"name": ..., "path": ...}')
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise ApiError(400, f"unknown field(s) {', '.join(unknown)}; this route takes name, "
                            "path, default and weights", unknown[0])
    name, path, default = body.get("name"), body.get("path"), body.get("default", False)
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ApiError(400, "name must be the model's served name: letters, digits and . _ : - "
                            f"(up to 128), not {name!r}", "name")
    if not isinstance(path, str) or not path.strip():
        raise ApiError(400, "path must be a model directory written by storyteller merge (on "
                            "the server's machine) or a base model's name, e.g. smollm2-135m",
                       "path")
    if not isinstance(default, bool):
        raise ApiError(400, f"default must be true or false, not {default!r}", "default")
    weights = body.get("weights")
    if weights is not None and weights not in WEIGHTS:
        raise ApiError(400, f"weights must be one of {', '.join(WEIGHTS)} (llama.cpp's GGUF "
                            f"number types), not {weights!r}", "weights")
    return name, path, default, weights


def drain_seconds(request: Request) -> float:
    raw = request.query_params.get("drain")
    if raw is None:
        return DRAIN_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise ApiError(400, f"drain must be a number of seconds, 0 or more, not {raw!r}", "drain")
    return value


def from_loopback(request: Request) -> bool:
    return request.client is not None and request.client.host in LOOPBACK_CLIENTS


def admin_routes(registry: Registry, loader: Loader, api_key: str | None,
                 created: int, say: Callable[[str], None] = print) -> list[Route]:
    retiring: set[asyncio.Task] = set()

    def allowed(request: Request) -> ApiError | None:
        # With a key, ApiKeyMiddleware has checked it already.
        if api_key or from_loopback(request):
            return None
        return ApiError(403, "changing the served models needs the server's API key, or a "
                             "client on the server's own machine", kind="permission_error")

    def retire_later(engine) -> None:
        task = asyncio.create_task(registry.retire(engine, loader.stop))
        retiring.add(task)
        task.add_done_callback(retiring.discard)

    async def load(request: Request) -> Response:
        import anyio

        try:
            refused = allowed(request)
            if refused:
                raise refused
            try:
                body = await request.json()
            except ValueError as exc:
                raise ApiError(400, f"the request body is not valid JSON: {exc}") from None
            name, path, default, weights = load_request(body)
            engine_kind = loader.kind_now() if weights is not None else None
            if engine_kind not in (None, "llama.cpp"):
                raise ApiError(400, f"weights: this server's engine is {engine_kind}, "
                                    "which serves the model directory's own weights; GGUF "
                                    "number types are llama.cpp's (leave weights out)",
                               "weights")
            if name in registry.loading:
                raise ApiError(409, f"model {name!r} is already loading "
                                    f"({registry.loading[name]})", "name", code="model_loading")
        except ApiError as error:
            return error.response()
        registry.loading[name] = path
        try:
            ref = await anyio.to_thread.run_sync(resolve_ref, path)
            engine, models = await anyio.to_thread.run_sync(
                lambda: loader.load(name, ref, weights=weights))
        except PreflightError as error:
            return ApiError(400, f"cannot serve {path!r}: " + "; ".join(map(str, error.problems)),
                            "path").response()
        except EngineStartError as error:
            return ApiError(502, f"the engine for model {name!r} did not start: "
                                 + "; ".join(map(str, error.problems)),
                            kind="engine_error").response()
        except StorytellerError as error:  # e.g. the embedded base model is not installed
            return ApiError(400, f"cannot serve {path!r}: " + "; ".join(map(str, error.problems)),
                            "path").response()
        except Exception as error:  # noqa: BLE001 — answered, not a bare 500 without words
            return ApiError(500, f"loading model {name!r} failed: {type(error).__name__}: "
                                 f"{error}", kind="server_error").response()
        finally:
            registry.loading.pop(name, None)
        for old in registry.add(models, engine, default):
            retire_later(old)
        say(f"now serving {', '.join(registry.models)} (added {name} from {path}"
            + (f", {weights} weights)" if weights else ")"))
        return JSONResponse({**model_entry(models[0], created, engine.kind),
                             "default": next(iter(registry.models)) == name})

    async def unload(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            refused = allowed(request)
            if refused:
                raise refused
            drain = drain_seconds(request)
            if name not in registry.models:
                registry.check_available(name)
                raise ApiError(404, f"model {name!r} is not served here; served: "
                                    f"{', '.join(registry.models) or 'none'}", "model",
                               code="model_not_found")
        except ApiError as error:
            return error.response()
        engine = registry.remove(name)
        say(f"unloading {name}")
        finished = True
        if engine is not None:
            finished = await registry.retire(engine, loader.stop, drain)
        return JSONResponse({"id": name, "object": "model", "deleted": True,
                             "cut_short": not finished})

    return [Route(ROUTE, load, methods=["POST"]),
            Route(ROUTE + "/{name:path}", unload, methods=["DELETE"])]


async def watch_engines(registry: Registry, say: Callable[[str], None],
                        on_empty: Callable[[str], None], every: float = 0.5) -> None:
    """An engine that exits by itself takes its models off the list, with its last output for
    whoever asks for them; when no model is left, `on_empty` (the server stops, as before there
    were several)."""
    while True:
        for engine in registry.engines():
            code = engine.exit_code()
            if code is None or engine.stopping:
                continue
            why = f"its engine exited with code {code}"
            names = registry.drop_engine(engine, why + "; load it again with POST " + ROUTE)
            say(f"error: the engine exited with code {code} (model {', '.join(names)}):\n  "
                + engine.last_words())
            await engine.close()
            if not registry.models and not registry.loading:
                on_empty(f"the engine exited with code {code}")
        await asyncio.sleep(every)
