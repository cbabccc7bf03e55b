"""What the Write and Document pages ask of the endpoint and what they keep of the answer: the
request's extras (the words the model weighed, the banned list), one answer streamed into the
page as it comes, each token's alternatives as the library stores them, and a branch's whole
text and details. The pages own their widgets and the library; these take what they need from
them as arguments."""

from __future__ import annotations

import math
import time

from storyteller.client import ClientError, Completion
from storyteller.studio.compose import banned_for, offers_alternatives, parse_banned

TOP = 5  # alternatives asked per token (the endpoint gives 5 at most)


def requested_extras(model, banned: list[str]) -> dict:
    """The request's extras: the words the model weighed (every request, with a banned list
    and when continuing a branch too: the endpoint keeps them aligned with the text it cuts)
    where the model's engine computes them (its /v1/models capabilities), and the banned list."""
    extras: dict = {"logprobs": True, "top_logprobs": TOP} if offers_alternatives(
        model) else {}
    if banned:
        extras["banned"] = banned
    return extras


def banned_to_send(config, lib, story_list: str) -> list[str]:
    """Every list a request obeys: the studio config's, the writer's global one (kept in the
    library) and the story's (`story_list`, one phrase a line, as its text area holds it)."""
    mine, _ = parse_banned(story_list)
    return banned_for(config.banned, lib.global_banned(), mine)


def token_list(completion: Completion) -> list:
    return [[t.token, t.logprob, [list(a) for a in t.alternatives]]
            for t in (getattr(completion, "logprobs", None) or [])]


def answer_details(answer: str, start: int, completion: Completion | None, **more) -> dict:
    """What a version keeps of the answer that made it: the answer as it stands in the
    version's text from `start` on, each token's alternatives and the endpoint's report on the
    banned list (none of either when the answer was cut short), and `more` (the context sent,
    how many candidates were asked)."""
    return {"answer": answer, "inserted_at": start, **more,
            "logprobs": token_list(completion) if completion is not None else [],
            "steering": (getattr(completion, "steering", None) or {})
            if completion is not None else {}}


def stream_into(client, model_id: str, live, messages, sampling, extras,
                show_before: str) -> tuple[str, Completion | None, Exception | None]:
    """Stream one answer, drawing it in `live` as it comes; (its text, the final Completion,
    the error that ended it)."""
    pieces, final = [], None
    stream = client.stream(model_id, messages, sampling, **extras)
    try:
        last = 0.0
        for piece in stream:
            if isinstance(piece, Completion):
                final = piece
                break
            if isinstance(piece, str):
                pieces.append(piece)
            if time.monotonic() - last > 0.1:
                live.text(show_before + "".join(pieces), width="stretch")
                last = time.monotonic()
    except ClientError as error:
        return "".join(pieces), None, error
    finally:
        stream.close()
    return (final.text if final is not None and final.text else "".join(pieces)), final, None


def branch_details(current, tokens: list, word, alternative: str, answer: str, start: int,
                   final: Completion | None) -> dict:
    """A branch's details: its `answer` (the text up to `word`, the chosen alternative, the
    model's continuation) starting at `start` in its text, what was chosen where, and the
    logprobs of the tokens before the word, the alternative as chosen, then the new ones."""
    chosen_logprob = math.log(max(1e-9, dict(word.alternatives).get(alternative, 1e-9)))
    head_tokens, position = [], 0
    for token in tokens:
        if position >= word.start:
            break
        head_tokens.append(token)
        position += len(token[0])
    context = current.details.get("context")
    return {"answer": answer, "inserted_at": start,
            **({"context": context} if context is not None else {}),
            "alternative": {"word": word.text.strip(), "chosen": alternative.strip()},
            "logprobs": head_tokens + [[alternative, chosen_logprob,
                                        [[alternative, chosen_logprob]]]]
            + (token_list(final) if final else []),
            "steering": (getattr(final, "steering", None) or {}) if final else {}}


def branch_version(current, tokens: list, word, alternative: str, answer: str,
                   final: Completion | None) -> tuple[str, dict]:
    """A Document branch's whole text and details: `current`'s text with its answer replaced
    in place by `answer`."""
    start = int(current.details.get("inserted_at", 0))
    old = str(current.details.get("answer", ""))
    whole = current.text[:start] + answer + current.text[start + len(old):]
    return whole, branch_details(current, tokens, word, alternative, answer, start, final)
