"""Named sampling presets: the settings a story is generated with, shared by evaluation, serving
and the app so that "story" means the same everywhere and every saved generation can name it."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SamplingPreset:
    name: str
    temperature: float  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = no top-k cut
    # Above 1 discourages every token already in the prompt or the story (the common
    # multiplicative penalty). It curbs loops but also taxes what a style repeats on purpose: a
    # refrain, the `Log, day N:` headers, the header's own words.
    repetition_penalty: float = 1.0

    def to_json(self) -> dict:
        return asdict(self)


PRESETS: dict[str, SamplingPreset] = {
    preset.name: preset for preset in (
        # The default for writing: varied but on topic; no repetition penalty, so refrains and
        # log headers can repeat as the house styles ask.
        SamplingPreset("story", temperature=0.8, top_p=0.95),
        # Closer to the most likely story: steadier structure, less surprise; a light penalty
        # against the loops low temperatures fall into.
        SamplingPreset("focused", temperature=0.5, top_p=0.9, repetition_penalty=1.05),
        # Looser and more surprising, for brainstorming.
        SamplingPreset("wild", temperature=1.0, top_p=0.98, repetition_penalty=1.05),
        # Deterministic: the single most likely continuation, no penalty.
        SamplingPreset("greedy", temperature=0.0),
    )
}


# The studio's names for the writing presets: a writer picks how adventurous, not a setting name.
ALIASES: dict[str, str] = {"balanced": "story", "creative": "wild"}

# The presets the studio offers, in the order it shows them.
STUDIO_PRESETS: tuple[str, ...] = ("focused", "balanced", "creative")


def preset(name: str) -> SamplingPreset:
    try:
        return PRESETS[ALIASES.get(name, name)]
    except KeyError:
        known = ", ".join([*PRESETS, *ALIASES])
        raise KeyError(f"unknown sampling preset {name!r}; use one of: {known}") from None
