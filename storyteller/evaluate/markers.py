"""Style markers: how likely a model finds each house-style marker where the reference story has
it, teacher-forced."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from storyteller.prompts import prompt_text


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
        prompt = prompt_text(tokenizer, pair["messages"][:-1])
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
