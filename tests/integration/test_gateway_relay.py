"""The gateway's streaming relay with the official openai client: vLLM's events pass through
as bytes, the CPU engine's are renamed; an engine that breaks off mid-event gives the client a
clear error on both paths, never half an event."""

from __future__ import annotations

import openai
import pytest

from tests.integration.sse_engine import Gateway, SseEngine

PATHS = [pytest.param("vllm", "tiny", id="vllm-passthrough"),
         pytest.param("transformers", "/models/tiny", id="cpu-engine-renamed")]


@pytest.mark.parametrize("kind,engine_model", PATHS)
def test_a_stream_arrives_whole_and_named_as_served(kind, engine_model):
    with SseEngine(model=engine_model, pieces=40) as engine, \
            Gateway(engine.url, kind, engine_model=engine_model) as gateway:
        api = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="none", max_retries=0)
        stream = api.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "a fox"}], stream=True)
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "".join(f"word{i} " for i in range(40))
    assert {c.model for c in chunks} == {"tiny"}
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("kind,engine_model", PATHS)
def test_an_engine_breaking_off_mid_event_is_a_clear_error(kind, engine_model):
    with SseEngine(model=engine_model, pieces=40, break_off=True) as engine, \
            Gateway(engine.url, kind, engine_model=engine_model) as gateway:
        api = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="none", max_retries=0)
        stream = api.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "a fox"}], stream=True)
        seen = []
        with pytest.raises(openai.APIError, match="broke off the stream"):
            for c in stream:
                seen.append(c.choices[0].delta.content)
    # every whole event before the break arrived; the half event did not
    assert seen == [f"word{i} " for i in range(20)]
