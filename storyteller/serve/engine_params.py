"""The validated request as each engine takes it, and the engine's answer named as served.

storyteller.serve.params checks what a client sent; this module says it in the engine's terms:
vLLM takes OpenAI's parameters and its extras as they are, llama-server has its own names, and
transformers serve takes sampling beyond temperature / top-p only as a generation config.
Pure functions: the gateway does the I/O.
"""

from __future__ import annotations

import json
from typing import Any

from storyteller.serve.params import STEERING


def engine_body(body: dict, route: str, model: Any, engine_kind: str) -> dict:
    """The validated request as the engine takes it. `n` is kept for vLLM only: the gateway
    fans the other engines' requests out itself (storyteller.serve.fanout)."""
    out = {k: v for k, v in body.items() if v is not None and k not in STEERING}
    out["model"] = model.engine_model
    if engine_kind == "vllm":
        return out  # vLLM takes top_k, min_p, repetition_penalty, n, logprobs … as they are
    out.pop("n", None)
    if engine_kind == "llama.cpp":
        return llamacpp_body(out, route)
    return transformers_body(out, model)


def transformers_body(out: dict, model: Any) -> dict:
    """transformers serve takes sampling beyond temperature / top_p only as a generation
    config, which replaces the model's: restate its stop ids and defaults."""
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
    bias = out.pop("logit_bias", None)
    if bias:
        # generate's sequence_bias, one-token sequences (serve's chat route does the same with
        # logit_bias; its completions route would drop it).
        config["sequence_bias"] = [[[int(k)], float(v)] for k, v in bias.items()]
    if limit:
        out["max_tokens"] = limit
    out["generation_config"] = json.dumps(config)
    return out


def llamacpp_body(out: dict, route: str = "chat") -> dict:
    """llama-server's names: repeat_penalty, top_k 0 for no limit, a 32-bit seed (all ones
    means "random" there, so it is never sent), n_probs for the alternatives (at least 1: with
    0 it gives no log-probability at all; the gateway trims them back, fanout.LogprobShape).

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
    if route == "chat" and out.get("logprobs"):
        out["top_logprobs"] = max(1, out.get("top_logprobs", 0))
    elif route == "completions" and "logprobs" in out:
        out["logprobs"] = max(1, out["logprobs"])
    return out

def rename_model(payload: dict, name: str) -> dict:
    """The engine's answer under the name the model is served as."""
    if "model" in payload:
        payload["model"] = name
    return payload
