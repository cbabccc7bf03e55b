"""Augmented variants of training pairs. Each variant keeps its original's group (so it never
lands in another split) and records in `augmented` exactly what was changed.

- rename: the story's characters get other names, consistently in prompt and story;
- phrasing: the instruction in another of the renderer's phrasings;
- controls: some control fields dropped and the rest reordered;
- window: opening → continuation cut at another point of the story."""

from __future__ import annotations

import random
import re
from typing import Any, Sequence

from storyteller.curate.pairs import Story, character_names, make_pair, split_opening
from storyteller.prompts import HEADER_FIELDS, PHRASINGS, StoryRequest

METHODS = ("rename", "phrasing", "controls", "window")

NAME_POOL = """Ada Amara Anselm Aurelio Bao Bea Bram Calla Cato Cyrus Dara Delphine Edda Emeric
Esme Fenna Fitz Galen Greer Halima Hugo Ines Isko Jonah Juno Kaito Kiri Lark Leander Lior Mabel
Maren Mateo Nadia Nell Nico Odile Olu Orla Pavel Pia Quill Rafe Reyna Rosalind Sage Saoirse Sefa
Tamsin Teo Thora Ulla Vesna Wren Xavi Yara Yusuf Zelda Zora""".split()


def rename_map(names: Sequence[str], text: str, rng: random.Random) -> dict[str, str]:
    """New names for `names`, none already in `text` and none used twice."""
    pool = [n for n in NAME_POOL if n not in text]
    rng.shuffle(pool)
    return dict(zip(names, pool))


def apply_renames(text: str | None, mapping: dict[str, str]) -> str | None:
    if not text or not mapping:
        return text
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, mapping)) + r")\b")
    return pattern.sub(lambda m: mapping[m.group(1)], text)


def variant(story: Story, pair: dict[str, Any], method: str, index: int, rng: random.Random,
            control_dropout: float, opening_share_range: tuple[float, float],
            system_prompt: str | None) -> dict[str, Any] | None:
    """One augmented copy of `pair` made with `method`, or None where it does not apply."""
    kind = pair["kind"]
    controls = {k: v for k, v in pair["controls"].items() if k != "title"}
    title = pair["controls"].get("title")
    premise, opening = pair["request"]["premise"], pair["request"]["opening"]
    answer = pair["messages"][-1]["content"]
    phrasing, order, change = 0, None, {}
    if method == "rename":
        mapping = rename_map(character_names(story.text), story.text, rng)
        if not mapping:
            return None
        premise, title, opening, answer = (apply_renames(t, mapping) for t in (premise, title, opening, answer))
        change = {"method": "rename", "names": mapping}
    elif method == "phrasing":
        choices = len(PHRASINGS[kind])
        if choices < 2:
            return None
        phrasing = rng.randrange(1, choices)
        change = {"method": "phrasing", "phrasing": phrasing}
    elif method == "controls":
        kept = [name for name in HEADER_FIELDS if name in controls and rng.random() >= control_dropout]
        rng.shuffle(kept)
        dropped = sorted(set(controls) - set(kept))
        controls = {name: controls[name] for name in kept}
        order = kept
        change = {"method": "controls", "dropped": dropped, "order": kept}
    elif method == "window":
        if kind != "opening":
            return None
        share = rng.uniform(*opening_share_range)
        cut = split_opening(story.text, share)
        if not cut or cut[0] == opening:
            return None
        opening, answer = cut
        change = {"method": "window", "opening_share": round(share, 3)}
    else:
        raise ValueError(f"unknown augmentation {method!r}")
    request = StoryRequest(kind=kind, controls=controls, premise=premise, title=title,
                           opening=opening, phrasing=phrasing, control_order=order)
    made = make_pair(story, f"{pair['id']}-aug{index}", kind, request, answer,
                     pair.get("premise_source"), change, system_prompt)
    return made


def augment(story: Story, pairs: Sequence[dict[str, Any]], *, ratio: float, methods: Sequence[str],
            seed: int, control_dropout: float = 0.3,
            opening_share_range: tuple[float, float] = (0.3, 0.5),
            system_prompt: str | None = None) -> list[dict[str, Any]]:
    """On average `ratio` variants per pair, methods taken in turn; deterministic per story."""
    rng = random.Random(f"{seed}:{story.id}")
    variants = []
    for pair in pairs:
        if pair["kind"] in ("continuation", "document"):  # windows: already varied per cut
            continue
        wanted = int(ratio) + (1 if rng.random() < ratio - int(ratio) else 0)
        order = list(methods)
        rng.shuffle(order)
        made = 0
        for attempt in range(len(order)):
            if made >= wanted:
                break
            result = variant(story, pair, order[attempt], made, rng, control_dropout,
                             opening_share_range, system_prompt)
            if result is not None:
                variants.append(result)
                made += 1
    return variants
