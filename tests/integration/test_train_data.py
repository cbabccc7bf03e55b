"""Tokenisation, loss masks and packing for fine-tuning, on the real SmolLM2 tokenizer and the
tiny random model of the same architecture."""

import pytest
import torch

from storyteller.models import TINY_MODEL, load_tokenizer, resolve_model
from storyteller.prompts import StoryRequest, render_messages
from storyteller.finetune.data import (IGNORE, Rejection, collate, pack, padding_share,
                                    tokenize_pair, tokenize_pairs)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("smollm2-135m")


def make_pair(pair_id="p1", story="The fox ran home before the storm and slept.", premise="A fox."):
    request = StoryRequest(kind="premise", controls={"genre": "fable"}, premise=premise)
    return {"id": pair_id, "messages": render_messages(request, story)}


def test_eos_is_supervised_even_when_pad_equals_eos(tokenizer):
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    example = tokenize_pair(make_pair(), tokenizer, 512)
    assert example.input_ids[-1] == tokenizer.eos_token_id
    assert example.labels[-1] == tokenizer.eos_token_id
    batch = collate(pack([example, tokenize_pair(make_pair("p2", "Short."), tokenizer, 512)], 40),
                    tokenizer.pad_token_id)
    for row in range(batch["input_ids"].shape[0]):
        ends = (batch["input_ids"][row] == tokenizer.eos_token_id).nonzero().flatten()
        supervised_ends = [i for i in ends.tolist() if batch["labels"][row, i] == tokenizer.eos_token_id]
        assert supervised_ends, "an end-of-turn token must stay supervised after padding"


def test_exactly_one_bos(tokenizer):
    example = tokenize_pair(make_pair(), tokenizer, 512)
    bos = tokenizer.bos_token_id
    assert example.input_ids[0] == bos and example.input_ids[1] != bos


def test_prompt_is_a_prefix_of_prompt_plus_story(tokenizer):
    pair = make_pair()
    prompt = tokenizer.apply_chat_template(pair["messages"][:-1], add_generation_prompt=True,
                                           tokenize=True)["input_ids"]
    example = tokenize_pair(pair, tokenizer, 512)
    assert list(example.input_ids[:len(prompt)]) == prompt
    assert all(label == IGNORE for label in example.labels[:len(prompt)])
    story = tokenizer.decode([t for t in example.labels if t != IGNORE])
    assert story == "The fox ran home before the storm and slept.<|im_end|>"


def test_pair_with_no_supervised_token_is_rejected_with_its_id(tokenizer):
    examples, rejected = tokenize_pairs([make_pair("good"), make_pair("empty-story", story="")],
                                        tokenizer, 512)
    assert [e.id for e in examples] == ["good"]
    assert rejected == [Rejection("empty-story", "no story token to supervise")]


def test_over_long_pair_is_rejected_not_cut(tokenizer):
    result = tokenize_pair(make_pair("long", story="word " * 600), tokenizer, 256)
    assert isinstance(result, Rejection) and result.id == "long" and "max_length 256" in result.reason


def test_packing_keeps_order_never_splits_and_fills(tokenizer):
    examples = [tokenize_pair(make_pair(f"p{i}", "A story. " * (i % 5 + 1)), tokenizer, 512)
                for i in range(20)]
    packs = pack(examples, 512)
    assert sorted(i for p in packs for i in p.ids) == sorted(e.id for e in examples)
    assert all(len(p) <= 512 for p in packs)
    for p in packs:
        starts = [i for i, pos in enumerate(p.position_ids) if pos == 0]
        assert len(starts) == len(p.ids)
    assert [p.ids for p in pack(examples, 512)] == [p.ids for p in packs]
    assert padding_share(packs, 1) == 0.0
    assert padding_share(packs, 4) < 0.25


def test_packed_pair_logits_equal_its_logits_alone(tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(resolve_model(TINY_MODEL)).eval()
    first = tokenize_pair(make_pair("a", "Once there was a lantern maker."), tokenizer, 512)
    second = tokenize_pair(make_pair("b", "The ship drifted far from home, and nobody minded."),
                           tokenizer, 512)
    (packed,) = pack([first, second], 512)
    batch = collate([packed], tokenizer.pad_token_id)
    with torch.no_grad():
        together = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                         attention_mask=batch["attention_mask"]).logits[0]
        alone = [model(input_ids=torch.tensor([e.input_ids])).logits[0] for e in (first, second)]
    split = len(first.input_ids)
    torch.testing.assert_close(together[:split], alone[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(together[split:], alone[1], atol=1e-5, rtol=1e-4)


def test_padding_free_packed_attention_matches_each_pair_alone(tokenizer):
    """The default: packs laid end to end in one row, attention pair by pair."""
    from transformers import AutoModelForCausalLM

    from storyteller.finetune.attention import register
    from storyteller.finetune.data import collate_flat

    path = resolve_model(TINY_MODEL)
    packed_model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=register()).eval()
    plain = AutoModelForCausalLM.from_pretrained(path).eval()
    examples = [tokenize_pair(make_pair(str(i), story), tokenizer, 512) for i, story in
                enumerate(["Once there was a lantern maker.", "The ship drifted far from home.",
                           "Rain fell on the orchard all night, and the pears grew heavy."])]
    packs = pack(examples[:2], 200) + pack(examples[2:], 200)
    batch = collate_flat(packs)
    with torch.no_grad():
        together = packed_model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                                cu_seq_lens_q=batch["cu_seq_lens_q"]).logits[0]
        alone = [plain(input_ids=torch.tensor([e.input_ids])).logits[0] for e in examples]
    start = 0
    for logits in alone:
        torch.testing.assert_close(together[start:start + len(logits)], logits, atol=1e-5, rtol=1e-4)
        start += len(logits)
    assert start == together.shape[0]


def test_neftune_noise_only_while_training():
    from transformers import AutoModelForCausalLM

    from storyteller.finetune.model import add_neftune

    model = AutoModelForCausalLM.from_pretrained(resolve_model(TINY_MODEL))
    embeddings = model.get_input_embeddings()
    ids = torch.tensor([[5, 6, 7, 8]])
    clean = embeddings(ids)
    handle = add_neftune(model, alpha=5.0)
    model.train()
    noisy = embeddings(ids)
    scale = 5.0 / (4 * clean.shape[-1]) ** 0.5
    assert 0 < (noisy - clean).abs().max() <= scale + 1e-6
    model.eval()
    assert torch.equal(embeddings(ids), clean)
    handle.remove()
