"""Requests the gateway cannot simply forward: `banned` words and phrases, and
`continue_final_message` (continue the last assistant message instead of answering it).

The gateway validates a request, then hands every one that has either of those to `handle`
with a SteeringRequest; everything else goes straight to the engine.

- continue_final_message: vLLM continues a message itself (its flag of that name, with
  add_generation_prompt false). llama-server and `transformers serve` cannot, so the chat is
  rendered here with the model's own chat template, cut after the last assistant text
  (storyteller.serve.templates), and sent to their /v1/completions; the answer comes back in
  chat shape, streamed or not, named as served. The answer is the new text only.
- banned: words → logit_bias -100 on their first tokens, merged with the client's own; every
  item is watched in the text (storyteller.serve.bans). A match is cut off, and generation goes
  on from the cut (the text so far sent as the start of the answer: the same continuation as
  above), first one token with the item's first tokens banned there, then freely; at most
  MAX_CUTS times, after which the answer ends at the last cut. Streams hold back only what
  could still become a banned item. The response says what was done:
  `"storyteller": {"banned": {"words_biased", "phrases_cut", "retries", "gave_up"}}`.
- logprobs / top_logprobs: asked of the engine on every attempt, each token's entry kept with
  the text it spells (storyteller.serve.trail): a cut drops the entries after it, a cut inside
  a token moves back to that token's start, a stream releases entries with their text. The
  tokens of the answer's logprobs join to exactly its text, streamed or not, in OpenAI's shape
  for the route asked (a continued chat's come in chat shape). transformers serve computes none
  (the gateway refuses them there before this module sees the request).

The engine is always asked to stream, so a cut stops its generation at once. What it is asked
is worked out first (storyteller.serve.steering_plan); here it is generated, cut and answered.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator

import httpx
from starlette.responses import JSONResponse, Response, StreamingResponse

from storyteller.serve import bans as banning
from storyteller.serve.params import ApiError
from storyteller.serve.steering_plan import Plan, SteeringRequest, attempt, plan
from storyteller.serve.trail import TokenTrail, entries_of, shaped

# The request keys this module answers for (the gateway's hook looks for these).
STEERED = ("banned", "continue_final_message")
# How many banned matches one answer may cut before it ends at the last cut.
MAX_CUTS = 8


def wants_steering(body: Any) -> bool:
    return isinstance(body, dict) and any(body.get(key) for key in STEERED)


@dataclass
class Outcome:
    text: str = ""
    finish: str | None = None
    cuts: int = 0
    retries: int = 0
    gave_up: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int = 0
    entries: list[dict] | None = None  # each token's logprobs (chat shape), where asked

    def report(self, plan: Plan) -> dict:
        report: dict[str, Any] = {}
        if plan.bans:
            report["banned"] = {"words_biased": plan.bans.words_biased,
                                "phrases_cut": self.cuts, "retries": self.retries,
                                "gave_up": self.gave_up}
        if plan.continuing:
            report["continued"] = True
        return report


# ------------------------------------------------------------------------------ generation

async def send(ctx: SteeringRequest, path: str, payload: dict) -> httpx.Response:
    """POST an engine-ready payload (attempt() translated it) to the engine, streamed."""
    from storyteller.serve.gateway import send_to_engine

    return await send_to_engine(ctx.engine.client, path, payload, ctx.engine.headers)


async def engine_pieces(ctx: SteeringRequest, path: str, payload: dict
                        ) -> AsyncIterator[tuple[str, str | None, dict | None, dict | None]]:
    """(text, finish reason, usage, logprobs) for each event of the engine's stream."""
    try:
        answer = await send(ctx, path, payload)
    except httpx.HTTPError as exc:
        raise ApiError(503, f"the engine of model {ctx.model.name!r} is not reachable "
                            f"({type(exc).__name__}); try again shortly", None,
                       "engine_unavailable") from None
    try:
        if answer.status_code != 200:
            detail = (await answer.aread()).decode("utf-8", "replace")
            kind = "invalid_request_error" if 400 <= answer.status_code < 500 else "engine_error"
            raise ApiError(answer.status_code if kind != "engine_error" else 502,
                           f"the engine refused the request: {detail[:500]}", None, kind)
        async for line in answer.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            try:
                event = json.loads(line[6:])
            except json.JSONDecodeError:
                continue
            if "error" in event:
                error = event["error"]
                raise ApiError(502, "the engine failed mid-story: " + str(
                    error.get("message") if isinstance(error, dict) else error)[:500], None,
                    "engine_error")
            usage = event.get("usage")
            for choice in event.get("choices") or []:
                piece = choice.get("text")
                if piece is None:
                    piece = (choice.get("delta") or {}).get("content")
                yield piece or "", choice.get("finish_reason"), usage, choice.get("logprobs")
                usage = None
            if usage:
                yield "", None, usage, None
    except httpx.HTTPError as exc:
        raise ApiError(502, f"the engine broke off the stream ({type(exc).__name__})", None,
                       "engine_error") from None
    finally:
        await answer.aclose()


def count_tokens(plan: Plan, text: str) -> int:
    if plan.tokenizer is None or not text:
        return 0
    return len(plan.tokenizer.encode(text, add_special_tokens=False))


async def generate(plan: Plan, index: int, outcome: Outcome
                   ) -> AsyncIterator[tuple[str, list[dict] | None]]:
    """The answer's text for choice `index`, piece by piece as it may be shown, each with the
    logprob entries of the tokens it spells (None: not asked); `outcome` is filled in as it
    goes (finish reason, cuts, usage, every entry)."""
    bans = plan.bans
    seed = plan.ctx.body.get("seed")
    seed = None if seed is None else seed + index
    text, released, ban_here = "", 0, None
    # With logprobs, text is released and cut only where a token ends (storyteller.serve.trail).
    trail = TokenTrail() if plan.alternatives is not None else None
    while True:
        remaining = plan.limit - count_tokens(plan, text) if plan.limit else None
        if remaining is not None and remaining <= 0:
            outcome.finish = "length"
            break
        one_step = ban_here is not None
        path, payload = attempt(plan, text, ban_here or {}, 1 if one_step else remaining, seed)
        ban_here, cut, finish = None, None, None
        pieces = engine_pieces(plan.ctx, path, payload)
        try:
            async for piece, reason, usage, logprobs in pieces:
                if usage and outcome.prompt_tokens is None:
                    outcome.prompt_tokens = usage.get("prompt_tokens")
                if usage and plan.tokenizer is None:
                    outcome.completion_tokens += usage.get("completion_tokens") or 0
                finish = reason or finish
                if trail is not None and (piece or logprobs):
                    trail.add(entries_of(logprobs, plan.alternatives), len(text) + len(piece))
                if piece:
                    text += piece
                    match = banning.find(bans, text, released)
                    if match is not None and match.end() < len(text):
                        cut = match
                        break
                safe = banning.hold_from(bans, text)
                if trail is not None:
                    safe = trail.boundary(safe)
                if safe > released:
                    yield text[released:safe], None if trail is None else trail.release(safe)
                    released = safe
        finally:
            await pieces.aclose()
        if cut is None:
            cut = banning.find(bans, text, released)
        if cut is not None:
            at = max(banning.cut_at(text, cut.start()), released)
            text = text[:trail.cut(at) if trail is not None else at]
            outcome.cuts += 1
            if outcome.cuts > MAX_CUTS:
                outcome.gave_up, outcome.finish = True, "stop"
                break
            ban_here = banning.first_token_bias(plan.tokenizer, " ".join(cut.group().split()))
            outcome.retries += 1
            continue
        if one_step and finish != "stop":
            continue  # the one token written with the ban: now on freely
        outcome.finish = finish or "stop"
        break
    if released < len(text) or (trail is not None and trail.pending()):
        yield text[released:], None if trail is None else trail.release(len(text))
    outcome.text = text
    outcome.entries = trail.entries if trail is not None else None
    if plan.tokenizer is not None:
        outcome.completion_tokens = count_tokens(plan, text)
    if outcome.prompt_tokens is None and plan.prompt is not None and plan.tokenizer is not None:
        outcome.prompt_tokens = count_tokens(plan, plan.prompt)


# ------------------------------------------------------------------------- the answers

def usage_of(outcomes: list[Outcome]) -> dict:
    prompt = outcomes[0].prompt_tokens or 0
    completion = sum(o.completion_tokens for o in outcomes)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def summed_report(plan: Plan, outcomes: list[Outcome]) -> dict:
    report = outcomes[0].report(plan)
    if "banned" in report and len(outcomes) > 1:
        for key in ("phrases_cut", "retries"):
            report["banned"][key] = sum(o.report(plan)["banned"][key] for o in outcomes)
        report["banned"]["gave_up"] = any(o.gave_up for o in outcomes)
    return report


async def answer(plan: Plan, n: int) -> Response:
    outcomes = [Outcome() for _ in range(n)]

    async def run(i: int) -> None:
        async for _ in generate(plan, i, outcomes[i]):
            pass

    try:
        await asyncio.gather(*(run(i) for i in range(n)))
    except ApiError as refused:
        return refused.response()
    chat = plan.ctx.route == "chat"
    choices = []
    for i, o in enumerate(outcomes):
        choice = {"index": i, "finish_reason": o.finish,
                  "logprobs": None if o.entries is None else shaped(o.entries, plan.ctx.route),
                  "storyteller": o.report(plan)}
        if chat:
            choice["message"] = {"role": "assistant", "content": o.text}
        else:
            choice["text"] = o.text
        choices.append(choice)
    return JSONResponse({"id": ("chatcmpl-" if chat else "cmpl-") + secrets.token_hex(12),
                         "object": "chat.completion" if chat else "text_completion",
                         "created": int(time.time()), "model": plan.name, "choices": choices,
                         "usage": usage_of(outcomes), "storyteller": summed_report(plan, outcomes)})


def chunk(plan: Plan, ident: str, index: int, piece: str | None = None,
          finish: str | None = None, first: bool = False, logprobs: dict | None = None,
          **extra) -> bytes:
    chat = plan.ctx.route == "chat"
    if chat:
        delta = {"role": "assistant", "content": ""} if first else \
            ({"content": piece} if piece else {})
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
    else:
        choice = {"index": index, "text": piece or "", "logprobs": logprobs,
                  "finish_reason": finish}
    event = {"id": ident, "object": "chat.completion.chunk" if chat else "text_completion",
             "created": int(time.time()), "model": plan.name, "choices": [choice], **extra}
    return f"data: {json.dumps(event)}\n\n".encode()


async def stream(plan: Plan, n: int) -> AsyncIterator[bytes]:
    """Server-sent events: each choice's pieces as released (choices interleaved by index),
    its last chunk with the finish reason and its report, the usage when asked, [DONE]."""
    chat = plan.ctx.route == "chat"
    ident = ("chatcmpl-" if chat else "cmpl-") + secrets.token_hex(12)
    outcomes = [Outcome() for _ in range(n)]
    queue: asyncio.Queue = asyncio.Queue()

    async def run(i: int) -> None:
        try:
            if chat:
                await queue.put(chunk(plan, ident, i, first=True))
            offset = 0  # where the piece starts in the answer (completions' text_offset)
            async for piece, entries in generate(plan, i, outcomes[i]):
                logprobs = None if entries is None else shaped(entries, plan.ctx.route, offset)
                await queue.put(chunk(plan, ident, i, piece, logprobs=logprobs))
                offset += len(piece)
            await queue.put(chunk(plan, ident, i, finish=outcomes[i].finish,
                                  storyteller=outcomes[i].report(plan)))
        except ApiError as refused:
            await queue.put(f"data: {json.dumps(refused.payload())}\n\n".encode())
        finally:
            await queue.put(None)

    tasks = [asyncio.create_task(run(i)) for i in range(n)]
    try:
        done = 0
        while done < n:
            item = await queue.get()
            if item is None:
                done += 1
            else:
                yield item
        if (plan.ctx.body.get("stream_options") or {}).get("include_usage"):
            event = {"id": ident, "object": "chat.completion.chunk" if chat else
                     "text_completion", "created": int(time.time()), "model": plan.name,
                     "choices": [], "usage": usage_of(outcomes)}
            yield f"data: {json.dumps(event)}\n\n".encode()
        yield b"data: [DONE]\n\n"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def handle(ctx: SteeringRequest) -> Response:
    """The answer to a request with `banned` or `continue_final_message` (validated by the
    gateway): JSON, or server-sent events when it streams."""
    try:
        steering = await asyncio.to_thread(plan, ctx)
    except ApiError as refused:
        return refused.response()
    n = int(ctx.body.get("n") or 1)
    if ctx.body.get("stream"):
        return StreamingResponse(stream(steering, n), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache"})
    return await answer(steering, n)
