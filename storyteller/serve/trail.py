"""Log-probabilities kept aligned with an answer that steering cuts and continues.

Every token's entry (OpenAI's chat shape: token, logprob, bytes, top_logprobs) is kept with the
character offset where its text ends in the answer. Cutting the answer at a character drops the
entries of the tokens after it, and of a token that straddles it, whose text is then cut with
it: the cut moves back to that token's start, so the tokens kept always join to the text kept
and a writer's word alternatives never point at text that is not there. A stream releases text
only up to a token's end, each piece with the entries of the tokens it covers.

Pure: storyteller.serve.steering feeds it the engine's events.
"""

from __future__ import annotations

import codecs
from bisect import bisect_right
from dataclasses import dataclass, field

from storyteller.serve.fanout import chat_entry, completions_logprobs


def entries_of(logprobs: dict | None, alternatives: int) -> list[dict]:
    """An engine's log-probabilities (one event's or one answer's) as OpenAI chat entries with
    at most `alternatives` alternatives each. Chat's shape (llama.cpp on both routes, vLLM's
    chat) or the completions shape (vLLM's completions: alternatives as {token: logprob})."""
    if not logprobs:
        return []
    if "tokens" in logprobs:
        tokens = logprobs["tokens"]
        tops = logprobs.get("top_logprobs") or [None] * len(tokens)
        raw = [{"token": token, "logprob": logprob, "bytes": list(token.encode()),
                "top_logprobs": [{"token": t, "logprob": v, "bytes": list(t.encode())}
                                 for t, v in sorted((top or {}).items(), key=lambda kv: -kv[1])]}
               for token, logprob, top in zip(tokens, logprobs.get("token_logprobs") or (), tops)]
    else:
        raw = logprobs.get("content") or []
    return [chat_entry(entry, alternatives) for entry in raw]


def shaped(entries: list[dict], route: str, offset: int = 0) -> dict:
    """Entries as a choice's `logprobs` on `route`: chat's {"content": [...]}, or completions'
    {tokens, token_logprobs, top_logprobs, text_offset} with offsets from `offset`."""
    if route == "chat":
        return {"content": entries}
    return completions_logprobs(entries, offset)


@dataclass
class TokenTrail:
    """The entries of one answer's tokens in order, `ends[i]` where token i's text ends."""

    entries: list[dict] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    released: int = 0  # entries already handed to a stream
    # The bytes of a character begun by one token and finished by the next.
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))

    @property
    def end(self) -> int:
        return self.ends[-1] if self.ends else 0

    def add(self, entries: list[dict], text_end: int) -> None:
        """The entries of one engine event whose text makes the answer `text_end` characters
        long. Each token spans the characters its bytes complete (a token holding a
        character's first bytes spans none, the one finishing it spans it), and the event's
        last token ends at `text_end` whatever the tokens spell, so the tokens after an
        engine's odd one stay in place. An event with text and no entries widens the last
        token."""
        position = self.end
        for i, entry in enumerate(entries):
            position = min(position + self.width(entry), text_end)
            if i == len(entries) - 1:
                position = text_end
            self.entries.append(entry)
            self.ends.append(position)
        if not entries and self.ends and text_end > self.end:
            self.ends[-1] = text_end

    def width(self, entry: dict) -> int:
        raw = entry.get("bytes")
        if raw is None:
            return len(entry["token"])
        return len(self.decoder.decode(bytes(raw)))

    def boundary(self, at: int) -> int:
        """The end of the last token that ends at or before character `at` (0: none does;
        `at` itself while no token has come: an engine that sends none leaves text as text)."""
        if not self.ends:
            return at
        i = bisect_right(self.ends, at)
        return self.ends[i - 1] if i else 0

    def cut(self, at: int) -> int:
        """Drop every token that ends after character `at` (one straddling `at` too); the
        length the answer's text must be cut to: the end of the last token kept."""
        if not self.ends:
            return at
        i = max(bisect_right(self.ends, at), self.released)
        del self.entries[i:], self.ends[i:]
        self.decoder.reset()  # the kept tokens end where a whole character does
        return self.end

    def release(self, at: int) -> list[dict]:
        """The entries not yet released of the tokens that end at or before `at`."""
        i = max(bisect_right(self.ends, at), self.released)
        given, self.released = self.entries[self.released:i], i
        return given

    def pending(self) -> bool:
        return self.released < len(self.entries)
