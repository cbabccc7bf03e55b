"""How a story is sampled: one `Sampling` type, and the named presets it starts from.

Evaluation, serving, the CLI's `write` and the studio all sample with this type, so "story" means
the same everywhere and every saved generation can name its preset. `max_tokens` is the one name
for the longest story a request may produce (OpenAI's name for it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

# The preset fields a saved generation records (the rest are per request).
PRESET_FIELDS = ("temperature", "top_p", "top_k", "repetition_penalty")


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.8  # 0 = greedy
    top_p: float = 0.95
    top_k: int = 0  # 0 = no top-k cut
    min_p: float = 0.0
    # Above 1 discourages every token already in the prompt or the story (the common
    # multiplicative penalty). It curbs loops but also taxes what a style repeats on purpose: a
    # refrain, the `Log, day N:` headers, the header's own words.
    repetition_penalty: float = 1.0
    max_tokens: int = 1024
    seed: int | None = None
    # The named preset these settings started from ('' when none).
    preset: str = ""

    @classmethod
    def from_preset(cls, chosen: "Sampling | str", **overrides: Any) -> "Sampling":
        """A preset (by name or as a Sampling) with every override that is not None over it."""
        base = preset(chosen) if isinstance(chosen, str) else chosen
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    def preset_json(self) -> dict[str, Any]:
        """The preset part, as saved with a generation: its name and sampling settings."""
        values = asdict(self)
        return {"name": self.preset, **{k: values[k] for k in PRESET_FIELDS}}

    def body(self) -> dict[str, Any]:
        """The request parameters; storyteller's extras go in the body next to OpenAI's."""
        body: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.temperature > 0:
            body["top_p"] = self.top_p
            if self.top_k:
                body["top_k"] = self.top_k
            if self.min_p:
                body["min_p"] = self.min_p
        if self.repetition_penalty != 1.0:
            body["repetition_penalty"] = self.repetition_penalty
        if self.seed is not None:
            body["seed"] = self.seed
        return body


PRESETS: dict[str, Sampling] = {
    preset.preset: preset for preset in (
        # The default for writing: varied but on topic; no repetition penalty, so refrains and
        # log headers can repeat as the house styles ask.
        Sampling(preset="story", temperature=0.8, top_p=0.95),
        # Closer to the most likely story: steadier structure, less surprise; a light penalty
        # against the loops low temperatures fall into.
        Sampling(preset="focused", temperature=0.5, top_p=0.9, repetition_penalty=1.05),
        # Looser and more surprising, for brainstorming.
        Sampling(preset="wild", temperature=1.0, top_p=0.98, repetition_penalty=1.05),
        # Deterministic: the single most likely continuation, no penalty.
        Sampling(preset="greedy", temperature=0.0, top_p=1.0),
    )
}


# The studio's names for the writing presets: a writer picks how adventurous, not a setting name.
ALIASES: dict[str, str] = {"balanced": "story", "creative": "wild"}

# The presets the studio offers, in the order it shows them.
STUDIO_PRESETS: tuple[str, ...] = ("focused", "balanced", "creative")


def preset(name: str) -> Sampling:
    try:
        return PRESETS[ALIASES.get(name, name)]
    except KeyError:
        known = ", ".join([*PRESETS, *ALIASES])
        raise KeyError(f"unknown sampling preset {name!r}; use one of: {known}") from None
