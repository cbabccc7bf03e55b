"""Padding-free attention for packed sequences.

A micro-batch is one row: its pairs laid end to end, with `bounds` (cumulative lengths) saying
where each pair starts. Attention runs pair by pair with the causal kernel, so no pair sees
another, no padding exists, and the cost is the sum of the squares of the pair lengths rather
than the square of the row length. Registered with transformers as the attention
implementation "storyteller_packed"; no attention mask is built for it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

NAME = "storyteller_packed"


def packed_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                     **kwargs):
    """query [1, heads, tokens, dim]; key/value [1, kv_heads, tokens, dim] → [1, tokens, heads, dim]."""
    bounds = kwargs.get("cu_seq_lens_q")
    if bounds is None:
        bounds = [0, query.shape[2]]
    elif isinstance(bounds, torch.Tensor):
        bounds = bounds.tolist()
    if query.shape[0] != 1:
        raise ValueError("packed attention takes one row per batch; lay the packs end to end")
    groups = query.shape[1] // key.shape[1]
    if groups > 1:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    p = dropout if module.training else 0.0
    pieces = [F.scaled_dot_product_attention(query[:, :, s:e], key[:, :, s:e], value[:, :, s:e],
                                             is_causal=True, scale=scaling, dropout_p=p)
              for s, e in zip(bounds[:-1], bounds[1:]) if e > s]
    return torch.cat(pieces, dim=2).transpose(1, 2).contiguous(), None


def register() -> str:
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, packed_attention)
    return NAME
