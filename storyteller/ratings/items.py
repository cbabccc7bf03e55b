"""Which rows each rater sees: stories, attention checks, repeats, pairs, and their orders.

Pure: generations and a seed in, a Plan out. Every rater rates the same items (agreement needs
shared items), each in their own seeded order (so position effects average out). Item ids are a
keyed hash of the seed and what the item shows: stable for the same seed, telling nothing."""

from __future__ import annotations

import hashlib
import hmac
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from storyteller.errors import InputError, Problem
from storyteller.ratings.checks import EXPECT_MAX, counts_for, make_checks
from storyteller.ratings.generations import Generation
from storyteller.ratings.scales import (
    DIMENSIONS,
    SCALE_MAX,
    SCALE_MIN,
    applicable,
)

DEFAULT_ITEMS_CAP = 40
DEFAULT_PAIRS = 6
KEY_FORMAT = "storyteller-ratings-key/1"


@dataclass(frozen=True)
class Item:
    """One row of the Ratings sheet; `info` is what key.json records about it."""

    id: str
    type: str  # story | attention | repeat
    prompt: str
    story: str
    dimensions: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pair:
    """One row of the Pairs sheet: one request, two models' stories on sides A and B."""

    id: str
    prompt: str
    story_a: str
    story_b: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    seed: int
    raters: list[str]
    items: list[Item]
    pairs: list[Pair]
    orders: dict[str, dict[str, list[str]]]

    def rater_items(self, rater: str) -> list[Item]:
        by_id = {item.id: item for item in self.items}
        return [by_id[i] for i in self.orders[rater]["ratings"]]

    def rater_pairs(self, rater: str) -> list[Pair]:
        by_id = {pair.id: pair for pair in self.pairs}
        return [by_id[i] for i in self.orders[rater]["pairs"]]

    def key(self) -> dict[str, Any]:
        """key.json: the only place that says which model wrote what."""
        types = [item.type for item in self.items]
        return {
            "format": KEY_FORMAT, "seed": self.seed, "raters": self.raters,
            "dimensions": list(DIMENSIONS), "scale": [SCALE_MIN, SCALE_MAX],
            "counts": {"stories": types.count("story"), "attention": types.count("attention"),
                       "repeats": types.count("repeat"), "pairs": len(self.pairs),
                       "rows": len(self.items)},
            "items": {item.id: {"type": item.type, "dimensions": list(item.dimensions),
                                **item.info} for item in self.items},
            "pairs": {pair.id: {"type": "pair", **pair.info} for pair in self.pairs},
            "orders": self.orders,
        }


def rater_ids(count: int) -> list[str]:
    return [f"rater-{n:02d}" for n in range(1, count + 1)]


class _Ids:
    """Opaque ids: `it-` + 6 hex digits of an HMAC keyed by the seed, unique within a plan."""

    def __init__(self, seed: int):
        self.key = f"storyteller-ratings:{seed}".encode()
        self.taken: set[str] = set()

    def __call__(self, *parts: str) -> str:
        salt = 0
        while True:
            message = "|".join(parts) + (f"|{salt}" if salt else "")
            digest = hmac.new(self.key, message.encode(), hashlib.sha256).hexdigest()
            candidate = f"it-{digest[:6]}"
            if candidate not in self.taken:
                self.taken.add(candidate)
                return candidate
            salt += 1


def _genre_interleaved(prompts: Sequence[str], genre_of: dict[str, str],
                       rng: random.Random) -> list[str]:
    """Prompts in seeded order, genres taking turns, so any prefix is balanced across genres."""
    by_genre: dict[str, list[str]] = defaultdict(list)
    for prompt in sorted(prompts):
        by_genre[genre_of.get(prompt) or ""].append(prompt)
    genres = sorted(by_genre)
    rng.shuffle(genres)
    for genre in genres:
        rng.shuffle(by_genre[genre])
    order = []
    while any(by_genre.values()):
        for genre in genres:
            if by_genre[genre]:
                order.append(by_genre[genre].pop(0))
    return order


def choose_stories(gens: Sequence[Generation], count: int, rng: random.Random) -> list[Generation]:
    """`count` generations balanced across models and genres: prompts in genre-interleaved
    order, every model's story for each prompt (so model differences are paired by prompt),
    further samples of a prompt only after every prompt has had one."""
    samples: dict[tuple[str, str], list[Generation]] = defaultdict(list)
    genre_of: dict[str, str] = {}
    for gen in sorted(gens, key=lambda g: g.id):
        samples[(gen.prompt_id, gen.model)].append(gen)
        genre_of.setdefault(gen.prompt_id, gen.genre or "")
    for options in samples.values():
        rng.shuffle(options)
    models = sorted({gen.model for gen in gens})
    prompts = _genre_interleaved(list(genre_of), genre_of, rng)
    chosen: list[Generation] = []
    rounds = max(len(options) for options in samples.values())
    for r in range(rounds):
        for n, prompt in enumerate(prompts):
            turn = models[n % len(models):] + models[:n % len(models)]
            for model in turn:
                options = samples.get((prompt, model), [])
                if r < len(options):
                    chosen.append(options[r])
    return chosen[:count]


def _story_item(ids: _Ids, gen: Generation) -> Item:
    info = {"generation": gen.id, "model": gen.model, "prompt_id": gen.prompt_id,
            "genre": gen.genre, "kind": gen.kind, "metrics": dict(gen.metrics)}
    return Item(ids("story", gen.id), "story", gen.prompt, gen.text, applicable(gen.controls), info)


def _pairs(stories: Sequence[Generation], count: int, ids: _Ids, rng: random.Random) -> list[Pair]:
    """Up to `count` pairs over the chosen stories' prompts, model pairs taking turns, and each
    model pair's sides counterbalanced: its first model is on A in half of its pairs."""
    by_prompt: dict[str, dict[str, Generation]] = defaultdict(dict)
    order: list[str] = []
    for gen in stories:
        if gen.prompt_id not in by_prompt:
            order.append(gen.prompt_id)
        by_prompt[gen.prompt_id].setdefault(gen.model, gen)
    model_pairs = list(combinations(sorted({g.model for g in stories}), 2))
    chosen: list[tuple[Generation, Generation]] = []
    for n, prompt in enumerate(p for p in order if len(by_prompt[p]) >= 2):
        if len(chosen) >= count:
            break
        for shift in range(len(model_pairs)):
            x, y = model_pairs[(n + shift) % len(model_pairs)]
            if x in by_prompt[prompt] and y in by_prompt[prompt]:
                chosen.append((by_prompt[prompt][x], by_prompt[prompt][y]))
                break
    sides: dict[tuple[str, str], list[bool]] = {}
    for pair in model_pairs:
        total = sum(1 for a, b in chosen if (a.model, b.model) == pair)
        half = (total + rng.randint(0, 1)) // 2  # an odd count's extra pair goes either way
        flags = [n < half for n in range(total)]
        rng.shuffle(flags)
        sides[pair] = flags
    result = []
    for first, second in chosen:
        first_on_a = sides[(first.model, second.model)].pop()
        a, b = (first, second) if first_on_a else (second, first)
        info = {"prompt_id": a.prompt_id, "genre": a.genre,
                "a": {"generation": a.id, "model": a.model},
                "b": {"generation": b.id, "model": b.model}}
        result.append(Pair(ids("pair", *sorted((a.id, b.id))), a.prompt, a.text, b.text, info))
    return result


def _order(ids: list[str], repeats: dict[str, str], rng: random.Random, tries: int = 64) -> list[str]:
    """A seeded shuffle that keeps each repeat well away from the story it repeats."""
    best: tuple[int, list[str]] | None = None
    for _ in range(tries):
        order = ids[:]
        rng.shuffle(order)
        where = {item: n for n, item in enumerate(order)}
        gap = min((abs(where[r] - where[o]) for r, o in repeats.items()), default=len(order))
        if best is None or gap > best[0]:
            best = (gap, order)
        if gap >= max(2, len(order) // 3):
            break
    assert best is not None
    return best[1]


def build_plan(gens: Sequence[Generation], raters: int, items: int | None = None,
               pairwise: int | None = None, seed: int = 0) -> Plan:
    """Everything `ratings make` writes, decided from the generations and the seed."""
    models = sorted({gen.model for gen in gens})
    problems = []
    if raters < 1:
        problems.append(Problem("--raters", f"{raters} raters: at least 1 is needed",
                                "agreement needs 2 or more"))
    if items is not None and items < 1:
        problems.append(Problem("--items", f"{items} items: at least 1 is needed"))
    if pairwise is not None and pairwise < 0:
        problems.append(Problem("--pairwise", f"{pairwise} pairs: cannot be negative"))
    if pairwise and len(models) < 2:
        problems.append(Problem("--pairwise", f"pairs need two models; the generations hold "
                                              f"one ({models[0]})", "leave --pairwise out"))
    if problems:
        raise InputError(*problems)
    count = min(len(gens), DEFAULT_ITEMS_CAP if items is None else items)
    if pairwise is None:
        pairwise = DEFAULT_PAIRS if len(models) >= 2 else 0
    ids = _Ids(seed)
    stories = choose_stories(gens, count, random.Random(f"{seed}:stories"))
    story_items = [_story_item(ids, gen) for gen in stories]
    n_checks, n_repeats = counts_for(len(story_items))
    rng = random.Random(f"{seed}:checks")
    checks = make_checks(gens, {g.prompt_id for g in stories}, n_checks, rng)
    extra: list[Item] = []
    for check in checks:
        prompt_gen = check.prompt_from
        info = {"check": check.kind, "prompt_from": prompt_gen.id,
                "story_from": check.story_from.id, "story_field": check.story_field,
                "prompt_id": prompt_gen.prompt_id,
                "genre": prompt_gen.genre,
                "expect": {"dimension": check.dimension, "max": EXPECT_MAX}}
        extra.append(Item(ids(check.kind, prompt_gen.id, check.story_from.id), "attention",
                          prompt_gen.prompt, check.story, applicable(prompt_gen.controls), info))
    for original in rng.sample(story_items, n_repeats):
        info = {**original.info, "repeat_of": original.id}
        extra.append(Item(ids("repeat", original.info["generation"]), "repeat", original.prompt,
                          original.story, original.dimensions, info))
    all_items = story_items + extra
    pairs = _pairs(stories, pairwise, ids, random.Random(f"{seed}:pairs"))
    repeats = {i.id: i.info["repeat_of"] for i in all_items if i.type == "repeat"}
    orders = {}
    for rater in rater_ids(raters):
        rng = random.Random(f"{seed}:order:{rater}")
        orders[rater] = {"ratings": _order([i.id for i in all_items], repeats, rng),
                         "pairs": _order([p.id for p in pairs], {}, rng)}
    return Plan(seed, rater_ids(raters), all_items, pairs, orders)
