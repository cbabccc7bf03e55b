"""Base-model resolution on the real embedded GGUF and the tiny test model."""

import json

import pytest

from storyteller.errors import InputError
from storyteller.models import TINY_MODEL, load_tokenizer, resolve_model


def test_embedded_default_converts_to_a_plain_hf_directory():
    path = resolve_model("smollm2-135m")
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 30
    assert (path / "model.safetensors").exists() and (path / "COMPLETE").exists()
    tokenizer = load_tokenizer("smollm2-135m")
    assert tokenizer.eos_token == "<|im_end|>" and len(tokenizer) == 49152
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                             add_generation_prompt=True)
    assert rendered.endswith("<|im_start|>assistant\n")


def test_conversion_is_cached():
    first = resolve_model("smollm2-135m")
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    resolve_model.cache_clear()
    assert resolve_model("smollm2-135m") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp


def test_tiny_random_model_has_the_real_tokenizer_and_runs():
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve_model(TINY_MODEL)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert sum(p.numel() for p in model.parameters()) < 5_000_000
    tokenizer = load_tokenizer(TINY_MODEL)
    assert tokenizer.get_vocab() == load_tokenizer("smollm2-135m").get_vocab()
    ids = tokenizer("Once upon a time", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], model.config.vocab_size)


def test_local_directory_and_hub_id(tmp_path):
    assert resolve_model(str(resolve_model(TINY_MODEL))) == resolve_model(TINY_MODEL)
    assert resolve_model("someone/some-model") == "someone/some-model"
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a model directory"):
        resolve_model(str(tmp_path / "empty"))
    with pytest.raises(InputError, match="no such model"):
        resolve_model("no-such-model")


def test_the_end_token_is_the_models_end_of_turn_token():
    """The converted tokenizer ends a turn (and pads) with <|im_end|>, the model's eos id, even
    where a transformers version reads the GGUF's end token as <|im_start|>."""
    from transformers import AutoTokenizer

    from storyteller.models import align_end_token

    base = resolve_model()
    eos_id = json.loads((base / "config.json").read_text())["eos_token_id"]
    assert load_tokenizer().eos_token == "<|im_end|>" == load_tokenizer().pad_token
    assert load_tokenizer().eos_token_id == eos_id
    misread = AutoTokenizer.from_pretrained(base)
    misread.eos_token, misread.pad_token = "<|im_start|>", None
    align_end_token(misread, eos_id)
    assert (misread.eos_token, misread.pad_token) == ("<|im_end|>", "<|im_end|>")
