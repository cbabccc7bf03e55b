"""n, logprobs and logit_bias through the real gateway in front of the real CPU engines (the
tiny model served by llama.cpp's llama-server, and by transformers serve), called with the
official `openai` client and storyteller's own."""

from __future__ import annotations

import json
import urllib.request

import openai
import pytest

from storyteller.client import BadRequest, StoryClient
from storyteller.sampling import Sampling
from tests.integration.served import start_server, stop_server

pytestmark = pytest.mark.slow

MESSAGES = [{"role": "user", "content": "Write a story about a fox."}]


@pytest.fixture(scope="module")
def api(tiny_endpoint) -> openai.OpenAI:
    url, _, _ = tiny_endpoint
    health = json.loads(urllib.request.urlopen(f"{url}/health").read())
    assert health["engine"] == "llama.cpp", "these tests are about llama.cpp's engine"
    return openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=120)


def test_n_stories_are_indexed_seeded_and_reproducible(api):
    answer = api.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=6,
                                         temperature=1.0, seed=11, n=3)
    assert [c.index for c in answer.choices] == [0, 1, 2]
    texts = [c.message.content for c in answer.choices]
    assert len(set(texts)) == 3  # three stories, not one thrice
    # each is the single story of its seed: seed, seed + 1, seed + 2
    for i, text in enumerate(texts):
        one = api.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=6,
                                          temperature=1.0, seed=11 + i)
        assert one.choices[0].message.content == text
    assert answer.usage.completion_tokens == sum(
        api.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=6,
                                    temperature=1.0, seed=11 + i).usage.completion_tokens
        for i in range(3))


def test_n_streams_interleave_by_index_with_one_usage_event_and_one_done(tiny_endpoint, api):
    url, _, _ = tiny_endpoint
    body = {"model": "tiny", "messages": MESSAGES, "max_tokens": 12, "temperature": 1.0,
            "seed": 5, "n": 3, "stream": True, "stream_options": {"include_usage": True}}
    request = urllib.request.Request(f"{url}/v1/chat/completions", json.dumps(body).encode(),
                                     {"content-type": "application/json"})
    raw = urllib.request.urlopen(request, timeout=120).read().decode()
    events = [line[6:] for line in raw.split("\n") if line.startswith("data: ")]
    assert events.count("[DONE]") == 1 and events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    usage = [c for c in chunks if c.get("usage")]
    assert len(usage) == 1 and chunks[-1] is usage[0] and usage[0]["choices"] == []
    texts = {i: "" for i in range(3)}
    for chunk in chunks[:-1]:
        for choice in chunk["choices"]:
            texts[choice["index"]] += choice["delta"].get("content") or ""
    assert len({c["id"] for c in chunks}) == 1
    whole = api.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=12,
                                        temperature=1.0, seed=5, n=3)
    assert [texts[i] for i in range(3)] == [c.message.content for c in whole.choices]
    assert usage[0]["usage"]["completion_tokens"] == whole.usage.completion_tokens


def test_chat_logprobs_in_openais_shape_streamed_and_not(api):
    answer = api.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=5,
                                         temperature=0, logprobs=True, top_logprobs=3)
    content = answer.choices[0].logprobs.content
    assert "".join(t.token for t in content) == answer.choices[0].message.content
    for token in content:
        assert len(token.top_logprobs) == 3 and token.logprob <= 0
        assert token.bytes == list(token.token.encode())
        assert [t.logprob for t in token.top_logprobs] == sorted(
            (t.logprob for t in token.top_logprobs), reverse=True)
        assert set(token.model_dump()) == {"token", "logprob", "bytes", "top_logprobs"}
    streamed = []
    for chunk in api.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=5,
                                             temperature=0, logprobs=True, top_logprobs=3,
                                             stream=True):
        if chunk.choices and chunk.choices[0].logprobs:
            streamed += chunk.choices[0].logprobs.content
    assert [(t.token, round(t.logprob, 4)) for t in streamed] == \
        [(t.token, round(t.logprob, 4)) for t in content]
    # logprobs without alternatives: each token's own, an empty top list
    bare = api.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=3,
                                       temperature=0, logprobs=True)
    assert all(t.top_logprobs == [] for t in bare.choices[0].logprobs.content)


def test_completions_logprobs_in_openais_completions_shape(api):
    answer = api.completions.create(model="tiny", prompt="Once upon a time", max_tokens=5,
                                    temperature=0, logprobs=2)
    logprobs = answer.choices[0].logprobs
    assert "".join(logprobs.tokens) == answer.choices[0].text
    assert len(logprobs.token_logprobs) == len(logprobs.tokens)
    assert all(len(top) == 2 for top in logprobs.top_logprobs)
    assert logprobs.text_offset == [sum(len(t) for t in logprobs.tokens[:i])
                                    for i in range(len(logprobs.tokens))]


def test_logit_bias_bans_and_forces_a_token(api, tiny_endpoint):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_endpoint[2])
    greedy = api.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=1,
                                         temperature=0, logprobs=True)
    first = greedy.choices[0].logprobs.content[0].token
    first_id = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(first))[0]
    banned = api.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=1,
                                         temperature=0, logit_bias={str(first_id): -100})
    assert banned.choices[0].message.content != first
    forced_id = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(" lighthouse"))[0]
    forced = api.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=1,
                                         temperature=0, logit_bias={str(forced_id): 100})
    assert forced.choices[0].message.content == tokenizer.decode([forced_id])


def test_story_client_candidates_and_word_alternatives(tiny_endpoint):
    client = StoryClient(tiny_endpoint[0])
    sampling = Sampling(temperature=1.0, max_tokens=6, seed=21)
    candidates = client.candidates("tiny", MESSAGES, sampling, 3, logprobs=True, top_logprobs=2)
    assert [c.index for c in candidates] == [0, 1, 2]
    assert candidates[0].text == client.chat("tiny", MESSAGES, sampling).text
    for candidate in candidates:
        assert "".join(t.token for t in candidate.logprobs) == candidate.text
        for choice in candidate.logprobs:
            assert choice.token in [token for token, _ in choice.alternatives]
    *pieces, final = client.stream("tiny", MESSAGES, sampling, logprobs=True, top_logprobs=2)
    assert "".join(pieces) == final.text == candidates[0].text
    assert [t.token for t in final.logprobs] == [t.token for t in candidates[0].logprobs]
    with pytest.raises(BadRequest, match="n must be at most 4"):
        client.candidates("tiny", MESSAGES, sampling, 50)
    # The model list says what this engine can give, so the studio knows to ask.
    [model] = client.models()
    assert model.storyteller["capabilities"]["logprobs"] is True
    assert model.storyteller["capabilities"]["max_n"] == 4


@pytest.fixture(scope="module")
def transformers_api(tiny_endpoint):
    process, url = start_server(tiny_endpoint[2], "--set", "cpu.backend=transformers")
    yield openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=120)
    stop_server(process)


def test_transformers_serve_writes_n_one_after_another_and_refuses_logprobs(transformers_api):
    answer = transformers_api.chat.completions.create(
        model="tiny", messages=MESSAGES, max_tokens=5, temperature=1.0, seed=3, n=2,
        logit_bias={"5": -100}, user="someone", stream_options={"include_usage": True})
    assert [c.index for c in answer.choices] == [0, 1]
    second = transformers_api.chat.completions.create(model="tiny", messages=MESSAGES,
                                                      max_tokens=5, temperature=1.0, seed=4)
    assert answer.choices[1].message.content == second.choices[0].message.content
    with pytest.raises(openai.BadRequestError) as error:
        transformers_api.chat.completions.create(model="tiny", messages=MESSAGES,
                                                 max_tokens=5, logprobs=True)
    assert error.value.body["param"] == "logprobs" and "llama.cpp" in error.value.message
    # ... and its model list says so beforehand: the studio does not ask.
    listed = transformers_api.models.list().data[0].model_extra["storyteller"]
    assert listed["capabilities"]["logprobs"] is False
    texts = {}
    for chunk in transformers_api.chat.completions.create(
            model="tiny", messages=MESSAGES, max_tokens=5, temperature=1.0, seed=3, n=2,
            stream=True, stream_options={"include_usage": True}):
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
        if chunk.usage:
            assert chunk.usage.completion_tokens == answer.usage.completion_tokens
    assert texts == {c.index: c.message.content for c in answer.choices}
