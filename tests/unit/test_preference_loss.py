"""The preference objectives against values computed by hand (and TRL's formulas)."""

from __future__ import annotations

import math

import pytest
import torch

from storyteller.finetune import preference as pref


def t(*values):
    return torch.tensor(values, dtype=torch.float64)


def logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_dpo_sigmoid_loss_and_rewards_by_hand():
    # pair 1: chosen gained 2 nats over the reference, rejected lost 1: delta = 3
    # pair 2: chosen lost 1, rejected gained 1: delta = -2 (ranked the wrong way)
    out = pref.dpo_loss(t(-10, -20), t(-30, -25), t(-12, -19), t(-29, -26), beta=0.1)
    assert out.loss.tolist() == pytest.approx([-logsig(0.3), -logsig(-0.2)])
    m = pref.metrics(out.stats)
    assert m["reward_chosen"] == pytest.approx((0.2 + -0.1) / 2)
    assert m["reward_rejected"] == pytest.approx((-0.1 + 0.1) / 2)
    assert m["reward_margin"] == pytest.approx((0.3 + -0.2) / 2)
    assert m["reward_accuracy"] == 0.5


def test_dpo_at_the_reference_is_log_two_and_not_yet_accurate():
    out = pref.dpo_loss(t(-5.0), t(-7.0), t(-5.0), t(-7.0), beta=0.5)
    assert out.loss.item() == pytest.approx(math.log(2))
    assert pref.metrics(out.stats)["reward_accuracy"] == 0.0  # a tie is not a win (as TRL)


def test_conservative_dpo_label_smoothing_and_rpo_term():
    out = pref.dpo_loss(t(-10.0), t(-30.0), t(-12.0), t(-29.0), beta=0.1, label_smoothing=0.2,
                        chosen_tokens=t(5.0), sft_weight=0.5)
    expected = -0.8 * logsig(0.3) - 0.2 * logsig(-0.3) + 0.5 * (10.0 / 5.0)
    assert out.loss.item() == pytest.approx(expected)


def test_dpo_gradient_raises_chosen_and_lowers_rejected():
    chosen, rejected = t(-10.0).requires_grad_(), t(-12.0).requires_grad_()
    pref.dpo_loss(chosen, rejected, t(-10.0), t(-12.0), beta=0.1).loss.sum().backward()
    assert chosen.grad.item() == pytest.approx(-0.05) and rejected.grad.item() == pytest.approx(0.05)


def test_kto_loss_with_kl_estimate_by_hand():
    # items: a good story whose ratio is +1, a bad one whose ratio is -2
    # mismatched sequences' ratios 0.5 and 0.1 → z = 0.3 (clamped at 0, no gradient)
    out = pref.kto_loss(t(-9.0, -22.0), t(-10.0, -20.0), torch.tensor([True, False]),
                        t(-4.5, -6.9), t(-5.0, -7.0), beta=0.1, desirable_weight=1.0,
                        undesirable_weight=2.0)
    sig = lambda x: 1 / (1 + math.exp(-x))
    assert out.loss.tolist() == pytest.approx([1 - sig(0.1 * (1 - 0.3)),
                                               2 * (1 - sig(0.1 * (0.3 + 2)))])
    m = pref.metrics(out.stats)
    assert m["kl"] == pytest.approx(0.3)
    assert m["reward_chosen"] == pytest.approx(0.1) and m["reward_rejected"] == pytest.approx(-0.2)
    assert m["reward_margin"] == pytest.approx(0.3) and "reward_accuracy" not in m


def test_kto_kl_is_clamped_at_zero():
    out = pref.kto_loss(t(-9.0), t(-10.0), torch.tensor([True]), t(-6.0), t(-5.0), beta=1.0)
    assert pref.metrics(out.stats)["kl"] == 0.0
    assert out.loss.item() == pytest.approx(1 - 1 / (1 + math.exp(-1.0)))


def test_orpo_matches_the_odds_ratio_by_hand():
    # per-token averages: chosen -0.5, rejected -2.0
    out = pref.orpo_loss(t(-5.0), t(-8.0), t(10.0), t(4.0), orpo_lambda=0.1)
    log_odds = (-0.5 - -2.0) - (math.log(1 - math.exp(-0.5)) - math.log(1 - math.exp(-2.0)))
    assert out.loss.item() == pytest.approx(0.5 - 0.1 * logsig(log_odds))
    m = pref.metrics(out.stats)
    assert m["reward_chosen"] == pytest.approx(-0.05) and m["reward_accuracy"] == 1.0


def test_log1mexp_is_stable_on_both_branches():
    x = t(-1e-6, -0.5, -0.7, -30.0)
    assert pref.log1mexp(x).tolist() == pytest.approx([math.log(1 - math.exp(v)) for v in x.tolist()],
                                                      rel=1e-6)


def test_simpo_uses_average_log_probs_and_a_target_margin():
    out = pref.simpo_loss(t(-6.0), t(-12.0), t(6.0), t(4.0), beta=2.0, gamma=0.5)
    # averages -1 and -3: beta x 2 - gamma = 3.5
    assert out.loss.item() == pytest.approx(-logsig(3.5))
    m = pref.metrics(out.stats)
    assert m["reward_chosen"] == pytest.approx(-2.0) and m["reward_margin"] == pytest.approx(4.0)


def test_statistics_of_batches_add_up():
    a = pref.dpo_loss(t(-1.0), t(-3.0), t(-2.0), t(-2.0), beta=1.0)
    b = pref.dpo_loss(t(-4.0, -1.0), t(-2.0, -1.0), t(-3.0, -1.0), t(-3.0, -1.0), beta=1.0)
    both = pref.dpo_loss(t(-1.0, -4.0, -1.0), t(-3.0, -2.0, -1.0), t(-2.0, -3.0, -1.0),
                         t(-2.0, -3.0, -1.0), beta=1.0)
    assert pref.metrics(a.stats + b.stats) == pytest.approx(pref.metrics(both.stats))
