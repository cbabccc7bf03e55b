"""Answers the gateway rewrites on their way back: several stories (`n`) on an engine that
writes one per request, and log-probabilities in OpenAI's exact shape.

- `n` on llama.cpp and transformers serve: n requests, seeded seed, seed+1, … when a seed is
  given (so the n stories come back the same each time), concurrently on llama.cpp (its
  parallel slots decode them together) and one after another on transformers serve (one
  generation at a time, and a request's seed sets the process's random numbers). Merged into
  one answer: choices indexed 0..n-1, completion tokens summed (the prompt counted once, as
  OpenAI and vLLM count it); streamed, the n streams' events interleaved as they come, each
  with its choice index, one usage event at the end where asked, one [DONE].
- logprobs: llama.cpp gives chat's shape on both routes, each entry with its token id and
  at least one alternative; OpenAI's chat shape has no id and `top_logprobs` alternatives
  exactly, and the completions route has its own (tokens, token_logprobs, top_logprobs,
  text_offset). vLLM already answers in OpenAI's shapes, which pass unchanged.

Streams that need none of this never come here: the gateway relays their bytes unparsed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator, Awaitable, Callable

import httpx

Opener = Callable[[], Awaitable[httpx.Response]]


def seeded(body: dict, i: int) -> dict:
    """The i-th of n requests: n 1, and seed + i where a seed is given."""
    one = {**body, "n": 1}
    if body.get("seed") is not None:
        one["seed"] = body["seed"] + i
    return one


# ------------------------------------------------------------------------- logprobs' shape

class Shaper:
    """Puts one choice's events or answer into OpenAI's shape: its index, the served model
    name, logprobs with `alternatives` entries (None: logprobs were not asked, leave them).
    Keeps the text offset of a completions stream across its events."""

    def __init__(self, route: str, alternatives: int | None, name: str, index: int | None = None):
        self.route, self.alternatives, self.name, self.index = route, alternatives, name, index
        self.offsets: dict[int, int] = {}

    def payload(self, payload: dict) -> dict:
        if "model" in payload:
            payload["model"] = self.name
        for choice in payload.get("choices") or ():
            if self.index is not None:
                choice["index"] = self.index
            if choice.get("logprobs") and self.alternatives is not None:
                choice["logprobs"] = self.logprobs(choice["logprobs"], choice.get("index", 0))
            elif "logprobs" in choice and not choice["logprobs"]:
                choice["logprobs"] = None
        return payload

    def logprobs(self, logprobs: dict, index: int) -> dict:
        if "tokens" in logprobs:  # completions' own shape already (vLLM)
            return logprobs
        entries = [chat_entry(e, self.alternatives) for e in logprobs.get("content") or ()]
        if self.route == "chat":
            return {**logprobs, "content": entries}
        offset = self.offsets.get(index, 0)
        shaped = completions_logprobs(entries, offset)
        self.offsets[index] = offset + sum(len(e["token"]) for e in entries)
        return shaped


def chat_entry(entry: dict, alternatives: int) -> dict:
    """One token as OpenAI's chat logprobs give it: token, logprob, bytes, top_logprobs."""
    def one(e: dict) -> dict:
        return {"token": e["token"], "logprob": e["logprob"], "bytes": e.get("bytes")}
    return {**one(entry),
            "top_logprobs": [one(e) for e in (entry.get("top_logprobs") or ())][:alternatives]}


def completions_logprobs(entries: list[dict], offset: int = 0) -> dict:
    """OpenAI's completions shape from chat-shaped entries; text offsets from the start of
    the completion (`offset` for the tokens before these)."""
    offsets = []
    for entry in entries:
        offsets.append(offset)
        offset += len(entry["token"])
    return {"tokens": [e["token"] for e in entries],
            "token_logprobs": [e["logprob"] for e in entries],
            "top_logprobs": [{t["token"]: t["logprob"] for t in e["top_logprobs"]}
                             for e in entries],
            "text_offset": offsets}


# ------------------------------------------------------------------------ whole answers

def merge(payloads: list[dict]) -> dict:
    """n answers as one: the first's id, choices in order with index 0..n-1, completion tokens
    summed, the prompt counted once."""
    merged = {**payloads[0], "choices": []}
    for i, payload in enumerate(payloads):
        for choice in payload.get("choices") or ():
            merged["choices"].append({**choice, "index": i})
    usages = [p.get("usage") for p in payloads if p.get("usage")]
    if usages:
        merged["usage"] = sum_usage(usages)
    return merged


def sum_usage(usages: list[dict]) -> dict:
    prompt = usages[0].get("prompt_tokens", 0) or 0
    completion = sum(u.get("completion_tokens", 0) or 0 for u in usages)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


async def read_json(answer: httpx.Response) -> dict:
    try:
        return json.loads(await answer.aread())
    finally:
        await answer.aclose()


async def gather(openers: list[Opener], concurrent: bool) -> list[httpx.Response]:
    """Send each request (all at once, or each after the one before has been answered)."""
    if concurrent:
        return list(await asyncio.gather(*(open_() for open_ in openers)))
    answers = []
    for open_ in openers:
        answer = await open_()
        answers.append(answer)
        if answer.status_code == 200:
            await answer.aread()  # the next one starts when this one is done
    return answers


# ---------------------------------------------------------------------------- streams

def sse(event: dict) -> bytes:
    return f"data: {json.dumps(event)}\n\n".encode()


def broke_off(exc: Exception) -> dict:
    return {"error": {"message": f"the engine broke off the stream ({type(exc).__name__})",
                      "type": "engine_error", "param": None, "code": None}}


async def events(answer: httpx.Response) -> AsyncIterator[dict]:
    """An engine's server-sent events as dicts (no [DONE]); an engine that breaks off ends
    them with an error event rather than a silent cut."""
    try:
        async for line in answer.aiter_lines():
            if line.startswith("data: ") and line.strip() != "data: [DONE]":
                try:
                    yield json.loads(line[6:])
                except json.JSONDecodeError:
                    continue
    except httpx.HTTPError as exc:
        yield broke_off(exc)
    finally:
        await answer.aclose()


async def shaped_stream(answer: httpx.Response, shaper: Shaper) -> AsyncIterator[bytes]:
    """One engine stream with its events put in OpenAI's shape, ending with one [DONE] (every
    engine's stream ends the way OpenAI's does; transformers serve sends none)."""
    async for event in events(answer):
        yield sse(event if "error" in event else shaper.payload(event))
        if "error" in event:
            return
    yield b"data: [DONE]\n\n"


async def fanned_stream(first: list[httpx.Response], rest: list[Opener], shapers: list[Shaper],
                        include_usage: bool) -> AsyncIterator[bytes]:
    """n streams as one: `first` already answered 200 (all n when concurrent), `rest` opened
    one after another; events interleaved as they come, each stream's choices with its index,
    all with the first stream's id; each stream's usage event held back and summed into one
    at the end where the client asked for it."""
    usages: list[dict] = []
    ids: dict[str, Any] = {}

    async def one(answer_or_opener, shaper: Shaper) -> AsyncIterator[dict]:
        answer = answer_or_opener if isinstance(answer_or_opener, httpx.Response) \
            else await answer_or_opener()
        if answer.status_code != 200:
            detail = (await answer.aread()).decode("utf-8", "replace")[:500]
            await answer.aclose()
            yield {"error": {"message": f"the engine refused choice {shaper.index}: {detail}",
                             "type": "engine_error", "param": None, "code": None}}
            return
        async for event in events(answer):
            yield event if "error" in event else shaper.payload(event)

    streams = [one(a, s) for a, s in zip([*first, *rest], shapers)]
    source = interleave(streams[:len(first)]) if len(first) > 1 else chain(streams)
    async for event in source:
        if "error" in event:
            yield sse(event)
            return
        if event.get("usage") and not event.get("choices"):
            usages.append(event["usage"])
            ids.setdefault("last", event)
            continue
        if "id" in event:
            event["id"] = ids.setdefault("id", event["id"])
        event.pop("usage", None)
        yield sse(event)
    if include_usage and usages:
        last = {**ids["last"], "choices": [], "usage": sum_usage(usages)}
        if "id" in ids:
            last["id"] = ids["id"]
        yield sse(last)
    yield b"data: [DONE]\n\n"


async def chain(streams: list[AsyncIterator[dict]]) -> AsyncIterator[dict]:
    for stream in streams:
        async for item in stream:
            yield item


async def interleave(streams: list[AsyncIterator[dict]]) -> AsyncIterator[dict]:
    """Items of all `streams` as each comes; closing this closes them all (a client that
    goes away stops every story it asked for)."""
    queue: asyncio.Queue = asyncio.Queue()
    finished = object()

    async def pump(stream: AsyncIterator[dict]) -> None:
        try:
            async for item in stream:
                await queue.put(item)
        finally:
            await queue.put(finished)

    tasks = [asyncio.create_task(pump(s)) for s in streams]
    try:
        running = len(tasks)
        while running:
            item = await queue.get()
            if item is finished:
                running -= 1
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
