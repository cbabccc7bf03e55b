"""The pure part of `storyteller pairs`: which prompts to sample, each story's seed, which judged
stories make a preference pair, and the preference records (contracts: docs/pairs.md).

Data in, data out: the stage's run.py reads the curated SFT data and writes the directory."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from storyteller.styles import HOUSE_STYLES

Pair = dict[str, Any]


def prompt_group(prompt: Sequence[Mapping[str, str]]) -> str:
    """A preference record's group: the same prompt is one group, whichever split it is in."""
    digest = hashlib.sha256(json.dumps(list(prompt), sort_keys=True).encode()).hexdigest()
    return f"p-{digest[:16]}"


def sample_seed(seed: int, prompt_id: str, sample: int) -> int:
    """A story's seed, derived as `storyteller evaluate` derives it: fixed by the prompt and the
    sample number, so a story does not depend on the batch it was written in (and a resumed
    run writes the same story again)."""
    digest = hashlib.sha256(f"{seed}:{prompt_id}:{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def house_style(pair: Pair) -> str | None:
    style = str((pair.get("controls") or {}).get("style") or "").strip().lower()
    return style if style in HOUSE_STYLES else None


def opening_of(pair: Pair) -> str | None:
    """The opening an `opening` prompt gives: the judge reads it before the continuation, as
    evaluate does (a log's first entry, a refrain's first time may be in it)."""
    if pair.get("kind") != "opening":
        return None
    return (pair.get("request") or {}).get("opening") or None


def _spread(pairs: Sequence[Pair], limit: int, key) -> list[Pair]:
    """Up to `limit` pairs taken in turn from each value of `key` (sorted), each queue by id."""
    queues: dict[str, list[Pair]] = {}
    for pair in pairs:
        queues.setdefault(key(pair), []).append(pair)
    ordered = [sorted(q, key=lambda p: p["id"]) for _, q in sorted(queues.items())]
    picked: list[Pair] = []
    while len(picked) < min(limit, len(pairs)):
        for queue in ordered:
            if queue and len(picked) < limit:
                picked.append(queue.pop(0))
    return picked


def distinct_prompts(pairs: Sequence[Pair], kinds: Sequence[str]) -> list[Pair]:
    """The pairs of the given kinds, one per distinct prompt (the first one met): augmented
    copies of a request would otherwise be sampled twice."""
    seen: set[str] = set()
    result = []
    for pair in pairs:
        if kinds and pair.get("kind") not in kinds:
            continue
        group = prompt_group(pair["messages"][:-1])
        if group not in seen:
            seen.add(group)
            result.append(pair)
    return result


def select_prompts(pairs: Sequence[Pair], limit: int, plain_share: float) -> list[Pair]:
    """House-style prompts first, spread over the styles, then prompts without one, which make
    at most `plain_share` of the result while house-style prompts remain. `limit` 0: every
    house-style prompt and plain ones up to that share (all plain ones when no prompt has a
    house style)."""
    house = [p for p in pairs if house_style(p)]
    plain = [p for p in pairs if not house_style(p)]
    if not house:
        return _spread(plain, limit or len(plain), _genre)
    if not limit:
        wanted_plain = math.floor(len(house) * plain_share / (1 - plain_share))
        return _spread(house, len(house), house_style) + _spread(plain, wanted_plain, _genre)
    wanted_plain = min(len(plain), round(limit * plain_share))
    chosen_house = _spread(house, limit - wanted_plain, house_style)
    return chosen_house + _spread(plain, limit - len(chosen_house), _genre)


def _genre(pair: Pair) -> str:
    return str((pair.get("controls") or {}).get("genre") or "")


def scaled_limit(limit: int, part: int, whole: int) -> int:
    """The val split's cap: the train cap scaled by the splits' sizes (0 stays 'all')."""
    if not limit or not whole or not part:
        return 0
    return max(1, math.ceil(limit * part / whole))


@dataclass(frozen=True)
class Judged:
    """One sampled story and its judgement (storyteller.judge.Judgement.to_json())."""

    sample: int
    text: str
    score: float
    hollow: bool


@dataclass(frozen=True)
class Choice:
    """The pairs one prompt gives, or why it gives none."""

    pairs: tuple[tuple[Judged, Judged], ...]  # (chosen, rejected)
    reason: str = ""  # why there is no pair: "tied" or "best is hollow"


def choose_pairs(samples: Sequence[Judged], min_margin: float, per_prompt: int = 1) -> Choice:
    """The preference pairs of one prompt: its best story against its worst when their scores
    differ by at least `min_margin`; with `per_prompt` > 1, the best against each story at least
    `min_margin` below it, worst first, up to `per_prompt` pairs. Best-vs-worst alone is the
    default: it is the clearest signal a prompt gives, and every pair of a prompt shares its
    chosen story, so more pairs weigh that one story more rather than teach more. A hollow best
    story is never chosen (the judge ranks hollow below honest failures, so this only happens
    when every story is hollow). Ties go to the lower sample number, so the choice is fixed."""
    if not samples:
        return Choice((), "no samples")
    ranked = sorted(samples, key=lambda s: (-s.score, s.sample))
    best = ranked[0]
    if best.hollow:
        return Choice((), "best is hollow")
    worse = [s for s in reversed(ranked[1:]) if best.score - s.score >= min_margin - 1e-9]
    worse.sort(key=lambda s: (s.score, s.sample))
    if not worse:
        return Choice((), "tied")
    return Choice(tuple((best, s) for s in worse[:per_prompt]))


def preference_record(pair: Pair, chosen: Judged, rejected: Judged, index: int,
                      source: Mapping[str, Any]) -> dict[str, Any]:
    """One curated preference record (kind "pair", judgement "style check") for an SFT pair's
    prompt; `source` is that SFT pair's file and line."""
    prompt = [dict(m) for m in pair["messages"][:-1]]
    return {
        "id": f"{pair['id']}-pref{index}",
        "group": prompt_group(prompt),
        "kind": "pair",
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": chosen.text}],
        "rejected": [{"role": "assistant", "content": rejected.text}],
        "controls": dict(pair.get("controls") or {}),
        "source": {"file": str(source["file"]), "line": source.get("line")},
        "judgement": "style check",
        "scores": {"chosen": chosen.score, "rejected": rejected.score},
    }
