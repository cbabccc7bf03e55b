"""The CUDA paths for real: QLoRA's 4-bit base with bitsandbytes, bf16 LoRA, and story
generation on the GPU. Skipped where there is no CUDA GPU (see tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from storyteller.config import load_config
from storyteller.evaluate.config import EvaluateConfig
from storyteller.evaluate.run import run as evaluate
from storyteller.models import inspect_model, load_for_inference
from storyteller.finetune.model import apply_method, choose_precision, load_base
from storyteller.finetune.run import run as finetune
from tests.integration.finetune_data import write_data
from tests.integration.test_finetune import config as finetune_config

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("data") / "curated")


def config(data: Path, out: Path, *sets: str):
    """test_finetune's tiny quickstart config, without validation during training."""
    return finetune_config(data, out, "eval.every_steps=0", *sets)


def test_qlora_base_is_4bit_on_the_gpu_with_bf16_compute(data, tmp_path):
    import bitsandbytes as bnb
    from storyteller.models import resolve_model

    cfg = config(data, tmp_path, "model.method=qlora")
    device = torch.device("cuda")
    precision = choose_precision("auto", device)
    assert precision.name == "bf16"
    model = apply_method(load_base(cfg, resolve_model("tiny-random"), precision, device), cfg)
    four_bit = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert four_bit, "no 4-bit layers: the base was not quantised"
    assert all(m.weight.device.type == "cuda" for m in four_bit)
    assert {m.weight.quant_state.quant_type for m in four_bit} == {"nf4"}
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


@pytest.mark.parametrize("method", ["qlora", "lora"])
def test_finetune_on_the_gpu_learns_and_writes_final(data, tmp_path, method):
    result = finetune(config(data, tmp_path / method, f"model.method={method}",
                             "train.max_steps=8", "checkpoint.every_steps=4"))
    run = json.loads((result.run_dir / "run.json").read_text())
    assert run["precision"]["name"] == "bf16"
    assert "gpu" in run["environment"]
    assert result.summary["test_loss_tuned"] < result.summary["test_loss_base"]
    assert (result.run_dir / "final" / "adapter_model.safetensors").is_file()
    # The adapter trained on 4-bit weights merges into the full-precision base and generates.
    model, tokenizer = load_for_inference(inspect_model(str(result.run_dir)), device="cuda",
                                          dtype=torch.bfloat16)
    ids = tokenizer("Once upon a time", return_tensors="pt").input_ids.cuda()
    out = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 8


def test_evaluate_generates_on_the_gpu(data, tmp_path):
    tuned = finetune(config(data, tmp_path / "run", "train.max_steps=4"))
    cfg = load_config(EvaluateConfig, None, [
        f"model={tuned.run_dir}", f"data={data}", f"out={tmp_path / 'eval'}", "limit=4",
        "generation.max_tokens=24", "generation.batch_size=4", "metrics.relevance=false",
        "metrics.bootstrap_resamples=200"])
    result = evaluate(cfg)
    records = [json.loads(line) for line in
               (result.out / "generations.jsonl").read_text().splitlines()]
    assert len(records) == 8  # 4 prompts x (tuned, base)
    assert all(r["new_tokens"] > 0 for r in records)
    metrics = json.loads((result.out / "metrics.json").read_text())
    assert metrics["models"]
