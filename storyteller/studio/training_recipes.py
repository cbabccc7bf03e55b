"""The recipes a writer's training job can run and the options a writer may change in them,
as data: each recipe's whole finetune config (its file under configs/finetune/, then its
overrides), each option's value in it, and settings checked as `storyteller finetune` would
check them. A job's folder and how it is filled are storyteller.studio.training."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from storyteller.errors import InputError

# The project root: the recipes' configs are under it, and the trainer runs the stages there.
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Option:
    key: str  # the finetune config key it sets
    label: str
    meaning: str
    kind: type = int
    low: float = 0


# The options a writer may change, with what they mean in words.
OPTIONS: tuple[Option, ...] = (
    Option("train.max_steps", "Steps", "How many updates training makes. More steps learn "
           "your style more firmly and take proportionally longer.", int, 1),
    Option("train.lr", "Learning rate", "How big each update is. Higher learns faster but "
           "can overshoot; LoRA runs use about 1e-4 to 2e-3.", float, 1e-7),
    Option("lora.r", "LoRA rank", "How much the adapter can hold: 8–16 suits a style, 32–64 "
           "a large corpus. Higher costs a little more memory and time.", int, 1),
    Option("lora.alpha", "LoRA alpha", "Scales the adapter's effect; usually twice the rank.",
           int, 1),
    Option("data.max_length", "Longest example (tokens)", "Stories longer than this are "
           "left out of training; longer costs more memory per step.", int, 16),
    Option("eval.every_steps", "Check every (steps)", "How often the held-out loss is "
           "measured and a sample story written (0: only at the end).", int, 0),
    Option("eval.sample_prompt", "Sample premise", "At each check the model writes a story "
           "from this premise, so you can watch your style take shape.", str),
    Option("eval.sample_tokens", "Sample length (tokens)", "How long that sample story is; "
           "longer shows more and takes longer at each check.", int, 1),
    Option("model.base", "Base model", "The model your style is taught to: smollm2-135m "
           "(built in), a local model folder or a hub id.", str),
)


@dataclass(frozen=True)
class Recipe:
    name: str
    label: str
    description: str
    config: str  # under configs/finetune/
    overrides: dict[str, Any] = field(default_factory=dict)
    gpu_only: bool = False


RECIPES: tuple[Recipe, ...] = (
    Recipe("quickstart", "Quick start", "LoRA on the built-in SmolLM2-135M, 240 steps: about "
           "10–25 minutes on a 2-core CPU. Learns a house style's surface.", "quickstart.yaml"),
    Recipe("style", "Longer style run", "The quick start at three times the steps with a "
           "larger adapter and a gentler learning rate: an hour or more on a CPU, for a "
           "style the quick start only begins to learn.", "quickstart.yaml",
           {"train.max_steps": 720, "train.lr": 1.0e-3, "lora.r": 32, "lora.alpha": 64,
            "eval.every_steps": 120, "checkpoint.every_steps": 120}),
    Recipe("qlora", "QLoRA on the GPU", "The base in 4-bit with LoRA on top, one pass over "
           "the stories: for larger bases on a GPU.", "qlora.yaml", gpu_only=True),
)


def recipes(gpu: bool) -> list[Recipe]:
    """The recipes this machine can run (QLoRA only where a GPU is visible)."""
    return [r for r in RECIPES if gpu or not r.gpu_only]


def recipe(name: str) -> Recipe:
    for candidate in RECIPES:
        if candidate.name == name:
            return candidate
    raise InputError.at("recipe", f"no recipe named {name!r}",
                        f"pick one of: {', '.join(r.name for r in RECIPES)}")


def config_value(data: dict[str, Any], key: str) -> Any:
    """The value at a dotted key (`train.max_steps`) of a config as data; None where it is
    unset (or an empty section)."""
    for part in key.split("."):
        data = data.get(part, {}) if isinstance(data, dict) else {}
    return None if data == {} else data


def set_config_value(data: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted key of a config as data, making the sections on its way."""
    *parents, last = key.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[last] = value


def recipe_settings(chosen: Recipe) -> dict[str, Any]:
    """The recipe's whole finetune config as data: its file, then its overrides."""
    data = yaml.safe_load((ROOT / "configs" / "finetune" / chosen.config).read_text()) or {}
    for key, value in chosen.overrides.items():
        set_config_value(data, key, value)
    return data


def option_defaults(chosen: Recipe) -> dict[str, Any]:
    """Each option's value in the recipe (the finetune default where the recipe sets none)."""
    from storyteller.finetune.config import FinetuneConfig

    settings, defaults = recipe_settings(chosen), _as_data(FinetuneConfig())
    return {o.key: config_value(settings, o.key) if config_value(settings, o.key) is not None
            else config_value(defaults, o.key) for o in OPTIONS}


def _as_data(config) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(config)


def check_settings(settings: dict[str, Any]) -> None:
    """Refuse settings finetune would refuse, naming the option by its label."""
    from storyteller.config import load_config
    from storyteller.finetune.config import FinetuneConfig

    labels = {o.key: o.label for o in OPTIONS}
    flags = {key: (labels[key], config_value(settings, key)) for key in labels}
    base = {k: v for k, v in settings.items()}
    for key in labels:  # the flags carry these, named by their labels
        *parents, last = key.split(".")
        node = base
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node.get(part), dict) else {}
        node.pop(last, None)
    load_config(FinetuneConfig, None, flags=flags, defaults=base)
