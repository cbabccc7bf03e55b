"""Training examples from curated pairs: tokenise through the model's chat template, supervise
only the story and its end-of-turn token, and pack several pairs into one sequence with
attention kept inside each pair.

Pure functions of (pairs, tokenizer); nothing here touches disk or a device."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from storyteller.prompts import prompt_ids, token_ids

IGNORE = -100  # label of a token the loss does not see


@dataclass(frozen=True)
class Example:
    """One pair, tokenised: `labels` is IGNORE over the prompt and the story's ids after it."""

    id: str
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def supervised(self) -> int:
        return sum(label != IGNORE for label in self.labels)


@dataclass(frozen=True)
class Rejection:
    id: str
    reason: str


def end_of_turn_id(tokenizer) -> int:
    """The token that ends an assistant turn in the chat template (SmolLM2: `<|im_end|>`)."""
    return tokenizer.eos_token_id


def tokenize_pair(pair: dict[str, Any], tokenizer, max_length: int) -> Example | Rejection:
    """The pair as an Example, or why it cannot be trained on.

    The prompt is the chat template applied to every message but the last with the generation
    prompt added; the full sequence is the template applied to all messages, cut just after the
    assistant's end-of-turn token (what follows it is the template's spacing, not the story)."""
    messages = pair["messages"]
    if not messages or messages[-1]["role"] != "assistant":
        return Rejection(pair["id"], "the last message is not the assistant's story")
    prompt = prompt_ids(tokenizer, messages[:-1])
    full = token_ids(tokenizer.apply_chat_template(messages, tokenize=True))
    if full[:len(prompt)] != prompt:
        return Rejection(pair["id"], "the tokenised prompt is not a prefix of prompt + story "
                                     "(the chat template renders the prompt differently)")
    end = end_of_turn_id(tokenizer)
    try:
        stop = full.index(end, len(prompt))
    except ValueError:
        return Rejection(pair["id"], "no end-of-turn token after the story")
    input_ids = full[:stop + 1]
    labels = [IGNORE] * len(prompt) + input_ids[len(prompt):]
    if len(input_ids) > max_length:
        return Rejection(pair["id"], f"{len(input_ids)} tokens, more than max_length {max_length} "
                                     "(curate with a smaller pairs.max_story_tokens)")
    story_tokens = [label for label in labels if label != IGNORE]
    if not story_tokens or story_tokens == [end]:
        return Rejection(pair["id"], "no story token to supervise")
    return Example(pair["id"], tuple(input_ids), tuple(labels))


def tokenize_pairs(pairs: Iterable[dict[str, Any]], tokenizer,
                   max_length: int) -> tuple[list[Example], list[Rejection]]:
    examples, rejected = [], []
    for pair in pairs:
        result = tokenize_pair(pair, tokenizer, max_length)
        (examples if isinstance(result, Example) else rejected).append(result)
    return examples, rejected


@dataclass
class Pack:
    """Several examples in one sequence: `position_ids` restart and `segments` number the
    examples, so attention can be kept inside each one."""

    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    position_ids: list[int] = field(default_factory=list)
    segments: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def add(self, example: Example) -> None:
        segment = len(self.ids)
        self.input_ids.extend(example.input_ids)
        self.labels.extend(example.labels)
        self.position_ids.extend(range(len(example.input_ids)))
        self.segments.extend([segment] * len(example.input_ids))
        self.ids.append(example.id)

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def supervised(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def pack(examples: Sequence[Example], max_length: int) -> list[Pack]:
    """First-fit packing in the given order: each example goes into the first pack with room,
    else a new one. Deterministic; an example is never split."""
    packs: list[Pack] = []
    for example in examples:
        size = len(example.input_ids)
        target = next((p for p in packs if len(p) + size <= max_length), None)
        if target is None:
            target = Pack()
            packs.append(target)
        target.add(example)
    return packs


def pack_longest_first(examples: Sequence[Example], max_length: int,
                      several: bool = True) -> list[Pack]:
    """Longest first then first-fit: the fullest packs (least padding) for the data; with
    `several` false, one example per pack. The whole training split is packed this way, or each
    buffer of it when it is streamed."""
    ordered = sorted(examples, key=lambda e: (-len(e.input_ids), e.id))
    if several:
        return pack(ordered, max_length)
    return [pack([e], max_length)[0] for e in ordered]


def block_causal_mask(segments: Sequence[Sequence[int]], length: int):
    """A boolean [batch, 1, length, length] mask: a token sees earlier tokens of its own
    segment only. Padding (segment -1) sees nothing but itself."""
    import torch

    batch = torch.full((len(segments), length), -1, dtype=torch.long)
    for row, segment in enumerate(segments):
        batch[row, :len(segment)] = torch.tensor(segment, dtype=torch.long)
    same = batch[:, :, None] == batch[:, None, :]
    causal = torch.tril(torch.ones(length, length, dtype=torch.bool))
    mask = same & causal[None]
    eye = torch.eye(length, dtype=torch.bool)[None]
    return (mask | eye)[:, None]


def collate(packs: Sequence[Pack], pad_id: int) -> dict[str, Any]:
    """Pad packs to the longest. Labels of padding are IGNORE by position, never by token id, so
    an end-of-turn token equal to the pad token is still supervised."""
    import torch

    length = max(len(p) for p in packs)
    input_ids = torch.full((len(packs), length), pad_id, dtype=torch.long)
    labels = torch.full((len(packs), length), IGNORE, dtype=torch.long)
    position_ids = torch.zeros((len(packs), length), dtype=torch.long)
    for row, p in enumerate(packs):
        input_ids[row, :len(p)] = torch.tensor(p.input_ids)
        labels[row, :len(p)] = torch.tensor(p.labels)
        position_ids[row, :len(p)] = torch.tensor(p.position_ids)
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids,
            "attention_mask": block_causal_mask([p.segments for p in packs], length)}


def padding_share(packs: Sequence[Pack], batch_size: int) -> float:
    """The share of padded positions when `packs` are batched `batch_size` at a time in order."""
    padded = real = 0
    for start in range(0, len(packs), batch_size):
        batch = packs[start:start + batch_size]
        longest = max(len(p) for p in batch)
        padded += longest * len(batch)
        real += sum(len(p) for p in batch)
    return 1 - real / padded if padded else 0.0


def collate_flat(packs: Sequence[Pack]) -> dict[str, Any]:
    """The packs end to end in one row, for padding-free attention: `cu_seq_lens_q` holds where
    each pair starts (cumulative lengths), `position_ids` restart at each pair."""
    import torch

    input_ids, labels, position_ids, bounds = [], [], [], [0]
    for p in packs:
        offset = len(input_ids)
        bounds += [offset + i for i, pos in enumerate(p.position_ids) if pos == 0 and offset + i]
        input_ids += p.input_ids
        labels += p.labels
        position_ids += p.position_ids
    bounds.append(len(input_ids))
    return {"input_ids": torch.tensor([input_ids]), "labels": torch.tensor([labels]),
            "position_ids": torch.tensor([position_ids]), "cu_seq_lens_q": bounds}
