"""The engines behind the endpoint and how they are launched: `vllm serve` on a GPU; on a CPU
llama.cpp's `llama-server` where it is installed (storyteller.serve.llamacpp), else
`transformers serve`. Each runs as a child process on a private loopback port; the gateway
(storyteller.serve.gateway) is the only thing that talks to it.

Command lines are pure functions of the settings, so they are unit-tested without either engine."""

from __future__ import annotations

import json
import os
import secrets
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from storyteller.errors import InputError
from storyteller.models import cpu_has_native_bf16, gpu_available, gpu_count, vllm_installed
from storyteller.processes import Process, free_port
from storyteller.serve import llamacpp
from storyteller.serve.config import ServeConfig
from storyteller.serve.preflight import Adapter, lora_rank_limit, read_json


@dataclass(frozen=True)
class EngineLaunch:
    kind: str  # vllm | llama.cpp | transformers
    command: list[str]
    port: int
    # Model name the engine expects in requests (vLLM, llama.cpp: the served name;
    # transformers serve: the directory it loaded).
    engine_model: str
    # Key the gateway sends to the engine (vLLM and llama.cpp check it; transformers serve has
    # no check and listens on loopback only).
    engine_key: str | None
    env: dict[str, str]
    # llama.cpp: (model directory, GGUF file) to convert before starting, unless done before.
    convert: tuple[Path, Path] | None = None

    @property
    def title(self) -> str:
        return {"vllm": "vLLM", "llama.cpp": "llama.cpp llama-server"}.get(
            self.kind, "transformers serve")


def choose_engine(requested: str, cpu_backend: str = "auto") -> tuple[str, str]:
    """(engine, why) for `requested` auto | vllm | cpu; on a CPU, `cpu_backend` auto |
    llama.cpp | transformers picks which CPU engine."""
    gpu = gpu_available()
    if requested == "vllm":
        if not gpu:
            raise InputError.at("--engine vllm", "vLLM needs a CUDA GPU and none is visible",
                                "use --engine cpu or auto")
        if not vllm_installed():
            raise InputError.at("--engine vllm", "the vllm package is not installed",
                                "pip install vllm (on the GPU machine), or use --engine cpu")
        return "vllm", "asked for vLLM"
    if requested == "auto" and gpu:
        if vllm_installed():
            return "vllm", "a CUDA GPU and vLLM are present"
        return "transformers", "a CUDA GPU but no vllm package: transformers serve on the GPU"
    why = "asked for the CPU engine" if requested == "cpu" else "no CUDA GPU"
    if cpu_backend == "transformers":
        return "transformers", f"{why}; cpu.backend=transformers"
    if llamacpp.available():
        return "llama.cpp", f"{why}: llama.cpp's {llamacpp.server_binary()}"
    if cpu_backend == "llama.cpp":
        raise InputError.at("cpu.backend llama.cpp", f"llama-server is not installed under "
                            f"{llamacpp.home()} nor on PATH", "run scripts/llama-cpp.sh, or "
                            "use --set cpu.backend=transformers")
    return "transformers", (f"{why}; llama-server is not installed (scripts/llama-cpp.sh "
                            "builds it, ~3x faster): transformers serve")


def max_model_len(model_dir: Path, requested: int) -> int:
    """The requested limit, else the model's own (max_position_embeddings)."""
    if requested:
        return requested
    config = read_json(model_dir / "config.json") or {}
    return int(config.get("max_position_embeddings") or 2048)


def vllm_command(cfg: ServeConfig, model_dir: Path, served_name: str, adapters: list[Adapter],
                 adapter_ranks: list[int], port: int, engine_key: str, gpus: int) -> list[str]:
    """`vllm serve` for the model: its served name, length limit, chat template, key, adapters
    served unmerged as LoRA, and tensor parallelism over `gpus`."""
    command = [sys.executable, "-m", "vllm.entrypoints.cli.main", "serve", str(model_dir),
               "--served-model-name", served_name,
               "--host", "127.0.0.1", "--port", str(port),
               "--max-model-len", str(max_model_len(model_dir, cfg.max_model_len)),
               "--chat-template", str(model_dir / "chat_template.jinja"),
               "--generation-config", "auto",
               "--dtype", cfg.vllm.dtype,
               "--gpu-memory-utilization", str(cfg.vllm.gpu_memory_utilization),
               "--api-key", engine_key]
    tensor_parallel = cfg.vllm.tensor_parallel_size or gpus
    if tensor_parallel > 1:
        command += ["--tensor-parallel-size", str(tensor_parallel)]
    if adapters:
        command += ["--enable-lora", "--max-loras", str(len(adapters)),
                    "--max-lora-rank", str(lora_rank_limit(max(adapter_ranks))),
                    "--lora-modules", *[f"{a.name}={a.path}" for a in adapters]]
    return command


def transformers_command(cfg: ServeConfig, model_dir: Path, port: int, device: str) -> list[str]:
    """`transformers serve` with the model preloaded, on loopback."""
    dtype = cfg.cpu.dtype
    if dtype == "auto":
        dtype = "bfloat16" if device == "cuda" else cpu_dtype()
    command = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(model_dir),
               "--host", "127.0.0.1", "--port", str(port), "--device", device,
               "--dtype", dtype, "--log-level", "warning"]
    if cfg.cpu.continuous_batching:
        command += ["--continuous-batching",
                    "--cb-max-memory-percent", str(cfg.cpu.kv_cache_memory_fraction)]
    return command


def cpu_dtype() -> str:

    return "bfloat16" if cpu_has_native_bf16() else "float32"


def plan_launch(cfg: ServeConfig, engine: str, model_dir: Path, served_name: str,
                adapters: list[Adapter]) -> EngineLaunch:
    port = free_port()
    env = {"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
           "TOKENIZERS_PARALLELISM": "false"}
    if engine == "vllm":
        key = secrets.token_urlsafe(24)
        ranks = [int((read_json(a.path / "adapter_config.json") or {}).get("r") or 0)
                 for a in adapters]
        command = vllm_command(cfg, model_dir, served_name, adapters, ranks, port, key,
                               gpu_count())
        return EngineLaunch("vllm", command, port, served_name, key, env)
    if adapters:
        raise InputError.at("--adapter", "the CPU engines cannot serve adapters unmerged",
                            "merge each run into a model directory (storyteller merge) and "
                            "serve that, or serve on a GPU with vLLM")
    if engine == "llama.cpp":
        return llamacpp_launch(cfg, model_dir, served_name, port, env)
    device = "cuda" if gpu_available() else "cpu"
    if device == "cpu" and cfg.cpu.threads:
        env["OMP_NUM_THREADS"] = str(cfg.cpu.threads)
    command = transformers_command(cfg, model_dir, port, device)
    return EngineLaunch("transformers", command, port, str(model_dir), None, env)


def llamacpp_launch(cfg: ServeConfig, model_dir: Path, served_name: str, port: int,
                    env: dict[str, str]) -> EngineLaunch:
    from storyteller.models import cache_root

    key = secrets.token_urlsafe(24)
    limit = max_model_len(model_dir, cfg.max_model_len)
    gguf = llamacpp.gguf_path(model_dir, cache_root(), cfg.cpu.weights)
    command = llamacpp.llamacpp_command(
        llamacpp.server_binary(), gguf, model_dir.resolve() / "chat_template.jinja",
        served_name, port, key, cfg.cpu.parallel, cfg.cpu.threads,
        llamacpp.context_tokens(limit, cfg.cpu.parallel, cfg.cpu.context_tokens),
        read_json(model_dir / "generation_config.json") or {},
        llamacpp.kv_cache_type(cfg.cpu.kv_cache, cpu_has_native_bf16())) \
        + list(cfg.cpu.extra_args)
    return EngineLaunch("llama.cpp", command, port, served_name, key, env,
                        convert=(model_dir, gguf))


class EngineProcess(Process):
    """The engine child process (storyteller.processes.Process): its own process group, its
    output kept, stopped with the group, and gone with the server however the server ends (a
    llama-server left behind holds gigabytes and its port)."""

    def __init__(self, launch: EngineLaunch, log: Path | None = None):
        # vLLM runs its engine core and GPU workers as child processes of its own, which the
        # parent-death signal does not reach: a watchdog ends its whole group too.
        super().__init__(launch.command, f"engine {launch.kind}", env=launch.env, log=log,
                         die_with_parent=True,
                         guard="both" if launch.kind == "vllm" else "signal")
        self.launch = launch

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.launch.port}"

    def wait_healthy(self, timeout: float, progress=None) -> None:
        """Until the engine's /health answers; fail with its last output if it exits first."""
        super().wait_healthy(f"{self.url}/health", timeout, progress,
                             slow_hint="raise serve's startup_timeout")

    def warm_up(self, body: dict, timeout: float = 300) -> None:
        """One tiny request, so the first user does not pay for lazy initialisation."""
        headers = {"content-type": "application/json"}
        if self.launch.engine_key:
            headers["authorization"] = f"Bearer {self.launch.engine_key}"
        request = urllib.request.Request(f"{self.url}/v1/chat/completions", method="POST",
                                         data=json.dumps(body).encode(), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
        except (urllib.error.URLError, OSError):
            pass  # a failing engine shows itself on the first real request, with its message
