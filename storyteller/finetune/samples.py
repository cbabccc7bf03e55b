"""A story from the model being trained at each evaluation, from one fixed premise.

Validation loss says the model fits held-out stories better; the sample shows what it now
writes. The premise is rendered by `storyteller.prompts` exactly as a client of the endpoint
sends it (system prompt, user message, chat template with the generation prompt), and the story
is greedy, so two steps' samples differ only by what training changed in between.

Sampling must not change the run: the weights are only read, dropout and NEFTune are off in eval
mode, the global random state is saved and restored around it, and the model's training mode is
put back. A resumed run therefore trains exactly as an uninterrupted one."""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, ContextManager

import torch

from storyteller.finetune.attention import NAME as PACKED
from storyteller.prompts import StoryRequest, prompt_ids, render_messages
from storyteller.sampling import Sampling


def sample_messages(premise: str) -> list[dict[str, str]]:
    """The chat messages a client sends for `premise`, with the default system prompt."""
    return render_messages(StoryRequest(kind="premise", premise=premise))


@contextmanager
def generation_attention(lm):
    """Packed attention lays whole pairs end to end and masks causally inside each; a decoding
    step's single query against the cached keys would attend to the first key only. sdpa, with
    the same weights, decodes correctly; the training attention is put back afterwards."""
    config = lm.config
    before = config._attn_implementation
    if before == PACKED:
        config._attn_implementation = "sdpa"
    try:
        yield
    finally:
        config._attn_implementation = before


@contextmanager
def untouched_rng(device: torch.device):
    """Whatever generation draws, the run's random streams continue as if it had not run."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


@contextmanager
def decoding_threads(device: torch.device):
    """One CPU thread while a single story decodes: each token is a chain of small
    matrix-vector products, where waking a second thread costs more than it saves, and far more
    on a busy machine (24 tokens of SmolLM2-135M: 3.4 s on one thread, 26 s on two, on a shared
    2-core VM). Training gets its threads back afterwards."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def write_unchanged(lm, mode_of, tokenizer, prompts, seeds, sampling,
                    autocast: Callable[[], ContextManager] | None = None) -> list:
    """Stories from the model being trained, leaving the run as it was: eval mode for the
    call (training mode put back), the random state restored, sdpa for decoding and one CPU
    thread. On a GPU the stories compute as training does; on a CPU in the fp32 master weights:
    CPU autocast re-casts every frozen weight at every token (not cached outside autograd),
    which made a bf16 sample ten times slower than fp32 here."""
    from storyteller.decode import generate_batch

    was_training = mode_of.training
    mode_of.eval()
    device = next(lm.parameters()).device
    try:
        mixed = autocast is not None and device.type == "cuda"
        with untouched_rng(device), decoding_threads(device), generation_attention(lm), \
                (autocast() if mixed else nullcontext()):
            return generate_batch(lm, tokenizer, prompts, seeds, sampling)
    finally:
        mode_of.train(was_training)


class StorySampler:
    """`sampler(step)` → the samples.jsonl record of the story the model writes now."""

    def __init__(self, model, tokenizer, premise: str, max_tokens: int,
                 autocast: Callable[[], ContextManager] | None = None, mode_of=None):
        from storyteller.finetune.model import causal_lm

        self.lm = causal_lm(model)  # adapter layers are injected in place: this runs them
        self.mode_of = mode_of if mode_of is not None else self.lm
        self.tokenizer, self.premise = tokenizer, premise
        self.prompt = prompt_ids(tokenizer, sample_messages(premise))
        self.sampling = Sampling.from_preset("greedy", max_tokens=max_tokens)
        self.autocast = autocast

    def __call__(self, step: int) -> dict[str, Any]:
        started = time.perf_counter()
        story = write_unchanged(self.lm, self.mode_of, self.tokenizer, [self.prompt], [0],
                                self.sampling, self.autocast)[0]
        return {"step": step, "prompt": self.premise, "story": story.text,
                "seconds": round(time.perf_counter() - started, 3),
                "tokens": story.new_tokens, "finish_reason": story.finish_reason}


def sample_markdown(record: dict[str, Any]) -> str:
    """The sample as TensorBoard's text tab shows it (markdown: a blank line per paragraph)."""
    story = "\n\n".join(line for line in record["story"].splitlines() if line.strip())
    return (f"**Premise:** {record['prompt']}\n\n{story}\n\n"
            f"*{record['tokens']} tokens, {record['finish_reason']}, {record['seconds']:.1f} s*")
