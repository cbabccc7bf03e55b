"""Batched story generation with a KV cache, one seeded random stream per story.

Each story samples from its own generator seeded from (run seed, prompt, sample), so a story does
not depend on which other prompts shared its batch or on the batch size. Finished stories leave
the batch (their cache rows are dropped), so a batch costs what its live stories cost."""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from typing import Sequence

import torch

from storyteller.sampling import Sampling


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: str  # "stop": the model ended the story; "length": cut at the token limit
    new_tokens: int
    seconds: float
    token_ids: tuple[int, ...] = ()  # the story's tokens, stop token excluded


def stop_ids(model, tokenizer) -> set[int]:
    """Every token that ends a turn: the tokenizer's EOS and the generation config's EOS list."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    return {i for i in ids if i is not None}


def apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """Divide positive and multiply negative logits of already-seen tokens by `penalty`.
    `seen` is a [batch, vocab] boolean mask."""
    if penalty == 1.0:
        return logits
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


CANDIDATES = 1024  # tokens sorted per step; a nucleus is almost always far smaller


def nucleus(probs: torch.Tensor, top_k: int, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities, token ids) of the top-k / top-p candidates of each row, most likely
    first, the rest zeroed; unnormalised. The most likely token always survives.

    Sorting the whole vocabulary every step costs as much as the model's forward pass, so only
    the top CANDIDATES are sorted; a row whose nucleus is not inside them (a very flat
    distribution) is sorted in full, so the result is exact either way."""
    vocab = probs.shape[-1]
    k = min(vocab, top_k or vocab, CANDIDATES)
    values, ids = torch.topk(probs, k, dim=-1)
    cumulative = values.cumsum(-1)
    short = (cumulative[:, -1] < top_p) & (k < min(vocab, top_k or vocab))
    if bool(short.any()):
        k = min(vocab, top_k or vocab)
        values, ids = torch.topk(probs, k, dim=-1)
        cumulative = values.cumsum(-1)
    if top_p < 1.0:
        # Drop a token when the tokens before it already reach top_p.
        values = values.masked_fill(cumulative - values >= top_p, 0.0)
    return values, ids


def sample_next(logits: torch.Tensor, sampling: Sampling, seen: torch.Tensor,
                generators: Sequence[torch.Generator]) -> torch.Tensor:
    """The next token of each row of `logits` [batch, vocab] (float32)."""
    logits = apply_repetition_penalty(logits, seen, sampling.repetition_penalty)
    if sampling.temperature <= 0:
        return logits.argmax(-1)
    probs = (logits / sampling.temperature).softmax(-1)
    values, ids = nucleus(probs, sampling.top_k, sampling.top_p)
    picks = [torch.multinomial(row, 1, generator=gen)[0] for row, gen in zip(values, generators)]
    return ids.gather(1, torch.stack(picks)[:, None])[:, 0]


def cache_argument(model) -> str:
    """The name forward gives its KV cache: transformers 5.25 renamed `past_key_values` to
    `cache` and drops the old name in 5.40; earlier 5.x releases know only the old one."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def growing_cache(config):
    """A KV cache whose layers write into buffers that double when full and hand attention a
    view of the filled part. transformers' dynamic cache concatenates every step, copying the
    whole cache each token: at 1,500 tokens and batch 16 that is about 1 GB per step on
    SmolLM2-135M, more than the model's own work."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                self.filled = 0
                self.key_buffer = self.value_buffer = None
            needed = self.filled + key_states.shape[-2]
            if self.key_buffer is None or needed > self.key_buffer.shape[-2]:
                capacity = max(2 * needed, 256)
                self.key_buffer = self._grow(self.key_buffer, key_states, capacity)
                self.value_buffer = self._grow(self.value_buffer, value_states, capacity)
            self.key_buffer[:, :, self.filled:needed] = key_states
            self.value_buffer[:, :, self.filled:needed] = value_states
            self.filled = needed
            self.keys = self.key_buffer[:, :, :needed]
            self.values = self.value_buffer[:, :, :needed]
            return self.keys, self.values

        def _grow(self, buffer, states, capacity):
            shape = (*states.shape[:2], capacity, states.shape[-1])
            grown = states.new_empty(shape)
            if buffer is not None:
                grown[:, :, :self.filled] = buffer[:, :, :self.filled]
            return grown

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            if self.is_initialized and self.key_buffer is not None:
                self.key_buffer = self.key_buffer[indices]
                self.value_buffer = self.value_buffer[indices]
                self.keys = self.key_buffer[:, :, :self.filled]
                self.values = self.value_buffer[:, :, :self.filled]

    cache = DynamicCache(config=config)
    cache.layers = [GrowingLayer() for _ in cache.layers]
    return cache


def _select(cache, keep: torch.Tensor) -> None:
    for layer in cache.layers:
        layer.batch_select_indices(keep)


@torch.inference_mode()
def generate_batch(model, tokenizer, prompts: Sequence[Sequence[int]], seeds: Sequence[int],
                   sampling: Sampling) -> list[Generation]:
    """Stories of at most `sampling.max_tokens` tokens for the tokenised `prompts` (chat template
    applied), one seed each (`sampling.seed` is not used)."""
    started = time.perf_counter()
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stops = torch.tensor(sorted(stop_ids(model, tokenizer)), device=device)
    width = max(len(p) for p in prompts)
    # Left padding: every row's next token lands in the same last column.
    input_ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    vocab = model.get_output_embeddings().weight.shape[0]
    seen = torch.zeros((len(prompts), vocab), dtype=torch.bool, device=device)
    seen.scatter_(1, input_ids, mask.bool())
    generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
    outputs: list[list[int]] = [[] for _ in prompts]
    finish = ["length"] * len(prompts)
    live = list(range(len(prompts)))  # original row of each row still in the batch
    cache = growing_cache(model.config)
    with_cache = {cache_argument(model): cache, "use_cache": True}
    logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                   logits_to_keep=1, **with_cache).logits[:, -1]
    for _ in range(sampling.max_tokens):
        tokens = sample_next(logits.float().cpu(), sampling, seen.cpu(),
                             [generators[row] for row in live]).to(device)
        ended = torch.isin(tokens, stops)
        for index, row in enumerate(live):
            if ended[index]:
                finish[row] = "stop"
            else:
                outputs[row].append(int(tokens[index]))
        if bool(ended.all()):
            break
        if bool(ended.any()):
            keep = (~ended).nonzero().flatten()
            _select(cache, keep)
            live = [live[i] for i in keep.tolist()]
            tokens, mask, positions, seen = tokens[keep], mask[keep], positions[keep], seen[keep]
        seen[torch.arange(len(live), device=device), tokens] = True
        mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
        positions = positions[:, -1:] + 1
        logits = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=positions,
                       **with_cache).logits[:, -1]
    seconds = time.perf_counter() - started
    return [Generation(tokenizer.decode(ids, skip_special_tokens=True).strip(), finish[row],
                       len(ids) + (finish[row] == "stop"), seconds, tuple(ids))
            for row, ids in enumerate(outputs)]
