"""The preference objectives as pure functions of per-sequence log-probabilities.

Every function takes the summed log-probability of each story under the policy (and, for DPO
and KTO, under the reference: the starting weights), with the stories' token counts, and
returns the loss of each pair or item and the rewards logged beside it. The formulas and the
beta convention are TRL 1.16's (trl/trainer/dpo_trainer.py `sigmoid`, kto_trainer.py `kto`,
experimental/orpo `odds_ratio_loss`, experimental/cpo `simpo`), so a run here and a TRL run with
the same settings optimise the same thing:

- DPO: reward = beta (log pi(y|x) - log ref(y|x)); loss = -log sigmoid(beta delta) with
  delta = chosen - rejected log-ratio (conservative DPO with label smoothing eps:
  -(1-eps) log sigmoid(beta delta) - eps log sigmoid(-beta delta)).
- KTO: good: 1 - sigmoid(beta (ratio - z)), bad: 1 - sigmoid(beta (z - ratio)), weighted, with
  z = the batch's KL estimate from mismatched (prompt, other story) pairs, clamped at 0, no grad.
- ORPO: chosen's mean per-token loss - lambda log sigmoid(log odds(chosen) - log odds(rejected)),
  odds from per-token average log-probs; no reference.
- SimPO: -log sigmoid(beta (avg chosen - avg rejected) - gamma); no reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# The statistics a batch reports, summed (so micro-batches and processes add up), in this order.
STATS = ("reward_chosen_sum", "chosen", "reward_rejected_sum", "rejected", "correct",
         "margin_sum", "pairs", "kl_sum", "kl_batches")


@dataclass
class Losses:
    loss: torch.Tensor  # one per pair (DPO, ORPO, SimPO) or per item (KTO)
    stats: torch.Tensor  # float64 [len(STATS)], sums


def _stats(chosen_rewards, rejected_rewards, paired: bool, kl=None) -> torch.Tensor:
    c, r = chosen_rewards.detach().double(), rejected_rewards.detach().double()
    values = [c.sum(), c.numel(), r.sum(), r.numel(),
              (c > r).sum() if paired else 0, (c - r).sum() if paired else 0,
              c.numel() if paired else 0,
              kl.detach().double() if kl is not None else 0, 1 if kl is not None else 0]
    return torch.tensor([float(v) for v in values], dtype=torch.float64)


def _smoothed(logits: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    return (-F.logsigmoid(logits) * (1 - label_smoothing)
            - F.logsigmoid(-logits) * label_smoothing)


def dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta: float,
             label_smoothing: float = 0.0, chosen_tokens=None, sft_weight: float = 0.0) -> Losses:
    """Sigmoid DPO on summed log-probs; with `sft_weight`, plus that x the chosen story's
    per-token negative log-likelihood (RPO)."""
    chosen_ratio, rejected_ratio = chosen - ref_chosen, rejected - ref_rejected
    loss = _smoothed(beta * (chosen_ratio - rejected_ratio), label_smoothing)
    if sft_weight:
        loss = loss + sft_weight * (-chosen / chosen_tokens)
    return Losses(loss, _stats(beta * chosen_ratio, beta * rejected_ratio, True))


def kto_loss(logps, ref_logps, labels, kl_logps, ref_kl_logps, beta: float,
             desirable_weight: float = 1.0, undesirable_weight: float = 1.0) -> Losses:
    """KTO for items with `labels` (True: a good story); `kl_logps` / `ref_kl_logps` are the
    items' mismatched sequences, whose mean log-ratio estimates the KL term z."""
    kl = (kl_logps - ref_kl_logps).mean().detach().clamp(min=0)
    ratio = logps - ref_logps
    good = labels.bool()
    loss = torch.where(good, desirable_weight * (1 - torch.sigmoid(beta * (ratio - kl))),
                       undesirable_weight * (1 - torch.sigmoid(beta * (kl - ratio))))
    rewards = beta * ratio
    return Losses(loss, _stats(rewards[good], rewards[~good], False, kl))


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, stable on both sides of -ln 2 (as TRL computes it)."""
    return torch.where(x < -0.6931471805599453, torch.log1p(-torch.exp(x)),
                       torch.log(-torch.expm1(x)))


def orpo_loss(chosen, rejected, chosen_tokens, rejected_tokens, orpo_lambda: float) -> Losses:
    """ORPO: the chosen story's per-token loss minus lambda x log sigmoid of the log odds ratio
    of the per-token average log-probs; rewards are lambda x those averages (as TRL logs them)."""
    chosen_avg, rejected_avg = chosen / chosen_tokens, rejected / rejected_tokens
    log_odds = (chosen_avg - rejected_avg) - (log1mexp(chosen_avg) - log1mexp(rejected_avg))
    loss = -chosen_avg - orpo_lambda * F.logsigmoid(log_odds)
    return Losses(loss, _stats(orpo_lambda * chosen_avg, orpo_lambda * rejected_avg, True))


def simpo_loss(chosen, rejected, chosen_tokens, rejected_tokens, beta: float, gamma: float,
               label_smoothing: float = 0.0, sft_weight: float = 0.0) -> Losses:
    """SimPO: the margin of per-token average log-probs against a target margin gamma."""
    chosen_avg, rejected_avg = chosen / chosen_tokens, rejected / rejected_tokens
    loss = _smoothed(beta * (chosen_avg - rejected_avg) - gamma, label_smoothing)
    if sft_weight:
        loss = loss + sft_weight * (-chosen_avg)
    return Losses(loss, _stats(beta * chosen_avg, beta * rejected_avg, True))


def metrics(stats, prefix: str = "") -> dict[str, float]:
    """Summed STATS (a tensor or list) → the logged means: rewards of chosen and rejected
    stories, margin and accuracy (pairs), KL estimate (KTO)."""
    s = dict(zip(STATS, [float(v) for v in stats]))
    out = {}
    if s["chosen"]:
        out["reward_chosen"] = s["reward_chosen_sum"] / s["chosen"]
    if s["rejected"]:
        out["reward_rejected"] = s["reward_rejected_sum"] / s["rejected"]
    if s["pairs"]:
        out["reward_margin"] = s["margin_sum"] / s["pairs"]
        out["reward_accuracy"] = s["correct"] / s["pairs"]
    elif "reward_chosen" in out and "reward_rejected" in out:
        # KTO has no pairs: the margin is between the means of good and bad stories.
        out["reward_margin"] = out["reward_chosen"] - out["reward_rejected"]
    if s["kl_batches"]:
        out["kl"] = s["kl_sum"] / s["kl_batches"]
    return {prefix + k: v for k, v in out.items()}
