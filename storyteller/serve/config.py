"""The serve stage's configuration (every option of `storyteller serve`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from storyteller.config import require

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class VllmConfig:
    # Fraction of GPU memory vLLM may take for weights and KV cache.
    gpu_memory_utilization: float = 0.9
    # GPUs to shard the model over; 0: every visible GPU.
    tensor_parallel_size: int = 0
    # dtype of the weights on the GPU (auto: the model's, bf16 for fp32 checkpoints on GPUs
    # that have it).
    dtype: str = "auto"

    def __post_init__(self):
        require(0 < self.gpu_memory_utilization <= 1, "gpu_memory_utilization", "must be in (0, 1]")
        require(self.tensor_parallel_size >= 0, "tensor_parallel_size", "must be 0 or more")


@dataclass
class CpuConfig:
    # The CPU engine. auto: llama.cpp's llama-server where scripts/llama-cpp.sh installed it
    # (a GGUF of `weights` converted from the model directory once, continuous batching with
    # each request sampled as it asks), else `transformers serve`.
    backend: Literal["auto", "llama.cpp", "transformers"] = "auto"
    # llama.cpp: requests decoded together (more wait in a queue).
    parallel: int = 8
    # CPU threads of the engine: llama.cpp's --threads, transformers serve's OMP_NUM_THREADS
    # (0: every core). 1 where the machine trains while it serves: an engine whose threads wait
    # for each other at every step crawls when another process holds a core (docs/serve.md).
    threads: int = 0
    # llama.cpp: tokens of KV cache, split evenly between the parallel requests (0: the
    # model's limit for each).
    context_tokens: int = 0
    # llama.cpp: the KV cache's number type. auto: bf16 where the CPU computes bf16 natively
    # (AVX512-BF16 or AMX; attention over it is faster there, 8 streams ~15% faster in
    # docs/BENCHMARKS.md), else f16, llama.cpp's own default. f32 is the slowest here.
    kv_cache: Literal["auto", "f16", "bf16", "f32"] = "auto"
    # llama.cpp: the weights' GGUF number type, converted from the model directory once per
    # type and cached (storyteller.serve.llamacpp.WEIGHTS). q8_0 (8-bit blocks, a quarter the
    # size) by default: one stream 1.7-1.8x float32's tokens/s, 8 streams 1.2x, and its stories
    # through the endpoint no worse than float32's on any quality metric of the quickstart
    # evaluation (paired intervals; they are ~9% shorter). f32: the merged model's own numbers
    # (served stories equal in-process ones); bf16 / f16: half the size; q4_k_m: 4-5-bit
    # blocks (needs llama-quantize). docs/BENCHMARKS.md, "Quantised CPU serving".
    weights: Literal["f32", "bf16", "f16", "q8_0", "q4_k_m"] = "q8_0"
    # llama.cpp: more llama-server flags, appended as given (e.g. ["--poll", "0"]).
    extra_args: list[str] = field(default_factory=list)
    # transformers serve only, from here on.
    # Continuous batching (paged attention) in `transformers serve`: concurrent requests share
    # forward passes instead of queueing (about 4x the throughput of 8 streams, docs/
    # BENCHMARKS.md). Off by default: in this mode transformers serve samples every request with
    # the settings of the first one it got (one generation config for the whole batch), so
    # temperature, top-p, seeds and presets would be ignored. Turn it on for a server whose
    # clients all ask with the same settings.
    continuous_batching: bool = False
    # Share of the machine's memory the continuous-batching KV cache may take. transformers
    # serve would otherwise reserve 60% of all RAM on a CPU, per server.
    kv_cache_memory_fraction: float = 0.1
    # dtype on the CPU: fp32 unless the CPU has native bf16 (see storyteller.finetune.model).
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"

    def __post_init__(self):
        require(0 < self.kv_cache_memory_fraction <= 0.9, "kv_cache_memory_fraction",
                "must be in (0, 0.9]")
        require(1 <= self.parallel <= 256, "parallel", "must be in [1, 256]")
        require(self.threads >= 0, "threads", "must be 0 (every core) or more")
        require(self.context_tokens >= 0, "context_tokens", "must be 0 (automatic) or more")


@dataclass
class ServeConfig:
    # A model directory written by `storyteller merge` (or any HF model directory).
    model: str = ""
    # The name clients ask for (default: the model directory's name).
    served_name: str = ""
    # auto: vLLM where a CUDA GPU and the vllm package are present, else the CPU engine
    # (cpu.backend).
    engine: Literal["auto", "vllm", "cpu"] = "auto"
    host: str = "127.0.0.1"
    port: int = 8000
    # Required for any host other than loopback. Read from $STORYTELLER_API_KEY when empty.
    api_key: str = ""
    # Adapters served unmerged next to the model (vLLM only), each `path` or `name=path`.
    adapters: list[str] = field(default_factory=list)
    # Longest prompt + story in tokens (0: the model's own limit).
    max_model_len: int = 0
    # Seconds to wait for the engine to load and answer its health check.
    startup_timeout: float = 900.0
    vllm: VllmConfig = field(default_factory=VllmConfig)
    cpu: CpuConfig = field(default_factory=CpuConfig)

    def __post_init__(self):
        require(0 < self.port < 65536, "port", "must be a TCP port (1-65535)")
        require(self.max_model_len >= 0, "max_model_len", "must be 0 (the model's) or more")
        require(self.startup_timeout > 0, "startup_timeout", "must be positive")
