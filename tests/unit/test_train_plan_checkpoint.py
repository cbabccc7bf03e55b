"""The training plan (which packs each step sees), checkpoint files and precision choice."""

from __future__ import annotations

import json

import torch

from storyteller.finetune import checkpoint as ckpt
from storyteller.finetune.data import IGNORE, Example, collate_flat, pack
from storyteller.finetune.model import PrecisionChoice, choose_precision
from storyteller.models import cpu_has_native_bf16
from storyteller.finetune.plan import Plan


def example(i: int, length: int) -> Example:
    ids = tuple(range(1, length + 1))
    labels = (IGNORE,) * (length // 2) + ids[length // 2:]
    return Example(f"e{i}", ids, labels)


def packs(n: int = 10):
    return tuple(pack([example(i, 5 + i) for i in range(n)], 16))


def test_plan_is_a_function_of_seed_and_step():
    a, b = Plan(packs(), 2, 2, seed=3), Plan(packs(), 2, 2, seed=3)
    assert [a.step_micro_batches(s) for s in range(4)] == [b.step_micro_batches(s) for s in range(4)]
    assert Plan(packs(), 2, 2, seed=4).order(0) != a.order(0)
    assert a.order(1) != a.order(0), "each epoch has its own order"


def test_an_epoch_sees_every_pack_once():
    plan = Plan(packs(), 3, 1, epochs=1)
    seen = [i for s in range(plan.total_steps) for batch in plan.step_micro_batches(s) for i in batch]
    assert sorted(seen) == list(range(len(plan.packs)))


def test_processes_get_disjoint_full_batches():
    plan = Plan(packs(), 2, 1, world=2)
    for step in range(plan.total_steps):
        mine = [plan.micro_batch(step, rank) for rank in range(2)]
        assert all(len(m) == 2 for m in mine)
    firsts = [set(plan.micro_batch(0, r)) for r in range(2)]
    assert not firsts[0] & firsts[1]


def test_step_tokens_count_every_process_and_micro_batch():
    plan = Plan(packs(), 1, 2, world=2)
    expected = sum(plan.packs[i].supervised for r in range(2)
                   for b in plan.step_micro_batches(0, r) for i in b)
    assert plan.step_supervised(0) == expected > 0


def test_max_steps_and_fractional_epochs():
    assert Plan(packs(), 1, 1, max_steps=7).total_steps == 7
    plan = Plan(packs(), 1, 1, epochs=0.5)
    assert plan.total_steps == plan.micro_per_epoch // 2 + plan.micro_per_epoch % 2


def test_collate_flat_lays_pairs_end_to_end():
    p = pack([example(0, 4), example(1, 3), example(2, 5)], 8)
    batch = collate_flat(p)
    lengths = [len(x) for x in p]
    assert batch["input_ids"].shape == (1, sum(lengths))
    assert batch["cu_seq_lens_q"] == [0, 4, 7, 12]
    assert batch["position_ids"][0].tolist() == [0, 1, 2, 3, 0, 1, 2, 0, 1, 2, 3, 4]


def test_checkpoint_round_trip_and_marker(tmp_path):
    state = ckpt.TrainState(step=3, micro_batches=6, best_loss=1.5, best_step=2)
    weights = {"a.lora_A": torch.randn(2, 3)}
    torch.manual_seed(1)
    path = ckpt.save_checkpoint(tmp_path, state, weights, {"x": 1}, {"y": 2}, {"lora.r": 4})
    expected = torch.rand(3)
    assert path.name == "step-000003" and (path / ckpt.COMPLETE).exists()
    torch.manual_seed(99)
    loaded = ckpt.load_checkpoint(path)
    assert loaded.state == state and loaded.optimizer == {"x": 1} and loaded.scheduler == {"y": 2}
    assert torch.equal(loaded.weights["a.lora_A"], weights["a.lora_A"])
    ckpt.set_rng_state(loaded.rng)
    assert torch.equal(torch.rand(3), expected), "the RNG continues where the checkpoint left it"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(ckpt.STAGING)]


def test_only_complete_checkpoints_count_and_pruning_keeps_best(tmp_path):
    for step in (1, 2, 3, 4):
        ckpt.save_checkpoint(tmp_path, ckpt.TrainState(step=step), {}, {}, {}, {})
    (tmp_path / "step-000004" / ckpt.COMPLETE).unlink()
    assert [p.name for p in ckpt.complete_checkpoints(tmp_path)] == [
        "step-000001", "step-000002", "step-000003"]
    removed = ckpt.prune(tmp_path, keep_last=1, keep={tmp_path / "step-000001"})
    assert [p.name for p in removed] == ["step-000002"]
    assert [p.name for p in ckpt.complete_checkpoints(tmp_path)] == ["step-000001", "step-000003"]


def test_fingerprint_mismatches_name_the_setting():
    saved = {"lora.r": 16, "model.base": "a"}
    assert ckpt.fingerprint_mismatches(saved, {"lora.r": 8, "model.base": "a"}) == ["lora.r: 16 → 8"]
    assert ckpt.fingerprint_mismatches(saved, dict(saved)) == []


def test_state_json_is_plain_data(tmp_path):
    path = ckpt.save_checkpoint(tmp_path, ckpt.TrainState(step=1, history=[{"step": 1}]),
                                {}, {}, {}, {})
    assert json.loads((path / "state.json").read_text())["history"] == [{"step": 1}]


def test_precision_follows_the_hardware():
    cpu = torch.device("cpu")
    choice = choose_precision("auto", cpu)
    assert choice.name == ("bf16" if cpu_has_native_bf16() else "fp32") and choice.reason
    assert choose_precision("bf16", cpu) == PrecisionChoice("bf16", "set in the config")
