"""The gateway's parameters without a server: every OpenAI parameter accepted and passed on,
ignored, or refused with the parameter named; llama.cpp's logprobs put in OpenAI's shapes, vLLM's
(recorded) left as they are; n answers merged; the client reading both shapes."""

from __future__ import annotations

import asyncio
import json

import pytest

from storyteller.client import TokenChoice, token_choices
from storyteller.serve import fanout
from storyteller.serve.engine_params import engine_body
from storyteller.serve.gateway import ServedModel
from storyteller.serve.params import ApiError, validate

MODELS = {"tiny": ServedModel("tiny", "tiny", 512, {}, {"eos_token_id": [2]})}
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "A fox"}]}


def refused(body: dict, route: str = "chat", engine: str = "llama.cpp") -> ApiError:
    with pytest.raises(ApiError) as error:
        validate(body, route, MODELS, engine)
    assert error.value.status == 400
    return error.value


def test_what_real_clients_send_is_accepted_and_passed_to_the_engine():
    body = {**CHAT, "frequency_penalty": 0.5, "presence_penalty": 0.2, "n": 3,
            "logit_bias": {"42": -100, "7": 5}, "logprobs": True, "top_logprobs": 5,
            "stream": True, "stream_options": {"include_usage": True}, "seed": 4,
            "response_format": {"type": "text"},
            "messages": [{"role": "developer", "content": "Be brief."},
                         {"role": "user", "content": [{"type": "text", "text": "A "},
                                                      {"type": "text", "text": "fox"}],
                          "name": "ann"}]}
    clean, model = validate(body, "chat", MODELS, "llama.cpp")
    assert clean["messages"] == [{"role": "system", "content": "Be brief."},
                                 {"role": "user", "content": "A fox"}]
    assert "response_format" not in clean  # text is what a story is anyway
    vllm = engine_body(clean, "chat", model, "vllm")
    assert vllm["n"] == 3 and vllm["logit_bias"] == {"42": -100, "7": 5}
    assert vllm["top_logprobs"] == 5 and vllm["stream_options"] == {"include_usage": True}
    llama = engine_body(clean, "chat", model, "llama.cpp")
    assert "n" not in llama  # the gateway sends n requests itself
    assert llama["frequency_penalty"] == 0.5 and llama["presence_penalty"] == 0.2
    assert llama["logit_bias"] == {"42": -100, "7": 5} and llama["logprobs"] is True
    # top_logprobs 0 still needs one alternative from llama-server, or it gives no logprob
    zero, _ = validate({**CHAT, "logprobs": True, "top_logprobs": 0}, "chat", MODELS)
    assert engine_body(zero, "chat", model, "llama.cpp")["top_logprobs"] == 1
    completions, _ = validate({"model": "tiny", "prompt": ["Once"], "logprobs": 0,
                               "best_of": 1}, "completions", MODELS)
    assert engine_body(completions, "completions", model, "llama.cpp")["logprobs"] == 1


def test_harmless_parameters_are_dropped_before_the_engine():
    body = {**CHAT, "user": "u-1", "store": False, "metadata": {"k": "v"},
            "service_tier": "auto", "parallel_tool_calls": True, "tools": [],
            "tool_choice": "none", "stream_options": {"include_usage": True},
            "prompt_cache_key": "x", "temperature": None}
    clean, model = validate(body, "chat", MODELS, "vllm")
    # stream_options without a stream: nothing to add usage to
    assert engine_body(clean, "chat", model, "vllm") == {**CHAT}


@pytest.mark.parametrize("change, param", [
    ({"n": 50}, "n"), ({"top_logprobs": 100, "logprobs": True}, "top_logprobs"),
    ({"top_logprobs": 2}, "top_logprobs"), ({"logprobs": 3}, "logprobs"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ({"tool_choice": "auto"}, "tool_choice"), ({"audio": {"voice": "x"}}, "audio"),
    ({"logit_bias": {"fox": 3}}, "logit_bias"), ({"logit_bias": {"3": 101}}, "logit_bias[3]"),
    ({"frequency_penalty": 3}, "frequency_penalty"),
    ({"response_format": {"type": "yaml"}}, "response_format"),
    ({"stream_options": {"include_usage": "yes"}}, "stream_options"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     "messages[0].content[0]"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ({"banned": "fox"}, "banned"), ({"banned": ["x"] * 501}, "banned"),
    ({"banned": ["a" * 101]}, "banned[0]"), ({"banned": [" "]}, "banned[0]"),
    ({"continue_final_message": True}, "continue_final_message"),
    ({"continue_final_message": "yes"}, "continue_final_message"),
    ({"wizardry": 1}, "wizardry"),
])
def test_invalid_values_and_what_no_engine_can_do_are_refused_by_name(change, param):
    error = refused({**CHAT, **change})
    assert error.param == param and error.message


@pytest.mark.parametrize("change, param, route", [
    ({"logprobs": True}, "logprobs", "chat"),
    ({"frequency_penalty": 0.5}, "frequency_penalty", "chat"),
    ({"response_format": {"type": "json_object"}}, "response_format", "chat"),
    ({"prompt": [1, 2, 3]}, "prompt", "completions"),
])
def test_what_transformers_serve_cannot_honour_is_refused_saying_which_engine_can(
        change, param, route):
    body = {**CHAT, **change} if route == "chat" else {"model": "tiny", **change}
    error = refused(body, route, "transformers")
    assert error.param == param and "llama.cpp" in error.message and "vLLM" in error.message
    # the same request on llama.cpp is fine
    validate(body, route, MODELS, "llama.cpp")


def test_transformers_serve_gets_logit_bias_as_a_sequence_bias_and_zero_penalties_dropped():
    clean, model = validate({"model": "tiny", "prompt": "Once", "logit_bias": {"5": -100},
                             "frequency_penalty": 0, "temperature": 0}, "completions", MODELS,
                            "transformers")
    out = engine_body(clean, "completions", model, "transformers")
    assert "frequency_penalty" not in out and "logit_bias" not in out
    assert json.loads(out["generation_config"])["sequence_bias"] == [[[5], -100.0]]


def test_steering_fields_are_cleaned_for_steering_and_never_reach_the_engine():
    body = {**CHAT, "messages": [*CHAT["messages"], {"role": "assistant", "content": "Once"}],
            "banned": ["  suddenly ", "a shiver   ran", "suddenly"],
            "continue_final_message": True}
    clean, model = validate(body, "chat", MODELS)
    assert clean["banned"] == ["suddenly", "a shiver ran"]
    assert clean["continue_final_message"] is True
    assert not {"banned", "continue_final_message"} & set(engine_body(clean, "chat", model,
                                                                      "llama.cpp"))
    clean, _ = validate({**CHAT, "banned": [], "continue_final_message": False}, "chat", MODELS)
    assert "banned" not in clean and "continue_final_message" not in clean  # nothing to steer


# -- answers -----------------------------------------------------------------------------------

def llama_entry(token: str, logprob: float, tops: list[tuple[str, float]]) -> dict:
    def one(t, lp, i):
        return {"id": i, "token": t, "bytes": list(t.encode()), "logprob": lp}
    return {**one(token, logprob, 9), "top_logprobs": [one(t, lp, i) for i, (t, lp) in
                                                       enumerate(tops)]}


LLAMA_CHAT = {"id": "c1", "model": "tiny", "object": "chat.completion", "choices": [{
    "index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "A fox"},
    "logprobs": {"content": [llama_entry("A", -0.5, [("A", -0.5), ("The", -1.5)]),
                             llama_entry(" fox", -2.0, [(" cat", -0.2), (" fox", -2.0)])]}}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}


def test_llamacpp_logprobs_become_openais_chat_shape_with_the_asked_alternatives():
    shaped = fanout.Shaper("chat", 1, "served").payload(json.loads(json.dumps(LLAMA_CHAT)))
    content = shaped["choices"][0]["logprobs"]["content"]
    assert shaped["model"] == "served"
    assert content[1] == {"token": " fox", "logprob": -2.0, "bytes": list(b" fox"),
                          "top_logprobs": [{"token": " cat", "logprob": -0.2,
                                            "bytes": list(b" cat")}]}


def test_llamacpp_logprobs_become_openais_completions_shape_with_offsets_across_a_stream():
    shaper = fanout.Shaper("completions", 2, "tiny")
    first, second = ({"choices": [{"index": 0, "text": e["token"],
                                   "logprobs": {"content": [e]}}]}
                     for e in LLAMA_CHAT["choices"][0]["logprobs"]["content"])
    a = shaper.payload(first)["choices"][0]["logprobs"]
    b = shaper.payload(second)["choices"][0]["logprobs"]
    assert a == {"tokens": ["A"], "token_logprobs": [-0.5],
                 "top_logprobs": [{"A": -0.5, "The": -1.5}], "text_offset": [0]}
    assert b["tokens"] == [" fox"] and b["text_offset"] == [1]


# A vLLM answer as vLLM writes it: OpenAI's shapes already, passed on unchanged.
VLLM_CHAT = {"id": "chatcmpl-1", "object": "chat.completion", "model": "tiny", "choices": [
    {"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hi"},
     "logprobs": {"content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105],
                               "top_logprobs": [{"token": "Hi", "logprob": -0.1,
                                                 "bytes": [72, 105]},
                                                {"token": "Yo", "logprob": -2.4,
                                                 "bytes": [89, 111]}]}]}} for i in range(2)]}
VLLM_COMPLETION = {"id": "cmpl-1", "object": "text_completion", "model": "tiny", "choices": [
    {"index": 0, "text": " fox den", "finish_reason": "length", "logprobs": {
        "tokens": [" fox", " den"], "token_logprobs": [-1.0, -3.0],
        "top_logprobs": [{" fox": -1.0, " cat": -1.2}, {" lair": -0.5, " den": -3.0}],
        "text_offset": [0, 4]}}]}


def test_vllm_shaped_answers_pass_unchanged_and_the_client_reads_them():
    for route, recorded in (("chat", VLLM_CHAT), ("completions", VLLM_COMPLETION)):
        copy = json.loads(json.dumps(recorded))
        assert fanout.Shaper(route, 2, "tiny").payload(copy) == recorded
    chat = token_choices(VLLM_CHAT["choices"][1]["logprobs"])
    assert chat == [TokenChoice("Hi", -0.1, [("Hi", -0.1), ("Yo", -2.4)])]
    completion = token_choices(VLLM_COMPLETION["choices"][0]["logprobs"])
    assert completion[1] == TokenChoice(" den", -3.0, [(" lair", -0.5), (" den", -3.0)])


def test_the_client_lists_the_written_token_among_its_alternatives():
    shaped = fanout.Shaper("chat", 1, "tiny").payload(json.loads(json.dumps(LLAMA_CHAT)))
    fox = token_choices(shaped["choices"][0]["logprobs"])[1]
    assert fox.alternatives == [(" cat", -0.2), (" fox", -2.0)]


def test_n_answers_merge_into_one_with_indices_and_usage():
    answers = [json.loads(json.dumps(LLAMA_CHAT)) for _ in range(3)]
    for i, answer in enumerate(answers):
        answer["id"] = f"c{i}"
    merged = fanout.merge(answers)
    assert merged["id"] == "c0" and [c["index"] for c in merged["choices"]] == [0, 1, 2]
    assert merged["usage"] == {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16}
    assert [fanout.seeded({"seed": 7, "n": 3}, i)["seed"] for i in range(3)] == [7, 8, 9]
    assert "seed" not in fanout.seeded({"n": 3}, 1)


def test_interleave_yields_every_item_as_it_comes_and_closing_it_stops_every_stream():
    stopped = []

    async def stream(name: str, delay: float):
        try:
            for i in range(3):
                await asyncio.sleep(delay)
                yield f"{name}{i}"
        finally:
            stopped.append(name)

    async def run():
        items = [x async for x in fanout.interleave([stream("a", 0.01), stream("b", 0.025)])]
        merged = fanout.interleave([stream("c", 0.01), stream("d", 0.01)])
        first = await merged.__anext__()
        await merged.aclose()
        return items, first

    items, first = asyncio.run(run())
    assert sorted(items) == ["a0", "a1", "a2", "b0", "b1", "b2"]
    assert items[:2] == ["a0", "a1"] and first in ("c0", "d0")  # as they come, not in turn
    assert sorted(stopped) == ["a", "b", "c", "d"]
