"""Banned words and phrases and continue_final_message through the real endpoint: `storyteller
serve` of the embedded default model (real words to ban) on llama.cpp's llama-server and on
transformers serve, greedy and seeded, asked with the official `openai` client and raw HTTP."""

from __future__ import annotations

import json
import re

import httpx
import openai
import pytest

from tests.integration.served import start_server, stop_server

pytestmark = pytest.mark.slow

MODEL = "smollm2-135m"
ASK = [{"role": "user", "content": "Write a story about a fox."}]
GREEDY = {"model": MODEL, "max_tokens": 48, "temperature": 0, "seed": 3}


@pytest.fixture(scope="module", params=["llama.cpp", "transformers"])
def server(request):
    process, url = start_server(MODEL, "--set", f"cpu.backend={request.param}",
                                "--set", "cpu.threads=1")
    yield url
    stop_server(process)


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server, timeout=600) as client:
        yield client


@pytest.fixture(scope="module")
def plain(http) -> str:
    answer = http.post("/v1/chat/completions", json={**GREEDY, "messages": ASK})
    assert answer.status_code == 200, answer.text
    return answer.json()["choices"][0]["message"]["content"]


def streamed(http, body: dict) -> tuple[str, list[dict]]:
    events = []
    with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as answer:
        assert answer.status_code == 200
        for line in answer.iter_lines():
            if line.startswith("data: {"):
                events.append(json.loads(line[6:]))
    text = "".join((c.get("delta") or {}).get("content") or ""
                   for e in events for c in e.get("choices", []))
    return text, events


def test_continue_final_message_continues_where_the_text_ends(server, http, plain):
    cut = plain.index(" ", len(plain) // 3)
    prefix = plain[:cut]
    api = openai.OpenAI(base_url=f"{server}/v1", api_key="none", max_retries=0, timeout=600)
    answer = api.chat.completions.create(
        model=MODEL, messages=ASK + [{"role": "assistant", "content": prefix}], max_tokens=24,
        temperature=0, seed=3, extra_body={"continue_final_message": True})
    assert answer.model == MODEL and answer.object == "chat.completion"
    text = answer.choices[0].message.content
    # The answer is the new text only, and greedy decoding goes on as it did unbroken.
    assert text and not text.startswith(prefix[:20])
    assert (prefix + text)[:cut + 30] == plain[:cut + 30]
    again, events = streamed(http, {**GREEDY, "max_tokens": 24, "continue_final_message": True,
                                    "messages": ASK + [{"role": "assistant",
                                                        "content": prefix}]})
    assert again == text
    assert all(e["model"] == MODEL and e["object"] == "chat.completion.chunk" for e in events)
    assert events[-1]["choices"][0]["finish_reason"] in ("length", "stop")


def test_a_banned_word_the_model_writes_is_gone_with_the_same_seed(http, plain):
    word = next(w for w in re.findall(r"[A-Za-z]{4,}", plain)
                if w.lower() not in ("once", "upon", "there", "with", "that", "they"))
    body = {**GREEDY, "messages": ASK, "banned": [word]}
    answer = http.post("/v1/chat/completions", json=body).json()
    text = answer["choices"][0]["message"]["content"]
    assert text and not re.search(rf"(?<!\w){word}(?!\w)", text, re.I)
    assert answer["storyteller"]["banned"]["words_biased"] == 1
    assert streamed(http, body)[0] == text


def test_a_banned_phrase_is_cut_and_written_around(http, plain):
    found = re.findall(r"[A-Za-z]+", plain)
    phrase = " ".join(found[3:5])
    body = {**GREEDY, "messages": ASK, "banned": [phrase]}
    answer = http.post("/v1/chat/completions", json=body).json()
    text = answer["choices"][0]["message"]["content"]
    report = answer["storyteller"]["banned"]
    assert phrase.lower() not in " ".join(text.lower().split())
    assert report["phrases_cut"] >= 1 and report["retries"] == report["phrases_cut"]
    assert report["words_biased"] == 0 and not report["gave_up"]
    # What came before the phrase is kept as written.
    before = plain[:plain.index(found[3])].rstrip()
    assert text.startswith(before)
    again, events = streamed(http, body)
    assert again == text
    assert events[-1]["storyteller"]["banned"] == report


def test_a_list_that_bans_the_words_of_every_sentence_is_refused(http):
    common = ["the", "and", "a", "of", "to", "in", "is", "was", "he", "she", "it", "that", "i",
              "you", "for", "on", "with", "as", "his", "her", "they", "at", "be", "but", "had",
              "not", "this", "have", "from", "by", "are", "we", "or", "an", "so", "said"]
    answer = http.post("/v1/chat/completions",
                       json={**GREEDY, "messages": ASK, "banned": common})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "banned" and "nothing left" in error["message"]


@pytest.fixture(scope="module")
def engine(http) -> str:
    return http.get("/health").json()["engine"]


def streamed_tokens(events: list[dict]) -> list[str]:
    return [entry["token"] for e in events for c in e.get("choices", [])
            for entry in ((c.get("logprobs") or {}).get("content") or [])]


def with_alternatives(http, engine: str, body: dict) -> dict | None:
    """The answer to `body` with logprobs and 3 alternatives; None where the engine computes
    none (transformers serve), which must refuse them naming `logprobs`."""
    answer = http.post("/v1/chat/completions",
                       json={**body, "logprobs": True, "top_logprobs": 3})
    if engine == "transformers":
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert error["param"] == "logprobs" and "log-probabilities" in error["message"]
        return None
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_word_alternatives_come_with_a_banned_phrase_cut_and_written_around(http, engine, plain):
    found = re.findall(r"[A-Za-z]+", plain)
    phrase = " ".join(found[3:5])
    body = {**GREEDY, "messages": ASK, "banned": [phrase]}
    answer = with_alternatives(http, engine, body)
    if answer is None:
        return
    choice = answer["choices"][0]
    text, entries = choice["message"]["content"], choice["logprobs"]["content"]
    assert answer["storyteller"]["banned"]["phrases_cut"] >= 1
    # Each token's alternatives point at text that is there: the tokens spell the answer.
    tokens = [e["token"] for e in entries]
    assert "".join(tokens) == text
    assert phrase.lower() not in " ".join("".join(tokens).lower().split())
    for e in entries:
        assert set(e) == {"token", "logprob", "bytes", "top_logprobs"}
        assert 1 <= len(e["top_logprobs"]) <= 3
        alternatives = [t["logprob"] for t in e["top_logprobs"]]
        assert alternatives == sorted(alternatives, reverse=True)  # most likely first
    # Asking for them changes nothing of the story.
    without = http.post("/v1/chat/completions", json=body).json()
    assert without["choices"][0]["message"]["content"] == text
    again, events = streamed(http, {**body, "logprobs": True, "top_logprobs": 3})
    assert again == text and streamed_tokens(events) == tokens
    assert events[-1]["storyteller"]["banned"] == answer["storyteller"]["banned"]


def test_word_alternatives_come_with_a_continued_message(http, engine, plain):
    cut = plain.index(" ", len(plain) // 3)
    body = {**GREEDY, "max_tokens": 24, "continue_final_message": True,
            "messages": ASK + [{"role": "assistant", "content": plain[:cut]}]}
    answer = with_alternatives(http, engine, body)
    if answer is None:
        return
    assert answer["object"] == "chat.completion"
    choice = answer["choices"][0]
    text, entries = choice["message"]["content"], choice["logprobs"]["content"]
    tokens = [e["token"] for e in entries]
    assert len(tokens) == 24 and "".join(tokens) == text
    assert (plain[:cut] + text)[:cut + 30] == plain[:cut + 30]
    again, events = streamed(http, {**body, "logprobs": True, "top_logprobs": 3})
    assert again == text and streamed_tokens(events) == tokens
    assert all(e["object"] == "chat.completion.chunk" for e in events)
