"""`storyteller serve`: preflight, launch the engine, then run the gateway in front of it until
interrupted; the engine goes down with the gateway."""

from __future__ import annotations

import os
import signal
import time
from threading import Thread
from dataclasses import dataclass
from pathlib import Path

from storyteller.errors import InputError, Problem, StorytellerError
from storyteller.processes import check_port
from storyteller.serve import llamacpp
from storyteller.serve.config import LOOPBACK, ServeConfig
from storyteller.serve.engines import (EngineProcess, choose_engine, max_model_len,
                                       plan_launch)
from storyteller.serve.gateway import GatewaySettings, ServedModel
from storyteller.serve.preflight import (Adapter, check_adapter, check_model, parse_adapter,
                                         read_json)


class PreflightError(StorytellerError):
    pass


@dataclass(frozen=True)
class Plan:
    engine: str
    why: str
    model_dir: Path
    served_name: str
    adapters: list[Adapter]
    api_key: str | None


def resolve_key(cfg: ServeConfig) -> str | None:
    return cfg.api_key or os.environ.get("STORYTELLER_API_KEY") or None


def plan(cfg: ServeConfig) -> Plan:
    """Everything checked before anything starts: the model, its adapters, the engine, the
    binding rule. Raises with every problem at once."""
    if not cfg.model:
        raise InputError.at("--model", "no model to serve",
                            "pass a directory written by storyteller merge, e.g. models/quickstart")
    model_dir = Path(cfg.model).expanduser()
    problems: list[Problem] = check_model(model_dir)
    adapters = [parse_adapter(spec) for spec in cfg.adapters]
    for adapter in adapters:
        problems += check_adapter(adapter, model_dir)
    names = [a.name for a in adapters]
    served_name = cfg.served_name or model_dir.name
    if len(set(names + [served_name])) != len(names) + 1:
        problems.append(Problem("--adapter", f"names must differ from each other and from the "
                                f"model's ({served_name}): {', '.join(names)}",
                                "name them: --adapter NAME=PATH"))
    key = resolve_key(cfg)
    if cfg.host not in LOOPBACK and not key:
        problems.append(Problem(f"--host {cfg.host}", "binding beyond this machine needs an API key",
                                "pass --api-key KEY or set STORYTELLER_API_KEY (or keep the "
                                "default --host 127.0.0.1)"))
    if problems:
        raise PreflightError(*problems)
    engine, why = choose_engine(cfg.engine, cfg.cpu.backend)
    return Plan(engine, why, model_dir, served_name, adapters, key)


def served_models(cfg: ServeConfig, the_plan: Plan, engine_model: str) -> dict[str, ServedModel]:
    limit = max_model_len(the_plan.model_dir, cfg.max_model_len)
    generation = read_json(the_plan.model_dir / "generation_config.json") or {}
    metadata = read_json(the_plan.model_dir / "storyteller.json") or {}
    models = {the_plan.served_name: ServedModel(the_plan.served_name, engine_model, limit,
                                                metadata, generation)}
    for adapter in the_plan.adapters:
        meta = read_json(adapter.path / "storyteller.json") or metadata
        # vLLM names an adapter by its --lora-modules name.
        models[adapter.name] = ServedModel(adapter.name, adapter.name, limit, meta, generation)
    return models


def serve(cfg: ServeConfig, say=print, log: Path | None = None) -> None:
    """Run until SIGINT / SIGTERM."""
    import uvicorn

    from storyteller.serve.gateway import create_app

    the_plan = plan(cfg)
    check_port(cfg.host, cfg.port)
    launch = plan_launch(cfg, the_plan.engine, the_plan.model_dir, the_plan.served_name,
                         the_plan.adapters)
    say(f"engine: {launch.title} ({the_plan.why}); loading {the_plan.model_dir} …")
    if launch.convert and not launch.convert[1].is_file():
        say(f"converting the model to float32 GGUF for llama.cpp (once): {launch.convert[1]}")
        llamacpp.ensure_gguf(*launch.convert)
    engine = EngineProcess(launch, log)
    try:
        engine.wait_healthy(cfg.startup_timeout)
        engine.warm_up({"model": launch.engine_model, "max_tokens": 1,
                        "messages": [{"role": "user", "content": "Hello"}]})
        settings = GatewaySettings(engine.url, launch.kind,
                                   served_models(cfg, the_plan, launch.engine_model),
                                   api_key=the_plan.api_key, engine_key=launch.engine_key)
        app = create_app(settings)
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        say(f"serving {', '.join(settings.models)} at http://{host}:{cfg.port}/v1 "
            f"({'API key required' if the_plan.api_key else 'no API key: loopback only'}); "
            "Ctrl+C stops it")
        server = uvicorn.Server(uvicorn.Config(app, host=cfg.host, port=cfg.port,
                                               log_level="warning", access_log=False))
        # SIGTERM (e.g. from a supervisor) stops as Ctrl+C does, engine included.
        signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
        watchdog = Thread(target=watch_engine, args=(engine, server, say), daemon=True)
        watchdog.start()
        server.run()
        if engine.process.poll() is not None:
            raise InputError.at(f"engine {launch.kind}", f"exited with code "
                                f"{engine.process.returncode}:\n  " + engine.last_words(),
                                "see the lines above; start storyteller serve again")
    finally:
        engine.stop()


def watch_engine(engine: EngineProcess, server, say, every: float = 1.0) -> None:
    """An engine that dies takes the endpoint down with it, with its last output, rather than
    leaving a gateway that answers 503 forever."""
    while not server.should_exit:
        if engine.process.poll() is not None:
            say(f"error: the engine exited with code {engine.process.returncode}")
            server.should_exit = True
            return
        time.sleep(every)


def describe(cfg: ServeConfig) -> dict:
    """What `storyteller serve --dry-run` prints: the plan and the engine command line."""
    the_plan = plan(cfg)
    launch = plan_launch(cfg, the_plan.engine, the_plan.model_dir, the_plan.served_name,
                         the_plan.adapters)
    command = [("<engine key>" if launch.engine_key and part == launch.engine_key else part)
               for part in launch.command]
    return {"engine": launch.kind, "why": the_plan.why, "models": [the_plan.served_name] +
            [a.name for a in the_plan.adapters], "host": cfg.host, "port": cfg.port,
            "api_key": bool(the_plan.api_key), "engine_command": command}
