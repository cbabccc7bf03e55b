"""The story a run writes at each evaluation (samples.jsonl): when it is written, that it is what
a client of the served model would get for the same premise, that it leaves training exactly as
it was, and that a resumed run has each step's sample once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from storyteller.config import load_config
from storyteller.finetune.config import DEFAULT_SAMPLE_PREMISE, FinetuneConfig
from storyteller.finetune.run import run
from tests.conftest import ROOT
from tests.integration.finetune_data import write_data

QUICKSTART = ROOT / "configs" / "finetune" / "quickstart.yaml"
# Dropout makes the training draw from the random stream, so a sample that moved it would show.
TINY = ["model.base=tiny-random", "data.max_length=512", "eval.max_pairs=0",
        "train.warmup_steps=1", "train.lr=5e-3", "lora.dropout=0.1", "log.plots=false",
        "eval.test_at_end=false", "eval.sample_tokens=24"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("data") / "curated", train=16, val=4, test=2)


def train(data: Path, out: Path, *sets: str, resume: bool = False):
    return run(load_config(FinetuneConfig, QUICKSTART, [*TINY, f"data.dir={data}", f"out={out}",
                                                        *sets]), resume=resume)


def samples(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


def adapter(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "final" / "adapter_model.safetensors")


def same(a: dict, b: dict) -> bool:
    """Equal up to float noise: a sample that moved the random stream would change the dropout
    masks, and the weights by far more."""
    return a.keys() == b.keys() and all((a[k] - b[k]).abs().max().item() <= 1e-6 for k in a)


def stories(run_dir: Path) -> list[tuple]:
    return [(r["step"], r["prompt"], r["story"], r["tokens"]) for r in samples(run_dir)]


SIX = ["train.max_steps=6", "eval.every_steps=2", "checkpoint.every_steps=2",
       "checkpoint.keep_last=5", "checkpoint.keep_best=false"]


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "reference"
    train(data, out, *SIX)
    return out


def test_a_sample_at_every_evaluation_in_jsonl_and_tensorboard(reference):
    records = samples(reference)
    assert [r["step"] for r in records] == [0, 2, 4, 6]
    for record in records:
        assert record["prompt"] == DEFAULT_SAMPLE_PREMISE
        assert isinstance(record["story"], str) and record["seconds"] > 0
        assert record["tokens"] == 24 and record["finish_reason"] == "length"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(reference / "tensorboard"), size_guidance={"tensors": 0})
    events.Reload()
    assert [e.step for e in events.Tensors("sample/text_summary")] == [0, 2, 4, 6]
    text = events.Tensors("sample/text_summary")[0].tensor_proto.string_val[0].decode()
    assert DEFAULT_SAMPLE_PREMISE in text


def test_sampling_leaves_training_exactly_as_it_was(reference, data, tmp_path):
    without = tmp_path / "without"
    train(data, without, *SIX, "eval.sample_prompt=")
    assert not samples(without)  # '' writes none
    assert same(adapter(reference), adapter(without))
    metrics = lambda d: [(r["kind"], r["step"], r.get("loss"), r.get("val_loss"))
                         for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines())]
    assert metrics(reference) == metrics(without)


def test_a_resumed_run_has_each_steps_sample_once(reference, data, tmp_path):
    out = tmp_path / "resumed"
    train(data, out, *SIX)
    # As if killed after step 4's evaluation and sample but before its checkpoint: the
    # checkpoints after step 2 are gone, the log already holds steps 4 and 6.
    for name in ("step-000004", "step-000006"):
        shutil.rmtree(out / "checkpoints" / name)
    shutil.rmtree(out / "final")
    with (out / "samples.jsonl").open("a") as log:
        log.write('{"step": 8, "prompt": "cut off by a ki')  # a line a kill cut short
    train(data, out, *SIX, resume=True)
    assert [r["step"] for r in samples(out)] == [0, 2, 4, 6]
    assert stories(out) == stories(reference)
    assert same(adapter(reference), adapter(out))


def test_a_fresh_start_drops_what_a_killed_attempt_logged(data, tmp_path):
    out = tmp_path / "fresh"
    out.mkdir()
    (out / "samples.jsonl").write_text('{"step": 0, "prompt": "old", "story": "old"}\n')
    (out / "metrics.jsonl").write_text('{"kind": "eval", "step": 0, "val_loss": 9.9}\n')
    train(data, out, "train.max_steps=1", "eval.every_steps=1", "checkpoint.every_steps=0",
          resume=True)  # --resume with no checkpoint yet starts afresh
    assert [r["step"] for r in samples(out)] == [0, 1]
    assert all(r["prompt"] == DEFAULT_SAMPLE_PREMISE for r in samples(out))
    evals = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()
             if '"eval"' in l]
    assert [r["step"] for r in evals] == [0, 1] and evals[0]["val_loss"] != 9.9


@pytest.mark.parametrize("method, sets", [
    ("qlora", []),
    ("full", []),
    ("lora", ["lora.dora=true", "model.gradient_checkpointing=true", "model.attention=sdpa",
              "train.neftune_alpha=5"]),
])
def test_every_method_writes_samples(data, tmp_path, method, sets):
    out = tmp_path / method
    train(data, out, f"model.method={method}", "train.max_steps=1", "eval.every_steps=1",
          "checkpoint.every_steps=0", "eval.sample_prompt=A lighthouse keeper's last night.",
          *sets)
    records = samples(out)
    assert [r["step"] for r in records] == [0, 1]
    assert all(r["prompt"] == "A lighthouse keeper's last night." and r["tokens"] == 24
               for r in records)


# --- the sampler on the real model ---------------------------------------------------------

def test_the_sample_is_what_the_served_model_writes_for_the_premise():
    """The embedded SmolLM2 in training dress (packed attention, LoRA, train mode) writes the
    same greedy story as the model loaded for inference does for a client's request; the
    training attention, mode and random state are back as they were afterwards."""
    from storyteller.client import story_messages
    from storyteller.decode import generate_batch
    from storyteller.finetune.model import apply_method, load_base
    from storyteller.finetune.model import PrecisionChoice
    from storyteller.finetune.samples import StorySampler
    from storyteller.models import inspect_model, load_for_inference, load_tokenizer, resolve_model
    from storyteller.prompts import prompt_ids, story_request
    from storyteller.sampling import Sampling

    cfg = load_config(FinetuneConfig, QUICKSTART, ["lora.dropout=0.1"])
    tokenizer = load_tokenizer(cfg.model.base)
    model = apply_method(load_base(cfg, resolve_model(cfg.model.base),
                                   PrecisionChoice("fp32", ""), torch.device("cpu")), cfg)
    model.train()
    sampler = StorySampler(model, tokenizer, "A boy teaches his grandmother to whistle.", 40)
    rng = torch.get_rng_state()
    record = sampler(12)
    assert torch.equal(torch.get_rng_state(), rng)
    assert model.training and model.get_base_model().config._attn_implementation == \
        "storyteller_packed"

    served, served_tokenizer = load_for_inference(inspect_model(cfg.model.base))
    messages = story_messages(story_request(premise="A boy teaches his grandmother to whistle."))
    expected = generate_batch(served, served_tokenizer, [prompt_ids(served_tokenizer, messages)],
                              [0], Sampling.from_preset("greedy", max_tokens=40))[0]
    # The untrained adapter adds nothing (LoRA's B starts at zero): the same story.
    assert record["story"] == expected.text and len(record["story"].split()) > 10
    assert record["step"] == 12 and record["tokens"] == 40


def test_decoding_with_the_training_attention_matches_a_full_forward():
    """Packed attention decodes wrongly from a cache (one query sees only the first key);
    generation_attention swaps in sdpa, whose cached step equals the uncached forward."""
    from transformers import AutoModelForCausalLM

    from storyteller.decode import cache_argument, growing_cache
    from storyteller.finetune.attention import register
    from storyteller.finetune.samples import generation_attention
    from storyteller.models import resolve_model

    model = AutoModelForCausalLM.from_pretrained(resolve_model("smollm2-135m"),
                                                 attn_implementation=register(),
                                                 dtype=torch.float32).eval()
    ids = torch.tensor([[1, 504, 3458, 282, 253, 1345, 28, 314, 4226, 13, 411]])

    def cached_last(model) -> torch.Tensor:
        cache = growing_cache(model.config)
        kwargs = {cache_argument(model): cache, "use_cache": True}
        model(input_ids=ids[:, :-1], **kwargs)
        return model(input_ids=ids[:, -1:], position_ids=torch.tensor([[ids.shape[1] - 1]]),
                     **kwargs).logits[0, -1]

    with torch.no_grad():
        full = model(input_ids=ids).logits[0, -1]
        wrong = cached_last(model)
        with generation_attention(model):
            right = cached_last(model)
    assert (wrong - full).abs().max() > 1e-2
    assert torch.allclose(right, full, atol=1e-4)
