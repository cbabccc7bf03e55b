"""Preference data: reading the curated contract, its errors, tokenising items with the real
tokenizer, and laying a micro-batch's sequences end to end."""

from __future__ import annotations

import json

import pytest

from storyteller.errors import InputError
from storyteller.finetune.data import IGNORE
from storyteller.finetune.plan import Plan
from storyteller.finetune.prefdata import (as_unpaired, check_usable, collate_items, provenance,
                                           read_preference_data, tokenize_records)
from storyteller.models import load_tokenizer
from tests.integration.preference_data import preference_records, write_preference_data


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny-random")


def test_reads_the_curated_contract_and_its_provenance(tmp_path):
    data = write_preference_data(tmp_path / "p", train=6, val=2, test=2)
    splits, digest = read_preference_data(data)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [6, 2, 2]
    assert len(digest) == 64 and splits["train"][0]["chosen"][0]["role"] == "assistant"
    prov = provenance(data, splits)
    assert prov == {"made_by": "curate", "judgements": {"studio pick": 6}, "kinds": {"pair": 6}}


def test_plain_string_prompt_and_stories_are_accepted(tmp_path):
    record = {"id": "a", "kind": "pair", "prompt": "Write a fable.", "chosen": "A fox...",
              "rejected": "fox a"}
    data = write_preference_data(tmp_path / "p", train=1, val=0, test=0, records=[record])
    (train,) = read_preference_data(data)[0]["train"]
    assert train["prompt"] == [{"role": "user", "content": "Write a fable."}]
    assert train["rejected"] == [{"role": "assistant", "content": "fox a"}]


def test_sft_pairs_directory_is_refused_with_what_to_do(tmp_path):
    data = write_preference_data(tmp_path / "p", train=2, val=0, test=0)
    manifest = json.loads((data / "manifest.json").read_text())
    del manifest["kind"]
    (data / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError) as info:
        read_preference_data(data)
    text = str(info.value)
    assert "manifest.json" in text and "--preferences" in text and "storyteller pairs" in text


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("rejected"), "needs 'rejected'"),
    (lambda r: r.update(kind="thumbs"), "must be \"pair\" or \"unpaired\""),
    (lambda r: r.update(prompt=r["prompt"] + [{"role": "assistant", "content": "x"}]),
     "must not be the assistant's"),
    (lambda r: r.update(kind="unpaired", completion=r["chosen"]), "label true or false"),
    (lambda r: r.update(chosen=[{"role": "narrator", "content": "x"}]), "list of chat messages"),
])
def test_a_malformed_record_is_named_by_file_and_line(tmp_path, change, message):
    records = preference_records(3)
    change(records[1])
    data = write_preference_data(tmp_path / "p", train=3, val=0, test=0, records=records)
    with pytest.raises(InputError) as info:
        read_preference_data(data)
    assert f"{data / 'train.jsonl'}:2" in str(info.value) and message in str(info.value)


def test_pair_items_use_the_sft_tokenisation(tokenizer):
    from storyteller.finetune.data import tokenize_pair

    record = preference_records(1)[0]
    (item,), rejected = tokenize_records([record], "dpo", tokenizer, 512)
    assert not rejected and item.kind == "pair" and item.supervised == 1
    chosen = tokenize_pair({"id": "x", "messages": record["prompt"] + record["chosen"]},
                           tokenizer, 512)
    assert item.sequences[0].input_ids == chosen.input_ids
    assert item.sequences[0].labels == chosen.labels
    # same prompt, shorter (rejected) story; the end-of-turn token is supervised
    prompt = sum(label == IGNORE for label in chosen.labels)
    assert item.sequences[1].input_ids[:prompt] == chosen.input_ids[:prompt]
    assert item.sequences[1].labels[-1] == tokenizer.eos_token_id
    assert len(item) == len(chosen.input_ids) + len(item.sequences[1].input_ids)


def test_too_long_pairs_are_rejected_with_the_side_and_reason(tokenizer):
    records = preference_records(2)
    items, rejected = tokenize_records(records, "dpo", tokenizer, 80)
    assert not items and len(rejected) == 2
    assert rejected[0].reason.startswith("chosen: ") and "max_length 80" in rejected[0].reason


def test_kto_splits_pairs_and_keeps_unpaired(tokenizer):
    pairs = preference_records(2)
    thumbs = preference_records(2, unpaired=True, offset=3)
    unpaired = as_unpaired(pairs + thumbs)
    assert [r["id"] for r in unpaired[:2]] == [f"{pairs[0]['id']}:chosen", f"{pairs[0]['id']}:rejected"]
    assert [r["label"] for r in unpaired[:4]] == [True, False, True, False]
    items, rejected = tokenize_records(pairs + thumbs, "kto", tokenizer, 512)
    assert len(items) == 6 and not rejected
    # the mismatched sequence: this prompt with the previous record's story
    first, second = items[0], items[1]
    story_of = lambda ex: [t for t, l in zip(ex.input_ids, ex.labels) if l != IGNORE]
    assert story_of(second.sequences[1]) == story_of(first.sequences[0])
    assert second.sequences[1].input_ids[:5] == second.sequences[0].input_ids[:5]


def test_unpaired_records_into_dpo_say_to_use_kto(tokenizer):
    thumbs = preference_records(3, unpaired=True)
    items, rejected = tokenize_records(thumbs, "dpo", tokenizer, 512)
    with pytest.raises(InputError, match="objective=kto"):
        check_usable(items, rejected, "dpo", "data/train.jsonl")


def test_collate_lays_sequences_end_to_end_with_segments(tokenizer):
    items, _ = tokenize_records(preference_records(2), "dpo", tokenizer, 512)
    items[0].reference, items[1].reference = (-1.0, -2.0), (-3.0, -4.0)
    batch = collate_items(items, with_reference=True)
    lengths = [len(s.input_ids) for i in items for s in i.sequences]
    assert batch["input_ids"].shape == (1, sum(lengths))
    assert batch["cu_seq_lens_q"] == [0, lengths[0], sum(lengths[:2]), sum(lengths[:3]), sum(lengths)]
    assert batch["segments"].tolist() == [k for k, n in enumerate(lengths) for _ in range(n)]
    assert batch["position_ids"][0, lengths[0]].item() == 0
    assert batch["reference"].tolist() == [[-1.0, -2.0], [-3.0, -4.0]]
    # a sequence's first token is never supervised: no prediction crosses a boundary
    assert all(batch["labels"][0, b].item() == IGNORE for b in batch["cu_seq_lens_q"][:-1])
    items[1].reference = None
    with pytest.raises(RuntimeError, match="no reference"):
        collate_items(items, with_reference=True)


def test_plan_averages_over_items(tokenizer):
    items, _ = tokenize_records(preference_records(5), "dpo", tokenizer, 512)
    plan = Plan(tuple(items), batch_size=2, grad_accum=1)
    assert plan.total_steps == 3 and plan.step_supervised(0) == 2


@pytest.mark.parametrize("sets, key", [
    (["objective=dpo", "model.attention=sdpa"], "model.attention"),
    (["objective=kto", "data.streaming=true", "train.max_steps=5"], "data.streaming"),
    (["preference.label_smoothing=0.5"], "preference.label_smoothing"),
    (["objective=ipo"], "objective"),
])
def test_preference_settings_are_checked(sets, key):
    from storyteller.config import load_config
    from storyteller.errors import ConfigError
    from storyteller.finetune.config import FinetuneConfig

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(FinetuneConfig, None, sets)
