"""The generations `storyteller evaluate` wrote (OUT/generations.jsonl), as the ratings need them.

Only `id`, `model`, `prompt_id`, `prompt` and `text` are required; `model` is an opaque label
(one model, two or more all work)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from storyteller.errors import InputError, Problem

REQUIRED = ("id", "model", "prompt_id", "prompt", "text")


@dataclass(frozen=True)
class Generation:
    """One generated story and what it was asked for."""

    id: str
    model: str
    prompt_id: str
    prompt: str
    text: str
    controls: Mapping[str, str] = field(default_factory=dict)
    reference: str = ""
    kind: str = ""
    sample: int = 0
    metrics: Mapping[str, object] = field(default_factory=dict)

    @property
    def genre(self) -> str | None:
        value = str(self.controls.get("genre") or "").strip()
        return value or None


def _metrics(raw: object) -> dict[str, object]:
    """Per-story metrics kept as numbers, booleans or None; anything else is dropped."""
    if not isinstance(raw, dict):
        return {}
    kept: dict[str, object] = {}
    for name, value in raw.items():
        if isinstance(value, bool) or value is None:
            kept[name] = value
        elif isinstance(value, (int, float)):
            kept[name] = None if math.isnan(float(value)) else value
    return kept


def parse_generation(record: object) -> Generation:
    """A Generation from one decoded line; ValueError / TypeError name what is wrong."""
    if not isinstance(record, dict):
        raise TypeError("not a JSON object")
    for name in REQUIRED:
        value = record.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f'field "{name}" is missing or not a non-empty string')
    controls = record.get("controls") or {}
    if not isinstance(controls, dict):
        raise TypeError('field "controls" is not an object')
    return Generation(
        id=record["id"], model=record["model"], prompt_id=record["prompt_id"],
        prompt=record["prompt"], text=record["text"],
        controls={str(k): str(v) for k, v in controls.items() if v is not None},
        reference=str(record.get("reference") or ""), kind=str(record.get("kind") or ""),
        sample=int(record.get("sample") or 0), metrics=_metrics(record.get("metrics")))


def parse_lines(lines: Iterable[str], where: str) -> list[Generation]:
    """Every generation of a generations.jsonl; all bad lines reported together."""
    gens, problems, seen = [], [], set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            gen = parse_generation(json.loads(line))
        except json.JSONDecodeError as error:
            problems.append(Problem(f"{where}:{number}", f"not valid JSON ({error.msg})"))
            continue
        except (ValueError, TypeError) as error:
            problems.append(Problem(f"{where}:{number}", str(error)))
            continue
        if gen.id in seen:
            problems.append(Problem(f"{where}:{number}", f'id "{gen.id}" appears twice'))
            continue
        seen.add(gen.id)
        gens.append(gen)
    if problems:
        raise InputError(*problems)
    if not gens:
        raise InputError(Problem(where, "holds no generations",
                                 "run storyteller evaluate first; it writes OUT/generations.jsonl"))
    return gens
