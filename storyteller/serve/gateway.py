"""The endpoint clients see: one OpenAI-compatible HTTP API in front of whichever engine runs.

It owns what must be the same on every engine:

- the routes: /v1/chat/completions and /v1/completions (streaming and not), /v1/models (each
  model with its storyteller.json: genres, styles, control schema), /health;
- the API key: with a key set, every route but /health answers 401 without it (constant-time
  comparison); the engine itself listens on a private loopback port;
- the parameters: validated here with OpenAI-style 400 errors naming the parameter, including
  storyteller's sampling extras (top_k, min_p, repetition_penalty, seed), then translated into
  what the engine understands (llama.cpp's names; `transformers serve` takes them as a
  generation config);
- the served model name in every response, streamed or not;
- several models by name, each on its own engine (storyteller.serve.registry), added and removed
  while it runs through the admin routes the server adds (storyteller.serve.admin).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from storyteller.serve.registry import Engine, Registry

OPEN_ROUTES = ("/health",)
# The OpenAI parameters every engine gets, and storyteller's extras.
COMMON = {"model", "stream", "max_tokens", "temperature", "top_p", "seed", "stop", "n"}
EXTRAS = {"top_k", "min_p", "repetition_penalty"}
CHAT_ONLY = {"messages", "max_completion_tokens"}
COMPLETION_ONLY = {"prompt", "echo"}
ROLES = ("system", "user", "assistant")


class ApiError(Exception):
    """An OpenAI-style error response."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.kind, self.code = status, message, param, kind, code

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"message": self.message, "type": self.kind,
                                       "param": self.param, "code": self.code}},
                            status_code=self.status)


@dataclass(frozen=True)
class ServedModel:
    name: str
    # What the engine calls it (vLLM, llama.cpp: the same name; transformers serve: its
    # directory).
    engine_model: str
    max_model_len: int
    # storyteller.json of the model (for an adapter: its run's), shown under /v1/models.
    metadata: dict[str, Any] = field(default_factory=dict)
    # The model's generation_config.json: stop ids and defaults the CPU engine needs restated.
    generation: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GatewaySettings:
    engine_url: str
    engine_kind: str  # vllm | llama.cpp | transformers
    models: dict[str, ServedModel]
    api_key: str | None = None
    engine_key: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))


# ------------------------------------------------------------------ validation (pure functions)

def _number(body: dict, name: str, low: float, high: float, *, low_open: bool = False,
            integer: bool = False) -> None:
    if name not in body or body[name] is None:
        return
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (integer and not float(value).is_integer()) or not math.isfinite(float(value)):
        raise ApiError(400, f"{name} must be {'an integer' if integer else 'a number'}, "
                            f"not {json.dumps(value)}", name)
    if value < low or value > high or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise ApiError(400, f"{name} must be in {bracket}{low}, {high}], not {value}", name)


def validate(body: Any, route: str, models: dict[str, ServedModel]) -> tuple[dict, ServedModel]:
    """The request body checked parameter by parameter; the ServedModel it asks for."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    allowed = COMMON | EXTRAS | (CHAT_ONLY if route == "chat" else COMPLETION_ONLY)
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, f"unsupported parameter(s): {', '.join(unknown)}; this endpoint "
                            f"takes {', '.join(sorted(allowed))}", unknown[0])
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "model is required: one of " + ", ".join(models), "model")
    if name not in models:
        raise ApiError(404, f"model {name!r} is not served here; served: {', '.join(models)}",
                       "model", code="model_not_found")
    model = models[name]
    if route == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "messages must be a non-empty list of {role, content}", "messages")
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                raise ApiError(400, f"messages[{i}].role must be one of {', '.join(ROLES)}",
                               f"messages[{i}].role")
            if not isinstance(message.get("content"), str):
                raise ApiError(400, f"messages[{i}].content must be a string", f"messages[{i}].content")
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str) or not prompt:
            raise ApiError(400, "prompt must be a non-empty string", "prompt")
        if body.get("echo"):
            raise ApiError(400, "echo is not supported", "echo")
    for key in ("max_tokens", "max_completion_tokens"):
        _number(body, key, 1, model.max_model_len, integer=True)
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1, low_open=True)
    _number(body, "top_k", -1, 1_000_000, integer=True)
    _number(body, "min_p", 0, 1)
    _number(body, "repetition_penalty", 0, 10, low_open=True)
    _number(body, "seed", -2**63, 2**63 - 1, integer=True)
    if body.get("n") not in (None, 1):
        raise ApiError(400, "n must be 1 (ask again for another story)", "n")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise ApiError(400, "stream must be true or false", "stream")
    stop = body.get("stop")
    if stop is not None and not (isinstance(stop, str) or (
            isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop))):
        raise ApiError(400, "stop must be a string or a list of up to 4 strings", "stop")
    return body, model


def engine_body(body: dict, route: str, model: ServedModel, engine_kind: str) -> dict:
    """The validated request as the engine takes it."""
    out = {k: v for k, v in body.items() if v is not None}
    out["model"] = model.engine_model
    if route == "completions" and isinstance(out.get("prompt"), list):
        out["prompt"] = out["prompt"][0]
    out.pop("n", None)
    if engine_kind == "vllm":
        return out  # vLLM takes top_k, min_p, repetition_penalty and seed as they are
    if engine_kind == "llama.cpp":
        return llamacpp_body(out)
    # transformers serve takes sampling beyond temperature / top_p only as a generation config,
    # which replaces the model's: restate its stop ids and defaults.
    limit = out.pop("max_completion_tokens", None) or out.get("max_tokens")
    temperature = out.get("temperature", 1.0)
    config = {k: v for k, v in model.generation.items()
              if k in ("eos_token_id", "pad_token_id", "bos_token_id")}
    config.update({"do_sample": temperature > 0, "max_new_tokens": limit or
                   max(1, min(1024, model.max_model_len))})
    if temperature > 0:
        config["temperature"] = temperature
        config["top_p"] = out.get("top_p", 1.0)
        config["top_k"] = max(0, out.pop("top_k", 0) or 0)
        if out.get("min_p"):
            config["min_p"] = out["min_p"]
    out.pop("top_k", None)
    out.pop("min_p", None)
    penalty = out.pop("repetition_penalty", None)
    if penalty is not None:
        config["repetition_penalty"] = penalty
    if limit:
        out["max_tokens"] = limit
    out["generation_config"] = json.dumps(config)
    return out


def llamacpp_body(out: dict) -> dict:
    """llama-server's names: repeat_penalty, top_k 0 for no limit, a 32-bit seed (all ones
    means "random" there, so it is never sent).

    A seeded request is computed without the prompt cache: logits from a cached prompt differ
    from a fresh one's in the last bits (another kernel for one token than for many), which
    is enough to sample another story, and a seed promises the same story."""
    if "max_completion_tokens" in out:
        out["max_tokens"] = out.pop("max_completion_tokens")
    if "repetition_penalty" in out:
        out["repeat_penalty"] = out.pop("repetition_penalty")
    if out.get("top_k", 0) < 0:
        out["top_k"] = 0
    if "seed" in out:
        out["seed"] = out["seed"] % 0xFFFFFFFF
        out["cache_prompt"] = False
    return out


def rename_model(payload: dict, name: str) -> dict:
    if "model" in payload:
        payload["model"] = name
    return payload


# ------------------------------------------------------------------------------- the app

def model_entry(model: ServedModel, created: int) -> dict:
    """A model as /v1/models lists it, with the storyteller.json keys clients read (`kind`
    "base" for a base model served before any fine-tune)."""
    meta = model.metadata
    return {"id": model.name, "object": "model", "created": created,
            "owned_by": "storyteller", "max_model_len": model.max_model_len,
            "storyteller": {key: meta.get(key) for key in (
                "kind", "base_model", "genres", "styles", "controls", "control_schema",
                "header_fields", "system_prompt", "merged_from") if key in meta}}


def create_app(settings: GatewaySettings, registry: Registry | None = None,
               routes: list[BaseRoute] = (), background=()) -> Starlette:
    """The gateway. `registry` holds the models and their engines (default: `settings.models`
    on the engine at `settings.engine_url`); `routes` are added (the server's admin routes);
    each of `background` (coroutine functions) runs while the app does."""
    if registry is None:
        registry = Registry()
        registry.add(list(settings.models.values()),
                     Engine(settings.engine_url, settings.engine_kind, settings.engine_key))

    async def health(request: Request) -> Response:
        engines = registry.engines()
        if not engines:
            return JSONResponse({"status": "unavailable", "engine": settings.engine_kind,
                                 "reason": "no model is loaded", "models": []}, status_code=503)
        for engine in engines:
            try:
                answer = await engine.client.get("/health", headers=engine.headers, timeout=5.0)
                reason = None if answer.status_code == 200 else \
                    f"the engine answered {answer.status_code}"
            except httpx.HTTPError:
                reason = "the engine does not answer"
            if reason:
                names = [n for n, (_, e) in registry.models.items() if e is engine]
                return JSONResponse({"status": "unavailable", "engine": engine.kind,
                                     "reason": f"{reason} (model {', '.join(names)})"},
                                    status_code=503)
        return JSONResponse({"status": "ok", "engine": settings.engine_kind,
                             "models": list(registry.models)})

    async def list_models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [
            model_entry(m, settings.created) for m in registry.served().values()]})

    async def get_model(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            registry.check_available(name)
        except ApiError as error:
            return error.response()
        if name not in registry.models:
            return ApiError(404, f"model {name!r} is not served here", "model",
                            code="model_not_found").response()
        return JSONResponse(model_entry(registry.served()[name], settings.created))

    async def forward(request: Request, route: str) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return ApiError(400, f"the request body is not valid JSON: {exc}").response()
        try:
            registry.check_available(body.get("model") if isinstance(body, dict) else None)
            body, model = validate(body, route, registry.served())
        except ApiError as error:
            return error.response()
        engine = registry.engine_of(model.name)
        path = "/v1/chat/completions" if route == "chat" else "/v1/completions"
        payload = engine_body(body, route, model, engine.kind)
        # The engine is held while the request runs, so unloading waits for it.
        with registry.hold(engine):
            try:
                answer = await send_to_engine(engine.client, path, payload, engine.headers)
            except httpx.HTTPError as exc:
                return ApiError(503, f"the engine of model {model.name!r} is not reachable "
                                     f"({type(exc).__name__}); try again shortly",
                                kind="engine_unavailable").response()
            if answer.status_code != 200:
                detail = (await answer.aread()).decode("utf-8", "replace")
                await answer.aclose()
                return engine_error(answer.status_code, detail)
            if body.get("stream"):
                # vLLM and llama.cpp already name the model as served and end with [DONE]:
                # their bytes pass through unparsed (decoding and re-encoding every event cost
                # a quarter of the throughput).
                same = engine.kind in ("vllm", "llama.cpp") and model.engine_model == model.name
                relay = relay_bytes(answer) if same else relay_stream(answer, model.name)
                return StreamingResponse(registry.held_stream(engine, relay),
                                         media_type="text/event-stream",
                                         headers={"cache-control": "no-cache"})
            try:
                payload = json.loads(await answer.aread())
            finally:
                await answer.aclose()
        return JSONResponse(rename_model(payload, model.name))

    async def chat(request: Request) -> Response:
        return await forward(request, "chat")

    async def completions(request: Request) -> Response:
        return await forward(request, "completions")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        import asyncio

        tasks = [asyncio.create_task(job()) for job in background]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for engine in {*registry.engines(), *registry.retired}:
                await engine.close()

    app = Starlette(routes=[
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{name:path}", get_model, methods=["GET"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        *routes,
    ], lifespan=lifespan)
    app.state.registry = registry
    app.add_middleware(ApiKeyMiddleware, api_key=settings.api_key)
    return app


async def send_to_engine(client: httpx.AsyncClient, path: str, payload: dict,
                         headers: dict) -> httpx.Response:
    """POST to the engine, streamed. A kept-alive connection the engine closed at the moment
    it was reused fails before any answer: that one is retried once on a fresh connection
    (a story has no side effects to repeat)."""
    for attempt in (1, 2):
        try:
            return await client.send(client.build_request("POST", path, json=payload,
                                                          headers=headers), stream=True)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def engine_error(status: int, detail: str) -> Response:
    """An engine's error as an OpenAI error: its 4xx stay the client's fault, the rest is 502."""
    try:
        parsed = json.loads(detail)
        message = parsed.get("error", {}).get("message") if isinstance(parsed.get("error"), dict) \
            else parsed.get("detail") or parsed.get("error") or detail
    except (json.JSONDecodeError, AttributeError):
        message = detail
    message = str(message)[:500]
    if 400 <= status < 500:
        return ApiError(status, f"the engine refused the request: {message}").response()
    return ApiError(502, f"the engine failed ({status}): {message}", kind="engine_error").response()


async def relay_bytes(answer: httpx.Response) -> AsyncIterator[bytes]:
    """The engine's server-sent events as they come, for an engine whose events are already
    what the client should see; a break-off mid-story still ends with an error event."""
    pending = b""  # bytes after the last complete event: sent once the event is whole
    try:
        async for chunk in answer.aiter_raw():
            pending += chunk
            last = pending.rfind(b"\n\n")
            if last >= 0:
                yield pending[:last + 2]
                pending = pending[last + 2:]
        if pending.strip():
            yield pending
    except httpx.HTTPError as exc:
        yield broke_off(exc)
    finally:
        await answer.aclose()


def broke_off(exc: Exception) -> bytes:
    error = {"error": {"message": f"the engine broke off the stream ({type(exc).__name__})",
                       "type": "engine_error", "param": None, "code": None}}
    return f"data: {json.dumps(error)}\n\n".encode()


async def relay_stream(answer: httpx.Response, name: str) -> AsyncIterator[bytes]:
    """The engine's server-sent events with the served model name; an engine that breaks off
    mid-story ends the stream with an error event rather than a silent cut."""
    try:
        async for line in answer.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                try:
                    event = json.loads(line[6:])
                except json.JSONDecodeError:
                    yield f"{line}\n\n".encode()
                    continue
                yield f"data: {json.dumps(rename_model(event, name))}\n\n".encode()
        # Every engine's stream ends the way OpenAI's does (transformers serve sends no [DONE]).
        yield b"data: [DONE]\n\n"
    except httpx.HTTPError as exc:
        yield broke_off(exc)
    finally:
        await answer.aclose()


class ApiKeyMiddleware:
    """401 for every route but /health without `Authorization: Bearer <key>` (pure ASGI, so
    streamed responses pass through untouched)."""

    def __init__(self, app, api_key: str | None):
        self.app = app
        self.expected = f"Bearer {api_key}".encode() if api_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.expected is None or scope["path"] in OPEN_ROUTES:
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"authorization", b"")
        if not hmac.compare_digest(given, self.expected):
            response = ApiError(401, "a valid API key is required: send the header "
                                     "'Authorization: Bearer <key>'",
                                kind="authentication_error", code="invalid_api_key").response()
            return await response(scope, receive, send)
        return await self.app(scope, receive, send)
