"""The endpoint clients see: one OpenAI-compatible HTTP API in front of whichever engine runs.

It owns what must be the same on every engine:

- the routes: /v1/chat/completions and /v1/completions (streaming and not), /v1/models (each
  model with its storyteller.json: genres, styles, control schema), /health;
- the API key: with a key set, every route but /health answers 401 without it (constant-time
  comparison); the engine itself listens on a private loopback port;
- the parameters: every one OpenAI defines, validated with OpenAI-style 400 errors naming the
  parameter, including storyteller's sampling extras (top_k, min_p, repetition_penalty, seed),
  then translated into what the engine understands (storyteller.serve.params);
- `n` and logprobs the same on every engine (storyteller.serve.fanout); requests with
  storyteller's `banned` or `continue_final_message` handed to storyteller.serve.steering;
- the served model name in every response, streamed or not;
- several models by name, each on its own engine (storyteller.serve.registry), added and removed
  while it runs through the admin routes the server adds (storyteller.serve.admin).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from storyteller.serve import fanout
from storyteller.serve.engine_params import engine_body
from storyteller.serve.params import (  # noqa: F401  (ApiError, validate … are imported from here)
    COMMON, EXTRAS, MAX_N, MAX_TOP_LOGPROBS, ApiError, validate, wanted_logprobs)
from storyteller.serve.registry import Engine, Registry

OPEN_ROUTES = ("/health",)


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
    # The model directory (its tokenizer and chat template), where the server has one.
    path: str | None = None
    # llama.cpp: the GGUF number type served (cpu.weights, or the load request's weights).
    weights: str | None = None


@dataclass(frozen=True)
class GatewaySettings:
    engine_url: str
    engine_kind: str  # vllm | llama.cpp | transformers
    models: dict[str, ServedModel]
    api_key: str | None = None
    engine_key: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))


# ------------------------------------------------------------------------------- the app

def capabilities(engine_kind: str | None) -> dict:
    """What a client may ask of a model on this engine beyond a story: the studio asks for
    word alternatives only where the engine computes them (transformers serve does not)."""
    return {"logprobs": engine_kind in ("vllm", "llama.cpp"), "max_n": MAX_N,
            "max_top_logprobs": MAX_TOP_LOGPROBS, "banned": True,
            "continue_final_message": True}


def model_entry(model: ServedModel, created: int, engine_kind: str | None = None) -> dict:
    """A model as /v1/models lists it, with the storyteller.json keys clients read (`kind`
    "base" for a base model served before any fine-tune) and what its engine can do."""
    meta = model.metadata
    return {"id": model.name, "object": "model", "created": created,
            "owned_by": "storyteller", "max_model_len": model.max_model_len,
            "storyteller": {**{key: meta.get(key) for key in (
                "kind", "base_model", "genres", "styles", "controls", "control_schema",
                "header_fields", "system_prompt", "merged_from") if key in meta},
                **({"weights": model.weights} if model.weights else {}),
                "capabilities": capabilities(engine_kind)}}


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
            model_entry(m, settings.created, registry.engine_of(name).kind)
            for name, m in registry.served().items()]})

    async def get_model(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            registry.check_available(name)
        except ApiError as error:
            return error.response()
        if name not in registry.models:
            return ApiError(404, f"model {name!r} is not served here", "model",
                            code="model_not_found").response()
        return JSONResponse(model_entry(registry.served()[name], settings.created,
                                        registry.engine_of(name).kind))

    async def forward(request: Request, route: str) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return ApiError(400, f"the request body is not valid JSON: {exc}").response()
        try:
            name = body.get("model") if isinstance(body, dict) else None
            registry.check_available(name)
            kind = registry.engine_of(name).kind if name in registry.models else "vllm"
            body, model = validate(body, route, registry.served(), kind)
        except ApiError as error:
            return error.response()
        engine = registry.engine_of(model.name)
        # The engine is held while the request runs, so unloading waits for it.
        with registry.hold(engine):
            try:
                if "banned" in body or "continue_final_message" in body:
                    return await steer(body, route, model, engine)
                return await generate(body, route, model, engine)
            except httpx.HTTPError as exc:
                return ApiError(503, f"the engine of model {model.name!r} is not reachable "
                                     f"({type(exc).__name__}); try again shortly",
                                kind="engine_unavailable").response()

    async def steer(body: dict, route: str, model: ServedModel, engine: Engine) -> Response:
        """storyteller's own request fields (banned words, continuing the last message) are
        storyteller.serve.steering's to honour; it sends through `send`, which takes a
        request in the gateway's validated shape and posts it as this engine takes it."""
        from storyteller.serve import steering  # imported on first use: the gateway alone runs

        async def send(path: str, payload: dict) -> httpx.Response:
            to = "chat" if path.endswith("/chat/completions") else "completions"
            return await send_to_engine(engine.client, path,
                                        engine_body(payload, to, model, engine.kind),
                                        engine.headers)

        answer = await steering.handle(steering.SteeringRequest(
            body=body, route=route, model=model, engine=engine, send=send))
        if isinstance(answer, StreamingResponse):
            answer.body_iterator = registry.held_stream(engine, answer.body_iterator)
        return answer

    async def generate(body: dict, route: str, model: ServedModel, engine: Engine) -> Response:
        path = "/v1/chat/completions" if route == "chat" else "/v1/completions"
        n = body.get("n", 1)
        alternatives = wanted_logprobs(body, route)
        # vLLM writes n stories itself and answers in OpenAI's shapes; the other engines get
        # n requests (storyteller.serve.fanout), and llama.cpp's logprobs are reshaped.
        fan = n > 1 and engine.kind != "vllm"
        reshape = alternatives is not None and engine.kind != "vllm"
        bodies = [fanout.seeded(body, i) for i in range(n)] if fan else [body]
        if fan and body.get("stream"):
            for one in bodies:  # usage of each, summed into one event where asked
                one["stream_options"] = {"include_usage": True}

        def opener(one: dict):
            payload = engine_body(one, route, model, engine.kind)
            return lambda: send_to_engine(engine.client, path, payload, engine.headers)

        openers = [opener(one) for one in bodies]
        # llama.cpp decodes requests in parallel slots; transformers serve one at a time.
        concurrent = engine.kind == "llama.cpp"
        shapers = [fanout.Shaper(route, alternatives, model.name, i if fan else None)
                   for i in range(len(bodies))]
        if body.get("stream"):
            opened = len(openers) if concurrent else 1
            answers = list(await asyncio.gather(*(o() for o in openers[:opened])))
            failed = await first_failure(answers)
            if failed is not None:
                return failed
            if fan:
                relay = fanout.fanned_stream(answers, openers[opened:], shapers,
                                             bool(body.get("stream_options")))
            elif not reshape and engine.kind in ("vllm", "llama.cpp") and \
                    model.engine_model == model.name:
                # Named as served, ending with [DONE], nothing to reshape: the bytes pass
                # through unparsed (decoding and re-encoding every event cost a quarter of
                # the throughput).
                relay = relay_bytes(answers[0])
            else:
                relay = fanout.shaped_stream(answers[0], shapers[0])
            return StreamingResponse(registry.held_stream(engine, relay),
                                     media_type="text/event-stream",
                                     headers={"cache-control": "no-cache"})
        answers = await fanout.gather(openers, concurrent)
        failed = await first_failure(answers)
        if failed is not None:
            return failed
        payloads = [shaper.payload(await fanout.read_json(answer))
                    for shaper, answer in zip(shapers, answers)]
        return JSONResponse(fanout.merge(payloads) if fan else payloads[0])

    async def chat(request: Request) -> Response:
        return await forward(request, "chat")

    async def completions(request: Request) -> Response:
        return await forward(request, "completions")

    @contextlib.asynccontextmanager
    async def lifespan(app):
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
    return fanout.sse(fanout.broke_off(exc))


async def first_failure(answers: list[httpx.Response]) -> Response | None:
    """The first engine answer that is not a 200, as the client's error (every answer is
    closed then); None when all are 200."""
    for answer in answers:
        if answer.status_code != 200:
            detail = (await answer.aread()).decode("utf-8", "replace")
            for other in answers:
                await other.aclose()
            return engine_error(answer.status_code, detail)
    return None


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
