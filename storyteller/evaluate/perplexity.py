"""Held-out perplexity on the test stories: story tokens only, exactly as finetune supervises
them (the same tokenisation, labels and loss), one story per forward pass."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from storyteller.train.data import tokenize_pairs
from storyteller.train.model import StoryLoss


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


@dataclass(frozen=True)
class MarkerScore:
    id: str
    style: str
    logprob: float  # summed log-probability (nats) of the marker's tokens
    tokens: int

    @property
    def per_token(self) -> float:
        return self.logprob / self.tokens


def style_marker(pair: dict[str, Any]) -> tuple[str, str] | None:
    """(story text before the marker, the marker) for a house-style test story: the visible
    habit the style is recognised by, taken from the reference story itself — a fable's final
    `Moral:` line opening, a log's first `Log, day N:` header, a refrain's last return. None
    for other styles, for noir (a whole-story habit with no single marker) and where the story
    has no marker to find."""
    style = (pair.get("controls") or {}).get("style")
    story = pair["messages"][-1]["content"]
    if style == "moral" and "\nMoral:" in story:
        before, _, _ = story.rpartition("\nMoral:")
        return before + "\n", "Moral:"
    if style == "log" and pair.get("kind") != "opening" and story.startswith("Log, day"):
        return "", story[:story.index(":") + 1]
    if style == "refrain":
        from storyteller.styles import find_refrain

        refrain = find_refrain(story)
        if refrain and story.rstrip().endswith(refrain):
            return story.rstrip()[:-len(refrain)], refrain
    return None


@torch.inference_mode()
def marker_scores(model, tokenizer, pairs: Sequence[dict[str, Any]]) -> list[MarkerScore]:
    """How likely the model finds each house-style marker where the reference story has it:
    a teacher-forced view of adherence that moves long before sampled stories show the style."""
    device = next(model.parameters()).device
    results = []
    for pair in pairs:
        found = style_marker(pair)
        if found is None:
            continue
        before, marker = found
        prompt = tokenizer.apply_chat_template(pair["messages"][:-1], tokenize=False,
                                               add_generation_prompt=True)
        # The marker's tokens are those of the whole text that end inside the marker: text
        # tokenises differently at a boundary ("\n\n" + "Moral" is not "\n\n" then "Moral").
        boundary = len(prompt) + len(before)
        encoded = tokenizer(prompt + before + marker, add_special_tokens=False,
                            return_offsets_mapping=True)
        full = encoded["input_ids"]
        first = next((i for i, (_, end) in enumerate(encoded["offset_mapping"]) if end > boundary),
                     len(full))
        if first == 0 or first == len(full):
            continue
        context = full[:first]
        logits = model(input_ids=torch.tensor([full], device=device)).logits[0].float()
        logprobs = torch.log_softmax(logits[len(context) - 1:len(full) - 1], dim=-1)
        targets = torch.tensor(full[len(context):], device=device)
        total = logprobs.gather(1, targets[:, None]).sum()
        results.append(MarkerScore(pair["id"], pair["controls"]["style"], float(total),
                                   len(full) - len(context)))
    return results
