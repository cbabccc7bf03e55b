"""Log-probabilities kept aligned with an answer that is cut and continued
(storyteller.serve.trail), on handmade entries."""

from __future__ import annotations

from storyteller.serve import bans
from storyteller.serve.trail import TokenTrail, entries_of, shaped


def entry(token: str, logprob: float = -1.0, *alternatives: tuple[str, float]) -> dict:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode()),
            "top_logprobs": [{"token": t, "logprob": v, "bytes": list(t.encode())}
                             for t, v in ((token, logprob), *alternatives)]}


def feed(trail: TokenTrail, text: str, *tokens: str) -> str:
    """One engine event per token, as llama-server streams them: the text grows by each."""
    for token in tokens:
        trail.add([entry(token)], len(text) + len(token))
        text += token
    return text


def joined(trail: TokenTrail) -> str:
    return "".join(e["token"] for e in trail.entries)


def test_a_cut_inside_a_token_drops_it_and_moves_the_cut_to_its_start():
    trail = TokenTrail()
    text = feed(trail, "", "It", " was", " a", " dark", "ness")
    # A cut at "ness" (character 14, inside nothing) and one inside " dark" (character 11).
    at = trail.cut(11)
    assert at == len("It was a") and trail.ends == [2, 6, 8]
    text = text[:at]
    assert joined(trail) == text == "It was a"


def test_a_cut_at_a_token_boundary_keeps_every_token_before_it():
    trail = TokenTrail()
    text = feed(trail, "", "It", " was", " a", " dark", " night")
    at = trail.cut(len("It was a"))
    assert at == len("It was a") and joined(trail) == text[:at]
    assert [e["token"] for e in trail.entries] == ["It", " was", " a"]


def test_several_cuts_and_continuations_stay_aligned_with_the_text():
    ban = bans.BanList(("dark night", "suddenly"), pattern=bans.compile_items(
        ["dark night", "suddenly"]), longest=40)
    trail = TokenTrail()
    text = feed(trail, "", "It", " was", " a", " dark", " night", ".")
    match = bans.find(ban, text)
    text = text[:trail.cut(bans.cut_at(text, match.start()))]
    assert text == "It was a"
    text = feed(trail, text, " quiet", " evening", ".", " Sudden", "ly", " a")
    match = bans.find(ban, text)
    text = text[:trail.cut(bans.cut_at(text, match.start()))]
    assert text == "It was a quiet evening."
    text = feed(trail, text, " Then", " a", " fox", " came", ".")
    assert joined(trail) == text == "It was a quiet evening. Then a fox came."
    assert trail.ends[-1] == len(text) and len(trail.ends) == len(trail.entries)


def test_a_stream_releases_whole_tokens_and_a_cut_never_takes_them_back():
    ban = bans.BanList(("dark night",), pattern=bans.compile_items(["dark night"]), longest=30)
    trail = TokenTrail()
    text = feed(trail, "", "It", " was", " a", " dar")
    safe = trail.boundary(bans.hold_from(ban, text))  # " dar" could become "dark night"
    first = trail.release(safe)
    assert text[:safe] == "".join(e["token"] for e in first) == "It was a"
    text = feed(trail, text, "k", " night")
    assert trail.boundary(len("It was a d")) == len("It was a")
    # Cut below what was released: the released tokens stay.
    at = trail.cut(3)
    assert at == len("It was a") and len(trail.entries) == 3
    text = feed(trail, text[:at], " calm", " night")
    rest = trail.release(len(text))
    assert "".join(e["token"] for e in first + rest) == text == "It was a calm night"
    assert not trail.pending() and trail.release(len(text)) == []


def test_an_event_whose_tokens_do_not_spell_its_text_keeps_later_tokens_in_place():
    # An engine holding back a character's first bytes: one event with the byte token and no
    # text, then the rest of the character and the token after it.
    trail = TokenTrail()
    fox = "\U0001F98A".encode()
    trail.add([entry("A")], 1)
    trail.add([{**entry("\\xf0\\x9f"), "bytes": list(fox[:2])}], 1)
    trail.add([{**entry("\\xa6\\x8a"), "bytes": list(fox[2:])}, entry(" fox")],
              len("A\U0001F98A fox"))
    assert trail.ends == [1, 1, 2, 6]
    assert trail.cut(3) == 2 and len(trail.entries) == 3
    # Text with no entries (an engine's last event) belongs to the last token.
    trail.add([], 4)
    assert trail.ends[-1] == 4
    # An engine that sends no entries at all: text is cut and released where asked.
    bare = TokenTrail()
    bare.add([], 9)
    assert bare.boundary(5) == 5 and bare.cut(5) == 5 and bare.release(9) == []


def test_engine_shapes_become_openai_chat_entries_with_the_asked_alternatives():
    llama = {"content": [{"id": 504, "token": "The", "bytes": [84, 104, 101], "logprob": -0.5,
                          "top_logprobs": [{"id": 504, "token": "The", "bytes": [84, 104, 101],
                                            "logprob": -0.5},
                                           {"id": 49, "token": "A", "bytes": [65],
                                            "logprob": -1.5}]}]}
    [one] = entries_of(llama, 1)
    assert one == {"token": "The", "logprob": -0.5, "bytes": [84, 104, 101],
                   "top_logprobs": [{"token": "The", "logprob": -0.5, "bytes": [84, 104, 101]}]}
    vllm = {"tokens": ["The", " fox"], "token_logprobs": [-0.5, -2.0],
            "top_logprobs": [{"A": -1.5, "The": -0.5}, {" fox": -2.0, " cat": -2.5}],
            "text_offset": [0, 3]}
    entries = entries_of(vllm, 2)
    assert [e["token"] for e in entries] == ["The", " fox"]
    assert [t["token"] for t in entries[0]["top_logprobs"]] == ["The", "A"]
    assert entries[1]["bytes"] == list(b" fox")
    assert entries_of(None, 3) == [] and entries_of({"content": None}, 3) == []


def test_entries_shaped_for_each_route():
    entries = [entry("The", -0.5, ("A", -1.5)), entry(" fox", -2.0)]
    assert shaped(entries, "chat") == {"content": entries}
    completions = shaped(entries, "completions", offset=10)
    assert completions["tokens"] == ["The", " fox"]
    assert completions["text_offset"] == [10, 13]
    assert completions["top_logprobs"][0] == {"The": -0.5, "A": -1.5}
