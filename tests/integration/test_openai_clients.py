"""The endpoint as the widely used client libraries call it, with their default extras: the
official `openai` package, LangChain's ChatOpenAI and LiteLLM, streaming and not, against the
real gateway and llama.cpp serving the tiny model. Each request here was answered 400 before
the gateway took every OpenAI parameter (penalties, user, stream_options, response_format,
content parts, n, logit_bias, logprobs)."""

from __future__ import annotations

import os

import openai
import pytest

pytestmark = pytest.mark.slow

MESSAGES = [{"role": "system", "content": "You are a storyteller."},
            {"role": "user", "content": [{"type": "text", "text": "A fox guards "},
                                         {"type": "text", "text": "a lighthouse."}]}]


@pytest.fixture(scope="module")
def base_url(tiny_endpoint) -> str:
    return f"{tiny_endpoint[0]}/v1"


def test_openai_package_with_every_common_parameter(base_url):
    api = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=120)
    common = dict(model="tiny", messages=MESSAGES, max_completion_tokens=6, temperature=0.7,
                  seed=2, frequency_penalty=0.3, presence_penalty=0.1, user="writer-1",
                  store=False, metadata={"story": "fox"}, response_format={"type": "text"},
                  logit_bias={"0": -100})
    answer = api.chat.completions.create(**common, n=2)
    assert len(answer.choices) == 2 and answer.model == "tiny"
    usage = None
    text = ""
    for chunk in api.chat.completions.create(**common, stream=True,
                                             stream_options={"include_usage": True}):
        if chunk.usage:
            usage = chunk.usage
        text += "".join(c.delta.content or "" for c in chunk.choices)
    assert text == answer.choices[0].message.content
    assert usage is not None and usage.completion_tokens == answer.usage.completion_tokens / 2
    completion = api.completions.create(model="tiny", prompt="Once upon a time", max_tokens=4,
                                        temperature=0, frequency_penalty=0.2, user="w",
                                        logprobs=1, n=2, best_of=2)
    assert [c.index for c in completion.choices] == [0, 1]
    assert completion.choices[0].text == completion.choices[1].text  # greedy twice


def test_langchain_chat_openai_invoke_and_stream(base_url):
    from langchain_core.messages import HumanMessage
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="tiny", base_url=base_url, api_key="none", max_tokens=6,
                     temperature=0, max_retries=0, stream_usage=True, frequency_penalty=0.2,
                     presence_penalty=0.1, seed=1)
    message = llm.invoke([("system", "You are a storyteller."),
                          ("human", "A fox guards a lighthouse.")])
    assert message.content and message.usage_metadata["output_tokens"] <= 6
    chunks = list(llm.stream([("system", "You are a storyteller."),
                              ("human", "A fox guards a lighthouse.")]))
    assert "".join(c.content for c in chunks) == message.content
    assert sum((c.usage_metadata or {}).get("output_tokens", 0) for c in chunks) == \
        message.usage_metadata["output_tokens"]
    several = ChatOpenAI(model="tiny", base_url=base_url, api_key="none", max_tokens=4,
                         temperature=1.0, n=2, max_retries=0, logprobs=True, top_logprobs=2)
    result = several.generate([[HumanMessage("A fox.")]])
    assert len(result.generations[0]) == 2
    assert result.generations[0][0].generation_info["logprobs"]["content"]


def test_litellm_completion_streamed_and_not(base_url):
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download of prices
    import litellm

    common = dict(model="openai/tiny", api_base=base_url, api_key="none", messages=MESSAGES,
                  max_tokens=5, temperature=0, seed=3, frequency_penalty=0.1, user="w")
    answer = litellm.completion(**common)
    assert answer.choices[0].message.content and answer.usage.completion_tokens <= 5
    chunks = list(litellm.completion(**common, stream=True,
                                     stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == answer.choices[0].message.content
    several = litellm.completion(**{**common, "temperature": 1.0}, n=2, logprobs=True,
                                 top_logprobs=1)
    assert [c.index for c in several.choices] == [0, 1]
    assert several.choices[1].logprobs["content"][0]["top_logprobs"]
