"""Engines that write stories for chat requests: in-process transformers (CPU or GPU), vLLM
(GPU), or any OpenAI-compatible endpoint. All three take the same requests (messages from the one
prompt renderer, a seed each) and a named sampling preset, and return `Generation`s."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from storyteller.errors import InputError
from storyteller.decode import Generation, generate_batch
from storyteller.models import ModelSource, load_for_inference, vllm_available
from storyteller.prompts import prompt_ids
from storyteller.client import ClientError, ModelNotFound, StoryClient
from storyteller.sampling import Sampling

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Request:
    key: str
    messages: list[dict[str, str]]
    seed: int


class TransformersEngine:
    """Batched generation in this process; prompts are sorted by length so a batch pads little."""

    name = "transformers"

    def __init__(self, source: ModelSource, batch_size: int = 8, device: str = "cpu", dtype=None):
        self.model, self.tokenizer = load_for_inference(source, dtype=dtype, device=device)
        self.batch_size = batch_size

    def tokenize(self, messages: list[dict[str, str]]) -> list[int]:
        return prompt_ids(self.tokenizer, messages)

    def generate(self, requests: Sequence[Request], sampling: Sampling,
                 on_done: Progress = lambda n: None) -> dict[str, Generation]:
        prompts = {r.key: self.tokenize(r.messages) for r in requests}
        ordered = sorted(requests, key=lambda r: len(prompts[r.key]))
        results: dict[str, Generation] = {}
        for start in range(0, len(ordered), self.batch_size):
            batch = ordered[start:start + self.batch_size]
            generations = generate_batch(self.model, self.tokenizer, [prompts[r.key] for r in batch],
                                         [r.seed for r in batch], sampling)
            results.update(zip((r.key for r in batch), generations))
            on_done(len(batch))
        return results

    def close(self) -> None:
        del self.model


class VllmEngine:
    """vLLM on a GPU: the whole request list at once (continuous batching); an adapter is served
    as a LoRA on its base, as `storyteller serve` does. Per-request seeds keep stories fixed."""

    name = "vllm"

    def __init__(self, source: ModelSource, seed: int = 0, max_model_len: int = 4096,
                 gpu_memory_utilization: float = 0.5):
        from vllm import LLM

        self.source = source
        rank = int(source.metadata.get("lora", {}).get("r", 16))
        self.llm = LLM(model=str(source.weights), tokenizer=str(source.tokenizer), seed=seed,
                       enable_lora=source.adapter is not None, max_lora_rank=max(rank, 8),
                       max_model_len=max_model_len,
                       gpu_memory_utilization=gpu_memory_utilization)

    def generate(self, requests: Sequence[Request], sampling: Sampling,
                 on_done: Progress = lambda n: None) -> dict[str, Generation]:
        from vllm import SamplingParams

        lora = None
        if self.source.adapter is not None:
            from vllm.lora.request import LoRARequest

            lora = LoRARequest("tuned", 1, str(self.source.adapter))
        params = [SamplingParams(**vllm_sampling(sampling, r.seed)) for r in requests]
        started = time.perf_counter()
        outputs = self.llm.chat([r.messages for r in requests], sampling_params=params,
                                lora_request=lora, use_tqdm=False)
        seconds = time.perf_counter() - started
        on_done(len(requests))
        return {r.key: Generation(o.outputs[0].text.strip(), o.outputs[0].finish_reason or "length",
                                  len(o.outputs[0].token_ids), seconds)
                for r, o in zip(requests, outputs)}

    def close(self) -> None:
        import gc

        import torch

        # The engine core's memory goes back only once nothing holds the LLM; the next model
        # (the baseline) and the perplexity pass need it.
        del self.llm
        gc.collect()
        torch.cuda.empty_cache()


def vllm_sampling(sampling: Sampling, seed: int) -> dict[str, Any]:
    """Sampling settings as vLLM SamplingParams keyword arguments, for one request's seed."""
    return {"temperature": sampling.temperature, "top_p": sampling.top_p,
            "top_k": sampling.top_k if sampling.top_k else -1,
            "repetition_penalty": sampling.repetition_penalty, "max_tokens": sampling.max_tokens,
            "seed": seed}


class EndpointEngine:
    """Any OpenAI-compatible server, through storyteller.client (timeouts, retries,
    typed errors): one chat completion per request, `workers` at a time. The key, if the
    server needs one, comes from $STORYTELLER_API_KEY."""

    name = "endpoint"

    def __init__(self, url: str, model: str, workers: int = 8, timeout: float = 600.0):
        self.client = StoryClient(url, api_key=os.environ.get("STORYTELLER_API_KEY"),
                                  timeout=timeout)
        self.model, self.workers = model, workers

    def complete(self, request: Request, sampling: Sampling) -> Generation:
        sampling = Sampling.from_preset(sampling, seed=request.seed)
        started = time.perf_counter()
        try:
            answer = self.client.chat(self.model, request.messages, sampling)
        except ModelNotFound as error:
            raise InputError.at(f"{self.client.root}/v1/chat/completions", error.message,
                                f"check that the server serves a model named {self.model!r}") from None
        except ClientError as error:
            raise InputError.at(self.client.endpoint, error.message, error.hint) from None
        return Generation(answer.text.strip(), answer.finish_reason or "length",
                          int(answer.completion_tokens or 0), time.perf_counter() - started)

    def generate(self, requests: Sequence[Request], sampling: Sampling,
                 on_done: Progress = lambda n: None) -> dict[str, Generation]:
        def one(request: Request) -> tuple[str, Generation]:
            generation = self.complete(request, sampling)
            on_done(1)
            return request.key, generation

        with ThreadPoolExecutor(self.workers) as pool:
            return dict(pool.map(one, requests))

    def close(self) -> None:
        self.client.close()


def open_engine(kind: str, ref: str, source: ModelSource | None, *, endpoint: str = "",
                batch_size: int = 8, seed: int = 0, timeout: float = 600.0,
                gpu_memory_utilization: float = 0.5):
    """The engine `kind` (auto, transformers, vllm, endpoint) for model `ref`."""
    import torch

    if kind == "endpoint" or (kind == "auto" and endpoint):
        return EndpointEngine(endpoint, ref, workers=batch_size, timeout=timeout)
    assert source is not None
    if kind == "vllm" or (kind == "auto" and vllm_available()):
        if not vllm_available():
            raise InputError.at("generation.engine", "vllm needs a CUDA GPU and the vllm package",
                                "use engine auto or transformers on this machine")
        return VllmEngine(source, seed=seed, gpu_memory_utilization=gpu_memory_utilization)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    return TransformersEngine(source, batch_size=batch_size, device=device, dtype=dtype)
