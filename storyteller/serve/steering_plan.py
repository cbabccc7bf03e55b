"""What a steered request asks of the engine, worked out before anything is sent: the Plan
(bans and their tokenizer, the prompt rendered with the model's chat template where the engine
cannot continue a message itself, the sampling settings, the token limit, the logprobs asked)
and each attempt's request to the engine, continuing the answer so far.

storyteller.serve.steering runs the plan: it generates, cuts and answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import httpx

from storyteller.serve import bans as banning
from storyteller.serve.engine_params import engine_body
from storyteller.serve.params import ApiError, wanted_logprobs
from storyteller.serve.templates import TemplateError, content_text, render, tokenizer_of

# Keys of a client's request that are not sampling settings for the engine.
NOT_SAMPLING = {"model", "messages", "prompt", "stream", "n", "banned", "continue_final_message",
                "max_tokens", "max_completion_tokens", "logit_bias", "stream_options",
                "logprobs", "top_logprobs", "echo", "suffix", "user", "store", "metadata",
                "service_tier", "parallel_tool_calls", "response_format", "best_of",
                "add_generation_prompt"}


@dataclass
class SteeringRequest:
    """What steering.handle needs: the validated body, "chat" or "completions", the
    ServedModel (storyteller.serve.gateway; its `path` is the model directory, for the
    tokenizer), the Engine (storyteller.serve.registry). `send` is accepted for the gateway's
    convenience but not used: each attempt is translated for the engine here
    (engine_params.engine_body, then what only steering adds: vLLM's continue_final_message,
    which engine_body leaves out) and posted with gateway.send_to_engine. Streams are held on
    the engine by the gateway."""

    body: dict
    route: str
    model: Any
    engine: Any
    send: Callable[[str, dict], Awaitable[httpx.Response]] | None = None


@dataclass
class Plan:
    """One request's steering, worked out once for all its attempts and choices."""

    ctx: SteeringRequest
    bans: banning.BanList
    tokenizer: Any
    continuing: bool
    prompt: str | None  # the raw prompt, where the engine is sent /v1/completions
    sampling: dict
    limit: int | None
    alternatives: int | None = None  # top_logprobs per token; None: no logprobs asked

    @property
    def name(self) -> str:
        return self.ctx.model.name


def plan(ctx: SteeringRequest) -> Plan:
    """The steering of `ctx`, or an ApiError (400) naming what cannot be honoured."""
    body, route = ctx.body, ctx.route
    continuing = bool(body.get("continue_final_message"))
    if continuing and route != "chat":
        raise ApiError(400, "continue_final_message is for chat completions: a completion's "
                            "prompt is already continued", "continue_final_message")
    messages = body.get("messages") or []
    if continuing and (not messages or messages[-1].get("role") != "assistant"):
        raise ApiError(400, "continue_final_message needs the last message to be the "
                            "assistant's text to continue", "messages")
    needs_template = route == "chat" and ctx.engine.kind != "vllm"
    tokenizer = None
    if body.get("banned") or needs_template:
        path = getattr(ctx.model, "path", None)
        if not path:
            raise ApiError(400, f"model {ctx.model.name!r} was loaded without its directory, so "
                                "its tokenizer is unknown", "banned" if body.get("banned")
                           else "continue_final_message")
        tokenizer = tokenizer_of(str(path))
    try:
        bans = banning.ban_list(body.get("banned"), tokenizer) if body.get("banned") \
            else banning.BanList(())
    except banning.BanError as error:
        raise ApiError(400, error.message, error.param) from None
    prompt = None
    if route == "completions":
        prompt = body["prompt"][0] if isinstance(body["prompt"], list) else body["prompt"]
    elif needs_template:
        try:
            prompt = render(tokenizer, messages, continue_final=continuing)
        except TemplateError as error:
            raise ApiError(400, str(error), "continue_final_message") from None
    sampling = {k: v for k, v in body.items() if k not in NOT_SAMPLING and v is not None}
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    return Plan(ctx, bans, tokenizer, continuing, prompt, sampling, limit,
                wanted_logprobs(body, route))


def attempt(plan: Plan, text: str, extra_bias: dict[str, int], limit: int | None,
            seed: int | None) -> tuple[str, dict]:
    """(engine path, engine payload) that continues the answer `text` so far."""
    ctx, body = plan.ctx, dict(plan.sampling)
    if limit:
        body["max_tokens"] = limit
    if seed is not None:
        body["seed"] = seed
    bias = banning.merge_bias(ctx.body.get("logit_bias"), plan.bans.bias, extra_bias)
    if bias:
        body["logit_bias"] = bias
    body["model"] = ctx.model.name
    body["stream"] = True
    vllm_chat = ctx.route == "chat" and ctx.engine.kind == "vllm"
    if plan.alternatives is not None:  # in the shape of the route the engine is sent
        body.update({"logprobs": True, "top_logprobs": plan.alternatives} if vllm_chat
                    else {"logprobs": plan.alternatives})
    if vllm_chat:
        messages = [dict(m) for m in ctx.body["messages"]]
        if plan.continuing:
            messages[-1]["content"] = content_text(messages[-1].get("content")) + text
        elif text:
            messages.append({"role": "assistant", "content": text})
        body["messages"] = messages
        path, route = "/v1/chat/completions", "chat"
    else:
        body["prompt"] = plan.prompt + text
        path, route = "/v1/completions", "completions"
    payload = engine_body(body, route, ctx.model, ctx.engine.kind)
    payload.pop("n", None)
    payload["stream"] = True
    if vllm_chat and (plan.continuing or text):
        payload["continue_final_message"] = True
        payload["add_generation_prompt"] = False
    return path, payload
