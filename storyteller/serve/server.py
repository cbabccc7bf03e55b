"""`storyteller serve`: preflight, launch the engine of --model, then run the gateway in front
of it until interrupted. More models are loaded and unloaded while it runs (admin routes,
storyteller.serve.admin), each on its own engine; every engine goes down with the server,
however the server ends (storyteller.processes: the parent-death signal, else a watchdog)."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

from storyteller.errors import InputError, Problem
from storyteller.processes import check_port
from storyteller.serve.config import LOOPBACK, ServeConfig
from storyteller.serve.engines import choose_engine, plan_launch
from storyteller.serve.fleet import Loader, ModelRef, PreflightError, check_ref, resolve_ref
from storyteller.serve.gateway import GatewaySettings
from storyteller.serve.preflight import Adapter, check_adapter, parse_adapter

__all__ = ["Plan", "PreflightError", "describe", "plan", "resolve_key", "serve"]


@dataclass(frozen=True)
class Plan:
    engine: str
    why: str
    model_dir: Path
    served_name: str
    adapters: list[Adapter]
    api_key: str | None
    # The embedded base model's name when --model names one (smollm2-135m, tiny-random).
    base: str | None = None

    @property
    def ref(self) -> ModelRef:
        return ModelRef(self.model_dir, self.base)


def resolve_key(cfg: ServeConfig) -> str | None:
    return cfg.api_key or os.environ.get("STORYTELLER_API_KEY") or None


def plan(cfg: ServeConfig) -> Plan:
    """Everything checked before anything starts: the model, its adapters, the engine, the
    binding rule. Raises with every problem at once."""
    if not cfg.model:
        raise InputError.at("--model", "no model to serve",
                            "pass a directory written by storyteller merge, e.g. "
                            "models/quickstart, or a base model: smollm2-135m")
    ref = resolve_ref(cfg.model)
    problems: list[Problem] = check_ref(ref)
    adapters = [parse_adapter(spec) for spec in cfg.adapters]
    for adapter in adapters:
        problems += check_adapter(adapter, ref.model_dir)
    names = [a.name for a in adapters]
    served_name = cfg.served_name or ref.default_name
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
    return Plan(engine, why, ref.model_dir, served_name, adapters, key, ref.base)


def serve(cfg: ServeConfig, say=print, log: Path | None = None) -> None:
    """Run until SIGINT / SIGTERM (uvicorn turns both into a graceful stop)."""
    import uvicorn

    from storyteller.serve.admin import admin_routes, watch_engines
    from storyteller.serve.gateway import create_app
    from storyteller.serve.registry import Registry

    the_plan = plan(cfg)
    check_port(cfg.host, cfg.port)
    server: uvicorn.Server | None = None
    died: list[str] = []
    loader = Loader(cfg, the_plan.engine, log, say,
                    should_stop=lambda: bool(server and server.should_exit))
    registry = Registry()
    say(f"engine: {the_plan.engine} ({the_plan.why})")
    try:
        engine, models = loader.load(the_plan.served_name, the_plan.ref, the_plan.adapters,
                                     check=False)
        registry.add(models, engine, default=True)
        settings = GatewaySettings(engine.url, engine.kind, {m.name: m for m in models},
                                   api_key=the_plan.api_key, engine_key=engine.key)

        def on_empty(why: str) -> None:
            died.append(why)
            server.should_exit = True

        app = create_app(settings, registry,
                         routes=admin_routes(registry, loader, the_plan.api_key,
                                             settings.created, say),
                         background=[lambda: watch_engines(registry, say, on_empty)])
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        say(f"serving {', '.join(registry.models)} at http://{host}:{cfg.port}/v1 "
            f"({'API key required' if the_plan.api_key else 'no API key: loopback only'}); "
            "Ctrl+C stops it")
        server = uvicorn.Server(uvicorn.Config(app, host=cfg.host, port=cfg.port,
                                               log_level="warning", access_log=False))
        # uvicorn re-raises the signal that stopped it once it is done, under the handler
        # that was there before: SIGTERM (a supervisor's) must then stop as Ctrl+C does, with
        # the engines, not end the process before they are stopped.
        signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
        server.run()
        if died:
            raise InputError.at(f"engine {the_plan.engine}", f"{died[0]}; see its last lines "
                                "above", "start storyteller serve again")
    finally:
        loader.abort()
        for engine in {*registry.engines(), *registry.retired}:
            loader.stop(engine)


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
