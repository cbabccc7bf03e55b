"""Preference data for `storyteller finetune --set objective=dpo|kto|orpo|simpo`: reading a
curated preference directory, tokenising its records into items the Plan can order, and
laying a micro-batch's sequences end to end.

An item is one training unit of two sequences, always in this order:
- a pair (DPO, ORPO, SimPO): prompt + chosen story, prompt + rejected story;
- an unpaired judgement (KTO): prompt + story, and prompt + another item's story (the
  mismatched sequence whose log-ratio estimates KTO's KL term, as TRL builds it).
Both are tokenised with `tokenize_pair` (the same chat template, only the story and its
end-of-turn token supervised). `supervised` is 1, so a step's loss averages over items."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from storyteller.curated import SPLITS, manifest_hash, read_split
from storyteller.errors import InputError, Problem
from storyteller.finetune.data import Example, Rejection, tokenize_pair

ROLES = ("system", "user", "assistant")
NOT_PREFERENCE = ("curate preference judgements with `storyteller curate --preferences`, or make "
                  "self-judged pairs with `storyteller pairs`")


@dataclass
class PrefItem:
    id: str
    kind: str  # "pair" or "unpaired"
    sequences: tuple[Example, Example]
    label: bool | None = None  # unpaired: a good (True) or bad (False) story
    # Summed log-probability of each sequence under the reference (the starting weights);
    # filled in before the first step (reference.py), None for objectives without one.
    reference: tuple[float, float] | None = None

    @property
    def supervised(self) -> int:
        return 1  # the loss is a mean over items, whatever their length

    def __len__(self) -> int:
        return sum(len(s.input_ids) for s in self.sequences)


def _messages(value: Any, where: str, name: str, assistant: bool) -> list[dict[str, str]] | Problem:
    if isinstance(value, str):  # what a hand-written file may hold; curate normalises it
        return [{"role": "assistant" if assistant else "user", "content": value}]
    if not isinstance(value, list) or not value or not all(
            isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)
            for m in value):
        return Problem(where, f"{name} must be a list of chat messages "
                              "({\"role\": system|user|assistant, \"content\": text})",
                       "curate the file again with storyteller curate --preferences")
    last = value[-1]["role"]
    if assistant and last != "assistant":
        return Problem(where, f"{name} must end with the assistant's story")
    if not assistant and last == "assistant":
        return Problem(where, "the prompt's last message must not be the assistant's")
    return value


def parse_record(line: str, where: str) -> dict[str, Any] | Problem | None:
    """One line as a preference record (contract: docs/finetune.md), a Problem at `where`, or
    None for a blank line."""
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return Problem(where, f"not valid JSON: {exc.msg}")
    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
        return Problem(where, "not a preference record (needs an id)")
    kind = record.get("kind")
    if kind not in ("pair", "unpaired"):
        return Problem(where, f"kind {kind!r}: must be \"pair\" or \"unpaired\"")
    fields = {"prompt": False}
    fields.update({"chosen": True, "rejected": True} if kind == "pair" else {"completion": True})
    out = dict(record)
    for name, assistant in fields.items():
        if name not in record:
            return Problem(where, f"a {kind} record needs {name!r}",
                           "see the preference record in docs/finetune.md")
        parsed = _messages(record[name], where, name, assistant)
        if isinstance(parsed, Problem):
            return parsed
        out[name] = parsed
    if kind == "unpaired" and not isinstance(record.get("label"), bool):
        return Problem(where, "an unpaired record needs label true or false")
    return out


def read_preference_split(directory: Path, split: str) -> list[dict[str, Any]]:
    return read_split(directory, split, parse_record)


def read_preference_data(directory: Path) -> tuple[dict[str, list[dict[str, Any]]], str]:
    """The splits of a curated preference directory and the sha256 of its manifest."""
    directory = Path(directory)
    data_hash = manifest_hash(directory)
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except json.JSONDecodeError as exc:
        raise InputError.at(str(directory / "manifest.json"), f"not valid JSON: {exc.msg}")
    if not isinstance(manifest, dict) or manifest.get("kind") != "preference":
        raise InputError.at(str(directory / "manifest.json"),
                            "not a preference directory (manifest.json lacks \"kind\": "
                            "\"preference\"; story pairs train with objective sft)",
                            NOT_PREFERENCE)
    splits = {split: read_preference_split(directory, split) for split in SPLITS}
    if not splits["train"]:
        raise InputError.at(str(directory / "train.jsonl"), "no training records", NOT_PREFERENCE)
    return splits, data_hash


def provenance(directory: Path, splits: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Where the judgements came from, for storyteller.json: who made the directory and how
    many training records each kind of judgement gave."""
    manifest = json.loads((Path(directory) / "manifest.json").read_text())
    return {"made_by": manifest.get("made_by"),
            "judgements": dict(Counter(str(r.get("judgement")) for r in splits["train"])),
            "kinds": dict(Counter(r["kind"] for r in splits["train"]))}


def as_unpaired(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """KTO's view: unpaired records as they are, each pair as a good and a bad record."""
    out = []
    for r in records:
        if r["kind"] == "unpaired":
            out.append(r)
            continue
        for side, label in (("chosen", True), ("rejected", False)):
            out.append({**r, "id": f"{r['id']}:{side}", "kind": "unpaired",
                        "completion": r[side], "label": label})
    return out


def _example(id_: str, prompt, story, tokenizer, max_length: int) -> Example | Rejection:
    return tokenize_pair({"id": id_, "messages": list(prompt) + list(story)}, tokenizer, max_length)


def tokenize_records(records: Sequence[dict[str, Any]], objective: str, tokenizer,
                     max_length: int) -> tuple[list[PrefItem], list[Rejection]]:
    """Items for `objective` and the records that cannot be trained on, with why."""
    items, rejected = [], []
    if objective != "kto":
        for r in records:
            if r["kind"] != "pair":
                rejected.append(Rejection(r["id"], f"an unpaired record: {objective} trains on "
                                                   "pairs (use objective kto)"))
                continue
            chosen = _example(r["id"], r["prompt"], r["chosen"], tokenizer, max_length)
            rejected_story = _example(r["id"], r["prompt"], r["rejected"], tokenizer, max_length)
            bad = next((x for x in (chosen, rejected_story) if isinstance(x, Rejection)), None)
            if bad is not None:
                side = "chosen" if bad is chosen else "rejected"
                rejected.append(Rejection(r["id"], f"{side}: {bad.reason}"))
                continue
            items.append(PrefItem(r["id"], "pair", (chosen, rejected_story)))
        return items, rejected
    unpaired = as_unpaired(records)
    for i, r in enumerate(unpaired):
        story = _example(r["id"], r["prompt"], r["completion"], tokenizer, max_length)
        # The mismatched sequence: this prompt with the previous record's story (TRL's
        # KL_completion_ids), a sample of what the policy writes for a prompt it was not
        # judged on.
        other = unpaired[i - 1]["completion"] if len(unpaired) > 1 else r["completion"]
        mismatched = _example(r["id"] + ":kl", r["prompt"], other, tokenizer, max_length)
        if isinstance(story, Rejection):
            rejected.append(story)
        elif isinstance(mismatched, Rejection):
            rejected.append(Rejection(r["id"], f"mismatched KL sequence: {mismatched.reason}"))
        else:
            items.append(PrefItem(r["id"], "unpaired", (story, mismatched), r["label"]))
    return items, rejected


def check_usable(items: list[PrefItem], rejected: list[Rejection], objective: str,
                 where: str) -> None:
    """Nothing to train on is an error that says why and what to do."""
    if items:
        return
    if not rejected:
        raise InputError.at(where, "no training records", NOT_PREFERENCE)
    wrong_kind = sum("an unpaired record" in r.reason for r in rejected)
    if wrong_kind == len(rejected):
        raise InputError.at(where, f"holds only unpaired (thumbs up / down) records; "
                                   f"objective {objective} needs chosen/rejected pairs",
                            "train with --set objective=kto, or curate pairs")
    raise InputError.at(where, f"no training record can be trained on ({len(rejected)} "
                               f"rejected; first: {rejected[0].id}: {rejected[0].reason})",
                        "raise data.max_length, or curate shorter stories")


def collate_items(items: Sequence[PrefItem], with_reference: bool) -> dict[str, Any]:
    """The items' sequences end to end in one row (padding-free, like collate_flat), with
    `segments` numbering the sequences so log-probs can be summed per sequence."""
    import torch

    input_ids, labels, position_ids, segments, bounds = [], [], [], [], []
    for item in items:
        for example in item.sequences:
            bounds.append(len(input_ids))
            segments += [len(bounds) - 1] * len(example.input_ids)
            input_ids += example.input_ids
            labels += example.labels
            position_ids += range(len(example.input_ids))
    bounds.append(len(input_ids))
    batch = {"input_ids": torch.tensor([input_ids]), "labels": torch.tensor([labels]),
             "position_ids": torch.tensor([position_ids]), "cu_seq_lens_q": bounds,
             "segments": torch.tensor(segments),
             "item_labels": torch.tensor([bool(i.label) for i in items])}
    if with_reference:
        missing = [i.id for i in items if i.reference is None]
        if missing:
            raise RuntimeError(f"no reference log-probabilities for {missing[0]}")
        batch["reference"] = torch.tensor([list(i.reference) for i in items], dtype=torch.float64)
    return batch
