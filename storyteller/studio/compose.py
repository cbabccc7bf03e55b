"""From what the writer filled in to a request: the controls a model offers, input limits, and
the sampling settings. Pure, so every rule the Write page follows is tested without a browser."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


# ------------------------------------------------------------------------------ the new requests

# The endpoint's limits on `banned` (contract with the gateway): items and characters each.
MAX_BANNED = 500
MAX_BANNED_CHARS = 100


def parse_banned(text: str) -> tuple[list[str], list[str]]:
    """(the phrases, one per line of `text`, empty lines and repeats dropped; why the list
    cannot be sent, one sentence each)."""
    from storyteller.studio.library import clean_phrases

    phrases = clean_phrases(text.splitlines())
    problems = []
    long = [(n, p) for n, p in enumerate(phrases, 1) if len(p) > MAX_BANNED_CHARS]
    if long:
        number, phrase = long[0]
        problems.append(f"Banned phrase {number} ({phrase[:30]}…) is {len(phrase)} characters; "
                        f"the limit is {MAX_BANNED_CHARS}. Shorten it or split it.")
    if len(phrases) > MAX_BANNED:
        problems.append(f"The banned list has {len(phrases):,} phrases; the limit is "
                        f"{MAX_BANNED}. Remove some.")
    return phrases, problems


def banned_for(*lists: Sequence[str]) -> list[str]:
    """Every list a request obeys (the config's, the writer's global one, the story's), as
    one, first spelling kept; capped at the endpoint's limit."""
    from storyteller.studio.library import clean_phrases

    return clean_phrases([p for phrases in lists for p in phrases])[:MAX_BANNED]


def candidate_count(asked: Any, config: StudioConfig) -> tuple[int, str]:
    """(how many candidates to write, a note when `asked` was out of range): 1 to the
    studio's max_candidates (4 at most, the endpoint's limit)."""
    try:
        count = int(asked)
    except (TypeError, ValueError):
        return 1, f"{asked!r} is not a number of candidates; writing 1."
    if count < 1:
        return 1, "At least 1 candidate is written."
    if count > config.max_candidates:
        return config.max_candidates, (f"{count} candidates asked; the studio writes "
                                       f"{config.max_candidates} at most side by side.")
    return count, ""


def check_memory(notes: str, direction: str, config: StudioConfig) -> list[str]:
    """Why a story's notes or direction cannot be kept or sent."""
    problems = []
    if len(notes) > config.max_notes_chars:
        problems.append(f"The notes are {len(notes):,} characters; the limit is "
                        f"{config.max_notes_chars:,}. Keep the facts the story needs.")
    if len(direction) > config.max_direction_chars:
        problems.append(f"The direction is {len(direction):,} characters; the limit is "
                        f"{config.max_direction_chars:,}: say in a sentence or two what "
                        f"happens next.")
    if "\x00" in notes or "\x00" in direction:
        problems.append("The notes or direction hold a NUL character; remove it.")
    return problems


def check_document(text: str, config: StudioConfig) -> list[str]:
    """Why a document cannot be sent (it is kept in the library all the same)."""
    from storyteller.studio.draft import word_count

    problems = []
    words = word_count(text)
    if not text.strip():
        problems.append("The document is empty: paste or type the story first.")
    elif words > config.max_document_words:
        problems.append(f"The document is {words:,} words; the studio sends at most "
                        f"{config.max_document_words:,}. It is saved; split it into parts "
                        f"(or raise max_document_words).")
    if "\x00" in text:
        problems.append("The document holds a NUL character; remove it.")
    return problems


def context_budget(model: ServedModel | None, max_tokens: int, default: int = 2048) -> int:
    """Tokens the prompt may take: the model's context less what the answer may use, less a
    margin for the chat template's own tokens."""
    window = (model.max_model_len if model is not None and model.max_model_len else default)
    return max(64, window - max_tokens - 64)


def notes_problem(parts: Sequence[Any], budget: int) -> str:
    """A message when the notes alone leave no room for the story (`parts`: the context's
    parts, each with name, tokens and cut)."""
    notes = next((p for p in parts if p.name == "notes"), None)
    if notes is None:
        return ""
    if notes.cut or notes.tokens > budget // 2:
        return (f"The notes take {notes.tokens:,} of the {budget:,} tokens the model reads"
                + (f" ({notes.cut})" if notes.cut else "") + ": little room is left for the "
                "story itself. Shorten the notes to what this part needs.")
    return ""


def offers_alternatives(model: ServedModel | None) -> bool:
    """Whether to ask `model`'s endpoint for the words it weighed (logprobs): where its
    /v1/models entry lists capabilities, as they say (transformers serve computes none);
    any other OpenAI-compatible endpoint is asked."""
    if model is None:
        return False
    found = model.storyteller.get("capabilities")
    return bool(found.get("logprobs")) if isinstance(found, dict) else True
