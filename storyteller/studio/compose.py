"""From what the writer filled in to a request: the controls a model offers, input limits, and
the sampling settings. Pure, so every rule the Write page follows is tested without a browser."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from storyteller.prompts import CONTROL_SCHEMA, HEADER_FIELDS
from storyteller.client import ServedModel
from storyteller.sampling import Sampling
from storyteller.studio.config import StudioConfig


@dataclass(frozen=True)
class Control:
    name: str
    label: str
    options: list[str]
    # True when the options are the ones the model was trained on; False when they are the
    # schema's examples (a model with no storyteller.json, or a control it never saw).
    trained: bool


def model_controls(model: ServedModel | None) -> list[Control]:
    """The controls to offer for `model`, in its header order: the values it was trained on
    where its storyteller.json lists them, else the control schema's examples."""
    meta = model.storyteller if model else {}
    schema = {**CONTROL_SCHEMA, **(meta.get("control_schema") or {})}
    seen: Mapping[str, list[str]] = meta.get("controls") or {}
    order = [name for name in (meta.get("header_fields") or HEADER_FIELDS) if name in schema]
    controls = []
    for name in order:
        trained = [str(v) for v in seen.get(name) or [] if str(v).strip()]
        if name == "genre" and not trained and model is not None:
            trained = model.genres
        if name == "style" and not trained and model is not None:
            trained = model.styles
        options = sorted(dict.fromkeys(trained)) if trained else \
            [str(v) for v in schema[name].get("examples", [])]
        controls.append(Control(name, str(schema[name].get("label", name.title())), options,
                                bool(trained)))
    return controls


def check_inputs(premise: str, title: str, config: StudioConfig) -> list[str]:
    """Why these inputs cannot be sent, one sentence each (empty: they can)."""
    problems = []
    premise, title = premise.strip(), title.strip()
    if not premise and not title:
        problems.append("Write a premise or a title first.")
    if len(premise) > config.max_premise_chars:
        problems.append(f"The premise is {len(premise):,} characters; the limit is "
                        f"{config.max_premise_chars:,}. Shorten it.")
    if len(title) > config.max_title_chars:
        problems.append(f"The title is {len(title):,} characters; the limit is "
                        f"{config.max_title_chars:,}. Shorten it.")
    if "\x00" in premise or "\x00" in title:
        problems.append("The premise or title holds a NUL character; remove it.")
    return problems


@dataclass(frozen=True)
class Advanced:
    """The advanced panel: None leaves the preset's value."""

    temperature: float | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def sampling_for(preset_name: str, advanced: Advanced, config: StudioConfig,
                 model: ServedModel | None = None) -> Sampling:
    """The preset with the advanced panel's values over it, max_tokens kept inside both the
    studio's limit and what the model's context leaves after a prompt."""
    limit = config.max_tokens
    if model is not None and model.max_model_len:
        limit = min(limit, max(16, model.max_model_len - 256))
    max_tokens = min(advanced.max_tokens or 600, limit)
    return Sampling.from_preset(preset_name, temperature=advanced.temperature,
                                top_p=advanced.top_p, min_p=advanced.min_p,
                                repetition_penalty=advanced.repetition_penalty,
                                max_tokens=max_tokens, seed=advanced.seed)


def settings_json(preset_name: str, sampling: Sampling) -> dict[str, Any]:
    """What a saved generation records about how it was sampled."""
    return {"preset": preset_name, **sampling.body()}
