"""Batched sampling: exact nucleus filtering, one seeded stream per story, and finished stories
leaving the batch without changing the others (tiny model, real tokenizer)."""

from __future__ import annotations

import pytest
import torch

from storyteller.decode import apply_repetition_penalty, generate_batch, nucleus, sample_next
from storyteller.evaluate.generate import Request, TransformersEngine
from storyteller.models import TINY_MODEL, inspect_model
from storyteller.prompts import StoryRequest, render_messages
from storyteller.sampling import Sampling


def reference_nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """The textbook top-p filter over the full sorted vocabulary (probabilities, unnormalised)."""
    ordered, order = torch.sort(probs, descending=True)
    cumulative = ordered.cumsum(-1)
    ordered = ordered.masked_fill(cumulative - ordered >= top_p, 0.0)
    return torch.zeros_like(probs).scatter(-1, order, ordered)


@pytest.mark.parametrize("scale", [0.5, 3.0, 8.0])  # flat (full sort fallback) to peaked
def test_nucleus_equals_full_sort(scale):
    torch.manual_seed(0)
    probs = (torch.randn(5, 5000) * scale).softmax(-1)
    values, ids = nucleus(probs, top_k=0, top_p=0.9)
    rebuilt = torch.zeros_like(probs).scatter(-1, ids, values)
    assert torch.equal(rebuilt > 0, reference_nucleus(probs, 0.9) > 0)
    assert torch.allclose(rebuilt, reference_nucleus(probs, 0.9))


def test_top_k_keeps_k_tokens_and_the_best_one_always_survives():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    values, ids = nucleus(probs, top_k=2, top_p=1.0)
    assert ids.tolist() == [[0, 1]] and values.tolist() == [[0.5, pytest.approx(0.3)]]
    values, ids = nucleus(probs, top_k=0, top_p=0.01)
    assert (values > 0).sum() == 1 and ids[0, 0] == 0


def test_repetition_penalty_divides_positive_and_multiplies_negative_seen_logits():
    logits = torch.tensor([[2.0, -2.0, 2.0]])
    seen = torch.tensor([[True, True, False]])
    assert apply_repetition_penalty(logits, seen, 2.0).tolist() == [[1.0, -4.0, 2.0]]


def test_greedy_ignores_generators():
    logits = torch.tensor([[0.1, 3.0, 0.2], [5.0, 0.0, 0.0]])
    out = sample_next(logits, Sampling(temperature=0.0), torch.zeros_like(logits, dtype=torch.bool), [])
    assert out.tolist() == [1, 0]


@pytest.fixture(scope="module")
def engine():
    return TransformersEngine(inspect_model(TINY_MODEL), batch_size=3)


def prompts(engine, n):
    premises = ["a fox learns to swim", "a lighthouse keeper hears a knock at midnight",
                "two robots share a single umbrella", "the last train of the night never arrives"]
    return [engine.tokenize(render_messages(StoryRequest(premise=p, controls={"genre": "fable"})))
            for p in premises[:n]]


def test_a_story_depends_on_its_seed_not_on_its_batch(engine):
    ids = prompts(engine, 3)
    story = Sampling.from_preset("story", max_tokens=16)
    together = generate_batch(engine.model, engine.tokenizer, ids, [11, 22, 33], story)
    alone = [generate_batch(engine.model, engine.tokenizer, [p], [s], story)[0]
             for p, s in zip(ids, [11, 22, 33])]
    assert [g.text for g in together] == [g.text for g in alone]
    reseeded = generate_batch(engine.model, engine.tokenizer, ids[:1], [12], story)[0]
    assert reseeded.text != alone[0].text
    assert all(g.finish_reason == "length" and g.new_tokens == 16 for g in together)


def test_a_finished_story_leaves_the_batch_and_the_others_are_unchanged(engine, monkeypatch):
    ids = prompts(engine, 2)
    story = Sampling.from_preset("story", max_tokens=12)
    first = generate_batch(engine.model, engine.tokenizer, ids[:1], [5], story)[0]
    # Make a token of the first story (one not seen earlier in it) a stop token: the story must
    # end there, marked "stop", while the other story goes on as it would alone.
    tokens = list(first.token_ids)
    k = next(i for i in range(2, len(tokens)) if tokens[i] not in tokens[:i])
    stop = tokens[k]
    monkeypatch.setattr(engine.model.generation_config, "eos_token_id",
                        [engine.tokenizer.eos_token_id, stop])
    batch = generate_batch(engine.model, engine.tokenizer, ids, [5, 6], story)
    second_alone = generate_batch(engine.model, engine.tokenizer, ids[1:], [6], story)[0]
    assert batch[0].finish_reason == "stop"
    assert batch[0].new_tokens == k + 1 and list(batch[0].token_ids) == tokens[:k]
    assert batch[1].text == second_alone.text and batch[1].finish_reason == second_alone.finish_reason


def test_engine_returns_every_request_by_key(engine):
    messages = render_messages(StoryRequest(premise="a kite that will not come down"))
    requests = [Request(f"k{i}", messages, seed=i) for i in range(5)]
    done = []
    result = engine.generate(requests, Sampling.from_preset("story", max_tokens=8), on_done=done.append)
    assert sorted(result) == [f"k{i}" for i in range(5)]
    assert sum(done) == 5 and len(done) == 2  # batches of 3 and 2
    assert len({g.text for g in result.values()}) > 1


def test_marker_score_is_the_log_probability_of_the_marker_tokens(engine):
    from storyteller.evaluate.markers import marker_scores

    story = "A crow kept a cheese.\n\nA fox praised her song.\n\nMoral: Beware of flatterers."
    pair = {"id": "f1", "kind": "premise", "controls": {"style": "moral"},
            "messages": render_messages(StoryRequest(premise="a crow and a fox"), story)}
    (score,) = marker_scores(engine.model, engine.tokenizer, [pair])
    tokenizer = engine.tokenizer
    prompt = tokenizer.apply_chat_template(pair["messages"][:-1], tokenize=False,
                                           add_generation_prompt=True)
    full = tokenizer(prompt + story.rpartition("Moral:")[0] + "Moral:", add_special_tokens=False)["input_ids"]
    marker = [t for t in tokenizer.convert_ids_to_tokens(full[-score.tokens:])]
    assert "".join(marker).endswith("oral:") and score.tokens <= 3
    with torch.no_grad():
        logprobs = torch.log_softmax(engine.model(input_ids=torch.tensor([full])).logits[0], -1)
    expected = sum(float(logprobs[i - 1, full[i]]) for i in range(len(full) - score.tokens, len(full)))
    assert score.logprob == pytest.approx(expected, rel=1e-4)


def test_the_cache_goes_by_the_name_this_transformers_gives_it():
    import inspect

    from storyteller.decode import cache_argument
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(inspect_model(TINY_MODEL).weights)
    name = cache_argument(model)
    assert name in inspect.signature(model.forward).parameters

    class OldForward(torch.nn.Module):
        def forward(self, input_ids, past_key_values=None, use_cache=False):
            return input_ids

    assert cache_argument(OldForward()) == "past_key_values"
