"""Which models the gateway serves now, and on which engine: one engine process per model
directory (vLLM adapters share their base's engine). Models are added, replaced and removed
while the endpoint runs (storyteller.serve.admin); this module keeps the bookkeeping that makes
that safe for requests in flight:

- every request holds its engine until its answer (or stream) is done (`hold`), so an engine is
  stopped only once nothing is running on it, or when the time allowed for that has passed (the
  streams still on it then end with an error event, never a hang);
- a name that is loading, or whose engine died, answers a clear error naming the model.

Lives on the gateway's event loop: no locks, every change is one synchronous step."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

import httpx


# How long an engine that lost its last model waits for its requests to finish before it is
# stopped (a 1,000-token story on two CPU cores takes about a minute).
DRAIN_SECONDS = 300.0


@dataclass(eq=False)
class Engine:
    """One engine the gateway talks to: where it listens, what it is, its key, and the child
    process when the server started it (None for an engine run by someone else)."""

    url: str
    kind: str  # vllm | llama.cpp | transformers
    key: str | None = None
    process: Any = None  # storyteller.serve.engines.EngineProcess
    inflight: int = 0
    stopping: bool = False
    _client: httpx.AsyncClient | None = field(default=None, repr=False)

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"} if self.key else {}

    @property
    def client(self) -> httpx.AsyncClient:
        # Idle connections are dropped before the engine drops them (llama-server closes them
        # after 5 s, httpx's own default): reusing one the engine has just closed fails.
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.url, timeout=httpx.Timeout(
                connect=5.0, read=None, write=30.0, pool=None), limits=httpx.Limits(
                max_connections=512, max_keepalive_connections=64, keepalive_expiry=2.0))
        return self._client

    def exit_code(self) -> int | None:
        """The engine process's exit code once it has exited (None: running, or not ours)."""
        return self.process.process.poll() if self.process is not None else None

    def last_words(self) -> str:
        return self.process.last_words() if self.process is not None else ""

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class Registry:
    """Served name → (ServedModel, Engine), the default first; names loading; names whose
    engine died, with why."""

    def __init__(self):
        self.models: dict[str, tuple[Any, Engine]] = {}
        self.loading: dict[str, str] = {}  # name → what is being loaded for it
        self.gone: dict[str, str] = {}  # name → why it is no longer served
        self.retired: set[Engine] = set()  # engines draining before they stop

    # -- what is served ------------------------------------------------------------------------
    def served(self) -> dict[str, Any]:
        return {name: model for name, (model, _) in self.models.items()}

    def engines(self) -> list[Engine]:
        """Engines serving a model now, each once, in model order."""
        return list(dict.fromkeys(engine for _, engine in self.models.values()))

    def engine_of(self, name: str) -> Engine:
        return self.models[name][1]

    def check_available(self, name: Any) -> None:
        """An OpenAI-style error for a model that is loading or whose engine died; unknown
        names are left to the request's validation, which lists what is served."""
        from storyteller.serve.gateway import ApiError

        if not isinstance(name, str) or name in self.models:
            return
        if name in self.loading:
            raise ApiError(503, f"model {name!r} is still loading; ask again once it is listed "
                                "under /v1/models", "model", kind="model_unavailable",
                           code="model_loading")
        if name in self.gone:
            raise ApiError(503, f"model {name!r} is not available: {self.gone[name]}", "model",
                           kind="model_unavailable", code="model_unavailable")

    # -- changes -------------------------------------------------------------------------------
    def add(self, models: list[Any], engine: Engine, default: bool = False) -> list[Engine]:
        """Serve `models` on `engine` (replacing whatever served those names), the first of
        them first in the list when `default`; the engines that now serve nothing, to retire."""
        before = set(self.engines())
        for model in models:
            self.models[model.name] = (model, engine)
            self.gone.pop(model.name, None)
        if default:
            self.models = {models[0].name: self.models[models[0].name],
                           **{k: v for k, v in self.models.items() if k != models[0].name}}
        return [old for old in before if old not in self.engines()]

    def remove(self, name: str) -> Engine | None:
        """Stop serving `name`; its engine when no other name uses it (to retire)."""
        _, engine = self.models.pop(name)
        return None if engine in self.engines() else engine

    def drop_engine(self, engine: Engine, why: str) -> list[str]:
        """An engine that died: its names become unavailable, with why. The names dropped."""
        names = [name for name, (_, e) in self.models.items() if e is engine]
        for name in names:
            del self.models[name]
            self.gone[name] = why
        return names

    # -- requests in flight --------------------------------------------------------------------
    @contextlib.contextmanager
    def hold(self, engine: Engine):
        engine.inflight += 1
        try:
            yield engine
        finally:
            engine.inflight -= 1

    async def held_stream(self, engine: Engine,
                          relay: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """`relay` with its engine held until the stream is done, however it ends."""
        engine.inflight += 1
        try:
            async for chunk in relay:
                yield chunk
        finally:
            engine.inflight -= 1

    async def retire(self, engine: Engine, stop: Callable[[Engine], Any],
                     drain: float = DRAIN_SECONDS) -> bool:
        """Wait up to `drain` seconds for the engine's requests to finish, then stop it with
        `stop` (blocking, run in a thread). True if nothing was cut short."""
        import anyio

        self.retired.add(engine)
        engine.stopping = True
        deadline = asyncio.get_running_loop().time() + drain
        while engine.inflight and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        drained = engine.inflight == 0
        try:
            await anyio.to_thread.run_sync(stop, engine)
            await engine.close()
        finally:
            self.retired.discard(engine)
        return drained
