"""Preference records: every input shape normalised to the curated record, or a located reason
why not. Pure: decoded records in, records and rejects out (`preference_run.py` reads and
writes the files).

Input shapes (one JSON object per record):
- TRL conversational, explicit prompt: `prompt` as chat messages or a plain string (one user
  message); `chosen` / `rejected` (a pair) or `completion` + boolean `label` (unpaired) as a
  string or as `[{"role": "assistant", "content": …}]`;
- TRL conversational, implicit prompt: no `prompt`, and `chosen` / `rejected` whole
  conversations sharing their first messages (the shared part is the prompt);
- storyteller's own exports (`storyteller library export --kind preference|kto`, `storyteller
  ratings export`): the above plus `judgement`, controls under their own names (`genre`,
  `style`, …) and the stars as `chosen_rating` / `rejected_rating`;
- curated preference records themselves (so a curated file can be curated again).

The curated record (`normalise`'s output) is the one every preference reader accepts:
`id`, `group` (the prompt's hash: one prompt never spans two splits), `kind` ("pair" or
"unpaired"), `prompt`, `chosen` + `rejected` or `completion` + `label`, `controls`, `source`,
`judgement`, `scores`."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from storyteller.prompts import HEADER_FIELDS

JUDGEMENTS = ("studio stars", "studio pick", "writer edit", "rating sheet", "style check")
ROLES = ("system", "user", "assistant")
# The reasons this module gives (each listed with the others in docs/curate.md).
MALFORMED, MISSING_SIDE, SAME_SIDES = "malformed", "missing_side", "same_sides"
UNRENDERABLE, MIXED, DUPLICATE = "unrenderable_prompt", "mixed_shapes", "duplicate_exact"

# Renders a prompt with the target model's chat template; raises where the template refuses.
RenderPrompt = Callable[[list[dict[str, str]]], Any]


class Refused(ValueError):
    """Why one input record is not a usable preference record: a reject reason and a detail."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def group_of(prompt: Sequence[Mapping[str, str]]) -> str:
    """The prompt's group: every record answering the same prompt shares it."""
    return "p-" + hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()[:16]


def shape_of(record: Mapping[str, Any]) -> str | None:
    """"pair", "unpaired" or None (neither shape's fields)."""
    if "chosen" in record or "rejected" in record:
        return "pair"
    if "completion" in record or "label" in record:
        return "unpaired"
    return None


def _message(raw: Any, where: str) -> dict[str, str]:
    if not isinstance(raw, Mapping) or "role" not in raw or "content" not in raw:
        raise Refused(UNRENDERABLE, f"{where} is not a chat message ({{role, content}})")
    if raw["role"] not in ROLES:
        raise Refused(UNRENDERABLE, f"{where} has role {raw['role']!r} (one of: "
                                    f"{', '.join(ROLES)})")
    if not isinstance(raw["content"], str):
        raise Refused(UNRENDERABLE, f"{where}'s content is not text")
    return {"role": raw["role"], "content": raw["content"]}


def normalise_prompt(raw: Any) -> list[dict[str, str]]:
    """The prompt as chat messages: a plain string is one user message. Refused where it cannot
    be what a model is asked: empty, a role out of place, or ending with the answer."""
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    if not isinstance(raw, list) or not raw:
        raise Refused(UNRENDERABLE, "prompt is empty or not a list of chat messages")
    messages = [_message(m, f"prompt[{n}]") for n, m in enumerate(raw)]
    if not any(m["role"] == "user" and m["content"].strip() for m in messages):
        raise Refused(UNRENDERABLE, "prompt has no user message with text")
    if any(m["role"] == "system" for m in messages[1:]):
        raise Refused(UNRENDERABLE, "a system message after the first message")
    if messages[-1]["role"] == "assistant":
        raise Refused(UNRENDERABLE, "prompt ends with an assistant message (its answer belongs "
                                    "in chosen / rejected / completion)")
    return messages


def normalise_side(raw: Any, name: str) -> list[dict[str, str]]:
    """One answer as `[{"role": "assistant", "content": …}]`: from a string, one message, or a
    one-message list. Refused where missing or empty."""
    if raw is None:
        raise Refused(MISSING_SIDE, f"no {name}")
    if isinstance(raw, Mapping):
        raw = [raw]
    if isinstance(raw, list):
        if len(raw) != 1:
            raise Refused(MALFORMED, f"{name} holds {len(raw)} messages; give the answer alone, "
                                     "as a string or one assistant message")
        message = _message(raw[0], name)
        if message["role"] != "assistant":
            raise Refused(MALFORMED, f"{name} is a {message['role']} message, not the "
                                     "assistant's answer")
        raw = message["content"]
    if not isinstance(raw, str):
        raise Refused(MALFORMED, f"{name} is not text")
    if not raw.strip():
        raise Refused(MISSING_SIDE, f"{name} is empty")
    return [{"role": "assistant", "content": raw}]


def implicit_prompt(record: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """(prompt, chosen, rejected) of a record whose sides are whole conversations that share
    their first messages (TRL's implicit prompt); the record's own fields otherwise."""
    chosen, rejected = record.get("chosen"), record.get("rejected")
    if "prompt" in record or not (isinstance(chosen, list) and isinstance(rejected, list)) \
            or len(chosen) < 2 or len(rejected) < 2:
        return record.get("prompt"), chosen, rejected
    shared = 0
    while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
        shared += 1
    return chosen[:shared], chosen[shared:], rejected[shared:]


def _controls(record: Mapping[str, Any]) -> dict[str, Any]:
    controls = record.get("controls")
    if isinstance(controls, Mapping):
        return {str(k): v for k, v in controls.items() if v not in (None, "")}
    if controls is not None:
        raise Refused(MALFORMED, "controls is not an object")
    return {name: record[name] for name in HEADER_FIELDS if record.get(name) not in (None, "")}


def _scores(record: Mapping[str, Any]) -> dict[str, float] | None:
    scores = record.get("scores")
    if scores is None and "chosen_rating" in record and "rejected_rating" in record:
        scores = {"chosen": record["chosen_rating"], "rejected": record["rejected_rating"]}
    if scores is None:
        return None
    if not isinstance(scores, Mapping) or set(scores) != {"chosen", "rejected"} or any(
            isinstance(v, bool) or not isinstance(v, (int, float)) for v in scores.values()):
        raise Refused(MALFORMED, "scores must be {\"chosen\": number, \"rejected\": number}")
    return {"chosen": float(scores["chosen"]), "rejected": float(scores["rejected"])}


def _judgement(record: Mapping[str, Any], default: str) -> str:
    judgement = record.get("judgement")
    if judgement is None:
        # A studio star pair exported before records carried their judgement.
        return "studio stars" if "chosen_rating" in record else default
    if judgement not in JUDGEMENTS:
        raise Refused(MALFORMED, f"judgement {judgement!r} is not one of: "
                                 f"{', '.join(JUDGEMENTS)}")
    return judgement


def same_text(one: str, other: str) -> bool:
    return " ".join(one.split()) == " ".join(other.split())


def normalise(record: Any, source: Mapping[str, Any], default_judgement: str,
              render: RenderPrompt | None = None) -> dict[str, Any]:
    """The curated record for one decoded input record (its `id` is still the input's, or
    None: ids are made unique by `curate_records`). Refused with a reason otherwise."""
    if not isinstance(record, Mapping):
        raise Refused(MALFORMED, "not a JSON object")
    shape = shape_of(record)
    if shape is None:
        raise Refused(MISSING_SIDE, "neither chosen / rejected (a pair) nor completion / label "
                                    "(an unpaired judgement)")
    judgement = _judgement(record, default_judgement)
    controls = _controls(record)
    if shape == "pair":
        raw_prompt, raw_chosen, raw_rejected = implicit_prompt(record)
        if raw_prompt is None:
            raise Refused(UNRENDERABLE, "no prompt")
        prompt = normalise_prompt(raw_prompt)
        chosen = normalise_side(raw_chosen, "chosen")
        rejected = normalise_side(raw_rejected, "rejected")
        if same_text(chosen[0]["content"], rejected[0]["content"]):
            raise Refused(SAME_SIDES, "chosen and rejected are the same text")
        body: dict[str, Any] = {"chosen": chosen, "rejected": rejected,
                                "scores": _scores(record)}
    else:
        if record.get("prompt") is None:
            raise Refused(UNRENDERABLE, "no prompt")
        prompt = normalise_prompt(record["prompt"])
        completion = normalise_side(record.get("completion"), "completion")
        label = record.get("label")
        if not isinstance(label, bool):
            raise Refused(MALFORMED, f"label is {json.dumps(label)}, not true or false")
        body = {"completion": completion, "label": label, "scores": None}
    if render is not None:
        try:
            render(prompt)
        except Exception as exc:  # a template refusing a prompt raises whatever it likes
            raise Refused(UNRENDERABLE, f"the chat template refuses it: {exc}".splitlines()[0]) \
                from None
    given_id = record.get("id")
    return {"id": str(given_id) if given_id not in (None, "") else None,
            "group": group_of(prompt), "kind": shape, "prompt": prompt, **body,
            "controls": controls, "source": dict(source), "judgement": judgement}


def content_key(record: Mapping[str, Any]) -> str:
    """What makes two records the same judgement: prompt and answers (and label)."""
    fields = ("prompt", "chosen", "rejected") if record["kind"] == "pair" else \
        ("prompt", "completion", "label")
    return json.dumps([record[f] for f in fields], sort_keys=True)


def minority_shape(shapes: Sequence[str | None]) -> str | None:
    """The shape set aside in a file holding both: the rarer one (unpaired on a tie)."""
    counts = Counter(s for s in shapes if s)
    if len(counts) < 2:
        return None
    return "pair" if counts["pair"] < counts["unpaired"] else "unpaired"


@dataclass
class Reject:
    source: str
    line: int | None
    reason: str
    detail: str
    position: int | None = None

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"source": self.source, "line": self.line, "reason": self.reason,
                               "detail": self.detail}
        if self.position is not None:
            row["position"] = self.position
        return row


@dataclass
class Entry:
    """One decoded input record and where it was: `line` in a JSONL file, `position` in a JSON
    array. `record` is None where the line could not be decoded (`error` says why)."""

    source: str
    line: int | None
    position: int | None
    record: Any
    error: str = ""


def curate_records(entries: Sequence[Entry], default_judgement: str,
                   render: RenderPrompt | None = None
                   ) -> tuple[list[dict[str, Any]], list[Reject]]:
    """Kept records (in input order, unique ids, exact duplicates dropped) and the rejects."""
    kept: list[dict[str, Any]] = []
    rejects: list[Reject] = []
    by_file: dict[str, list[Entry]] = {}
    for entry in entries:
        by_file.setdefault(entry.source, []).append(entry)
    minority = {source: minority_shape([shape_of(e.record) if isinstance(e.record, Mapping)
                                        else None for e in group])
                for source, group in by_file.items()}
    counts = {source: Counter(shape_of(e.record) for e in group if isinstance(e.record, Mapping))
              for source, group in by_file.items()}
    seen: dict[str, str] = {}
    ids: set[str] = set()
    for entry in entries:
        def refuse(reason: str, detail: str) -> None:
            rejects.append(Reject(entry.source, entry.line, reason, detail, entry.position))

        if entry.record is None:
            refuse(MALFORMED, entry.error)
            continue
        shape = shape_of(entry.record) if isinstance(entry.record, Mapping) else None
        if shape is not None and shape == minority[entry.source]:
            n = counts[entry.source]
            refuse(MIXED, f"this file holds {n['pair']} pair and {n['unpaired']} unpaired "
                          f"records; the {shape} ones are set aside: give them a file of their own")
            continue
        try:
            record = normalise(entry.record, {"file": entry.source, "line": entry.line},
                               default_judgement, render)
        except Refused as refused:
            refuse(refused.reason, refused.detail)
            continue
        key = content_key(record)
        if key in seen:
            refuse(DUPLICATE, f"the same prompt and answers as {seen[key]}")
            continue
        seen[key] = f"{entry.source}:{entry.line}" if entry.line else \
            f"{entry.source}#{entry.position}"
        record["id"] = _unique_id(record, ids)
        kept.append(record)
    return kept, rejects


def _unique_id(record: dict[str, Any], taken: set[str]) -> str:
    """The input's id where it is free; else one made from the content (ids from two exports
    can collide, and a record without one gets one)."""
    base = record["id"] or "pref-" + hashlib.sha256(content_key(record).encode()).hexdigest()[:12]
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}#{n}"
    taken.add(candidate)
    return candidate
