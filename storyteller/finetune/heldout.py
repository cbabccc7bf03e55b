"""Held-out story loss: story tokens only, exactly as finetune supervises them (the same
tokenisation, labels and loss), one story per forward pass. Evaluation reports it as perplexity
and merge verification compares it before and after merging."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from storyteller.finetune.data import tokenize_pairs
from storyteller.finetune.model import StoryLoss


@dataclass(frozen=True)
class StoryNll:
    id: str
    loss_sum: float  # summed cross-entropy (nats) over the story's supervised tokens
    tokens: int


def pooled_perplexity(items: Sequence[StoryNll]) -> float:
    """exp(total nats / total tokens): token-weighted, the number finetune's test loss reports."""
    tokens = sum(item.tokens for item in items)
    return math.exp(sum(item.loss_sum for item in items) / tokens) if tokens else float("nan")


@torch.inference_mode()
def story_nll(model, tokenizer, pairs: Sequence[dict[str, Any]], max_length: int = 4096,
              progress=lambda items, description: items) -> tuple[list[StoryNll], list[str]]:
    """Per test story, its summed loss and token count; and the ids of pairs that could not be
    scored (too long, no story tokens)."""
    examples, rejected = tokenize_pairs(pairs, tokenizer, max_length)
    loss = StoryLoss(model)
    device = next(model.parameters()).device
    results = []
    for example in progress(examples, "perplexity"):
        ids = torch.tensor([example.input_ids], device=device)
        labels = torch.tensor([example.labels], device=device)
        positions = torch.arange(ids.shape[1], device=device)[None]
        total, count = loss(input_ids=ids, position_ids=positions, labels=labels)
        results.append(StoryNll(example.id, float(total), int(count)))
    return results, [r.id for r in rejected]
