"""The engines behind the gateway: a model reference → preflight → its own engine process,
healthy and warmed up → the models the gateway serves on it. `storyteller serve` loads its
--model this way at start, and POST /v1/storyteller/models (storyteller.serve.admin) loads more
while the endpoint runs, each on its own loopback port.

A reference is a model directory (storyteller merge's --out) or the name of an embedded base
model (`smollm2-135m`, `tiny-random`, resolved by storyteller.models as finetune does), so the
base can be served before any fine-tune exists. Blocking: the admin route runs `load` in a
worker thread; the engine process itself is forked from a long-lived thread
(storyteller.processes), so it still goes down with the server."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from storyteller.errors import InputError, Problem, StorytellerError
from storyteller.models import DEFAULT_MODEL, TINY_MODEL, resolve_model
from storyteller.serve import llamacpp
from storyteller.serve.config import ServeConfig
from storyteller.serve.engines import EngineProcess, max_model_len, plan_launch
from storyteller.serve.gateway import ServedModel
from storyteller.serve.preflight import Adapter, check_model, read_json
from storyteller.serve.registry import Engine

BASE_MODELS = (DEFAULT_MODEL, TINY_MODEL)


class PreflightError(StorytellerError):
    """The model (or how it is asked for) cannot be served; nothing was started."""


class EngineStartError(StorytellerError):
    """The engine was started and failed to come up; its last output says why."""


@dataclass(frozen=True)
class ModelRef:
    model_dir: Path
    # The embedded base model's name when the reference is one (it has no storyteller.json).
    base: str | None = None

    @property
    def default_name(self) -> str:
        return self.base or self.model_dir.name


def resolve_ref(ref: str) -> ModelRef:
    """A directory as given, else an embedded base model by name (a directory of that name in
    the working directory wins)."""
    path = Path(ref).expanduser()
    if not path.exists() and ref in BASE_MODELS:
        return ModelRef(Path(resolve_model(ref)), ref)
    return ModelRef(path, None)


def check_ref(ref: ModelRef) -> list[Problem]:
    return check_model(ref.model_dir, base=ref.base is not None)


def served_models(cfg: ServeConfig, ref: ModelRef, name: str, engine_model: str,
                  adapters: list[Adapter] = (), weights: str | None = None) -> list[ServedModel]:
    """The models one engine serves: the model under `name`, then its adapters (vLLM)."""
    limit = max_model_len(ref.model_dir, cfg.max_model_len)
    generation = read_json(ref.model_dir / "generation_config.json") or {}
    metadata = {"kind": "base"} if ref.base else \
        read_json(ref.model_dir / "storyteller.json") or {}
    # The directory gives steering the tokenizer and chat template (adapters add no tokens).
    path = str(ref.model_dir.resolve())
    models = [ServedModel(name, engine_model, limit, metadata, generation, path, weights)]
    for adapter in adapters:
        meta = read_json(adapter.path / "storyteller.json") or metadata
        # vLLM names an adapter by its --lora-modules name.
        models.append(ServedModel(adapter.name, adapter.name, limit, meta, generation, path))
    return models


class Loader:
    """Starts engines of one kind with one configuration; remembers those still starting, so
    a server that stops meanwhile stops them too."""

    def __init__(self, cfg: ServeConfig, engine_kind: str, log: Path | None = None,
                 say: Callable[[str], None] = print,
                 should_stop: Callable[[], bool] = lambda: False):
        self.cfg, self.engine_kind, self.log, self.say = cfg, engine_kind, log, say
        self.should_stop = should_stop
        self.starting: set[EngineProcess] = set()

    def load(self, name: str, ref: ModelRef, adapters: list[Adapter] = (),
             check: bool = True, weights: str | None = None) -> tuple[Engine, list[ServedModel]]:
        """Start `ref`'s engine serving it as `name`; return once it answers and is warm.
        `weights`: on llama.cpp, this model's GGUF number type instead of `cpu.weights`."""
        if check:
            problems = check_ref(ref)
            if problems:
                raise PreflightError(*problems)
        cfg = self.cfg if weights is None else \
            replace(self.cfg, cpu=replace(self.cfg.cpu, weights=weights))
        kind = self.kind_now()
        launch = plan_launch(cfg, kind, ref.model_dir, name, list(adapters))
        self.say(f"engine: {launch.title}; loading {name} from {ref.model_dir} …")
        if launch.convert and not launch.convert[1].is_file():
            self.say(f"converting the model to a {llamacpp.weights_of(launch.convert[1])} GGUF "
                     f"for llama.cpp (once): {launch.convert[1]}")
            llamacpp.ensure_gguf(*launch.convert)
        process = EngineProcess(launch, self.log)
        self.starting.add(process)
        try:
            process.wait_healthy(self.cfg.startup_timeout, progress=self._stop_if_asked)
            process.warm_up({"model": launch.engine_model, "max_tokens": 1,
                             "messages": [{"role": "user", "content": "Hello"}]})
        except InputError as failure:
            process.stop()
            raise EngineStartError(*failure.problems) from None
        except BaseException:
            process.stop()
            raise
        finally:
            self.starting.discard(process)
        engine = Engine(process.url, launch.kind, launch.engine_key, process)
        served_weights = cfg.cpu.weights if kind == "llama.cpp" else None
        return engine, served_models(cfg, ref, name, launch.engine_model, list(adapters),
                                     served_weights)

    def kind_now(self) -> str:
        """The engine for the next load. A server that started on transformers serve only
        because llama-server was not built yet (the demo serves the base model while it
        builds) moves to llama.cpp as soon as it is there: loading a name again then swaps
        its engine, with no restart."""
        if (self.engine_kind == "transformers" and self.cfg.engine != "vllm"
                and self.cfg.cpu.backend == "auto" and llamacpp.available()):
            from storyteller.serve.engines import choose_engine

            kind, _ = choose_engine(self.cfg.engine, self.cfg.cpu.backend)
            if kind == "llama.cpp":
                if self.engine_kind != kind:
                    self.say("engine: llama.cpp llama-server is installed now; models loaded "
                             "from here on run on it")
                self.engine_kind = kind
        return self.engine_kind

    def _stop_if_asked(self) -> None:
        if self.should_stop():
            raise InputError.at("storyteller serve", "stopping: the model was not loaded")

    @staticmethod
    def stop(engine: Engine) -> None:
        """Stop an engine this loader started (blocking)."""
        if engine.process is not None:
            engine.process.stop()

    def abort(self) -> None:
        """Stop the engines still starting (the server is going down)."""
        for process in list(self.starting):
            process.stop(grace=2)
