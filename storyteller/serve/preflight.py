"""Checks before an engine is launched: everything that would otherwise surface as a confusing
engine error minutes later, or worse as stories that never stop or ignore their controls.

Pure functions over the files of a model directory and its adapters; each failure is a located
Problem with what to do."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyteller.errors import Problem

# vLLM's accepted --max-lora-rank values; the largest is the engine's maximum.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# Module names of the input embedding and output layer across common architectures.
EMBEDDING_MODULES = ("embed_tokens", "lm_head", "wte", "wpe", "embed_out", "word_embeddings",
                     "output")


@dataclass(frozen=True)
class Adapter:
    name: str
    path: Path


def parse_adapter(spec: str) -> Adapter:
    """`name=path` or `path` (named after its folder; a run's final/ after the run)."""
    name, sep, path = spec.partition("=")
    if not sep:
        path, name = spec, ""
    location = Path(path).expanduser()
    if (location / "final").is_dir():
        location = location / "final"
    if not name:
        name = location.parent.name if location.name == "final" else location.name
    return Adapter(name, location)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def chat_template_of(model_dir: Path) -> str | None:
    if (model_dir / "chat_template.jinja").is_file():
        return (model_dir / "chat_template.jinja").read_text(encoding="utf-8")
    config = read_json(model_dir / "tokenizer_config.json") or {}
    template = config.get("chat_template")
    return template if isinstance(template, str) and template.strip() else None


def eos_ids(model_dir: Path) -> list[int]:
    config = read_json(model_dir / "generation_config.json") or {}
    eos = config.get("eos_token_id")
    if eos is None:
        return []
    return [int(x) for x in (eos if isinstance(eos, list) else [eos])]


def check_model(model_dir: Path, base: bool = False) -> list[Problem]:
    """A model directory an engine can serve as storyteller expects: weights, chat template,
    every stop id, the control schema. A `base` model (storyteller.models' embedded ones,
    served before any fine-tune) has no control schema of its own: clients offer the schema's
    examples for it."""
    where = str(model_dir)
    if not model_dir.is_dir():
        return [Problem(where, "is not a directory",
                        "pass a model directory written by `storyteller merge --run runs/NAME`,"
                        " or a base model by name: smollm2-135m")]
    problems = []
    if (model_dir / "adapter_config.json").exists():
        return [Problem(where, "is an adapter, not a model",
                        f"merge it first: storyteller merge --run {model_dir}, or serve it with "
                        "--adapter next to its base model (vLLM)")]
    if not any(model_dir.glob("*.safetensors")) and not any(model_dir.glob("*.bin")):
        problems.append(Problem(where, "has no weights (*.safetensors)",
                                "write it with storyteller merge"))
    if not (model_dir / "config.json").is_file():
        problems.append(Problem(f"{where}/config.json", "is missing", "write it with storyteller merge"))
    template = chat_template_of(model_dir)
    if template is None:
        problems.append(Problem(f"{where}/chat_template.jinja", "no chat template in the model "
                                "directory (nor in tokenizer_config.json)",
                                "the engine would format prompts unlike training; re-run "
                                "storyteller merge"))
    stops = eos_ids(model_dir)
    if not stops:
        problems.append(Problem(f"{where}/generation_config.json", "has no eos_token_id",
                                "stories would run to the token limit; re-run storyteller merge"))
    else:
        needed = required_stop_ids(model_dir)
        missing = sorted(set(needed) - set(stops))
        if missing:
            problems.append(Problem(f"{where}/generation_config.json",
                                    f"eos_token_id {stops} lacks stop id(s) {missing} that end a "
                                    "turn in this tokenizer",
                                    "re-run storyteller merge, which writes every stop id"))
    metadata = read_json(model_dir / "storyteller.json")
    if base:
        return problems
    if metadata is None:
        problems.append(Problem(f"{where}/storyteller.json", "is missing or not JSON",
                                "the control schema tells clients which genres and styles the "
                                "model knows; re-run storyteller merge"))
    else:
        for key in ("control_schema", "header_fields"):
            if not metadata.get(key):
                problems.append(Problem(f"{where}/storyteller.json", f"has no {key!r}",
                                        "re-run storyteller merge on a storyteller run"))
    return problems


def required_stop_ids(model_dir: Path) -> list[int]:
    """The tokenizer's eos and end-of-turn ids, read from tokenizer files without loading it."""
    from storyteller.merge import END_OF_TURN_TOKENS

    tokenizer = read_json(model_dir / "tokenizer.json") or {}
    vocab = {t["content"]: t["id"] for t in tokenizer.get("added_tokens", [])}
    config = read_json(model_dir / "tokenizer_config.json") or {}
    eos = config.get("eos_token")
    eos = eos.get("content") if isinstance(eos, dict) else eos
    names = {eos, *END_OF_TURN_TOKENS}
    # Only tokens the template actually uses to end a turn, plus eos itself.
    template = chat_template_of(model_dir) or ""
    return sorted(vocab[n] for n in names if n in vocab and (n == eos or n in template))


def lora_rank_limit(rank: int) -> int | None:
    """The smallest vLLM --max-lora-rank that holds `rank`; None above the engine's maximum."""
    return next((r for r in VLLM_LORA_RANKS if r >= rank), None)


def check_adapter(adapter: Adapter, base_model_dir: Path) -> list[Problem]:
    """An adapter vLLM can serve on top of the base: a plain LoRA within the rank limit that
    adds no tokens and trains no embedding or output layer."""
    where = str(adapter.path)
    config = read_json(adapter.path / "adapter_config.json")
    if config is None:
        return [Problem(where, "has no adapter_config.json", "pass a run's final/ directory")]
    problems = []
    if config.get("peft_type", "LORA") != "LORA":
        problems.append(Problem(f"{where}/adapter_config.json", f"peft_type {config['peft_type']} "
                                "is not LoRA", "merge it instead: storyteller merge"))
    rank = int(config.get("r") or 0)
    ranks = [rank, *[int(v) for v in (config.get("rank_pattern") or {}).values()]]
    if lora_rank_limit(max(ranks)) is None:
        problems.append(Problem(f"{where}/adapter_config.json", f"rank {max(ranks)} is above the "
                                f"engine's maximum LoRA rank {VLLM_LORA_RANKS[-1]}",
                                "merge it instead: storyteller merge"))
    if config.get("use_dora"):
        problems.append(Problem(f"{where}/adapter_config.json", "is a DoRA adapter, which vLLM "
                                "cannot serve unmerged", "merge it instead: storyteller merge"))
    trained = [m for m in (config.get("modules_to_save") or []) if _is_embedding(m)]
    targets = config.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else targets
    trained += [m for m in targets if _is_embedding(m)]
    if config.get("trainable_token_indices"):
        trained.append("trainable_token_indices")
    if trained:
        problems.append(Problem(f"{where}/adapter_config.json", f"trains the embedding or output "
                                f"layer ({', '.join(sorted(set(trained)))})",
                                "adapters must leave them frozen to be served as LoRA; merge it "
                                "instead: storyteller merge"))
    added = added_tokens(adapter.path, base_model_dir)
    if added:
        problems.append(Problem(f"{where}/tokenizer.json", f"adds {len(added)} token(s) the base "
                                f"does not have, e.g. {added[0]!r}",
                                "controls are plain text (storyteller.prompts); retrain without "
                                "new tokens"))
    return problems


def _is_embedding(module: str) -> bool:
    return module.split(".")[-1] in EMBEDDING_MODULES


def added_tokens(adapter_dir: Path, base_dir: Path) -> list[str]:
    """Tokens in the adapter's tokenizer that the base's tokenizer lacks."""
    mine, base = read_json(adapter_dir / "tokenizer.json"), read_json(base_dir / "tokenizer.json")
    if mine is None or base is None:
        return []
    base_tokens = {t["content"] for t in base.get("added_tokens", [])} | \
        set((base.get("model") or {}).get("vocab") or {})
    mine_tokens = [t["content"] for t in mine.get("added_tokens", [])] + \
        list((mine.get("model") or {}).get("vocab") or {})
    return [t for t in mine_tokens if t not in base_tokens]
