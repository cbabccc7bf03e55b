"""The training loop: micro-batches → optimizer steps, with evaluation, early stopping,
checkpoints and logs. Devices and processes come from an `accelerate.Accelerator`, so the same
loop runs on one CPU, one GPU, or several processes under `accelerate launch` (DDP or FSDP)."""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from storyteller.finetune import checkpoint as ckpt
from storyteller.finetune.config import FinetuneConfig
from storyteller.finetune.data import Pack, collate, collate_flat
from storyteller.finetune.model import load_trainable_state, trainable_state
from storyteller.finetune.plan import Plan
from storyteller.finetune.prefdata import PrefItem, collate_items
from storyteller.finetune.selection import improves, rank


def decay_groups(model, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices, none on biases and norms."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def make_optimizer(model, cfg: FinetuneConfig, total_steps: int):
    from transformers import get_scheduler

    t = cfg.train
    optimizer = torch.optim.AdamW(decay_groups(model, t.weight_decay), lr=t.lr,
                                  betas=tuple(t.betas), eps=t.eps)
    warmup = t.warmup_steps or math.ceil(t.warmup_ratio * total_steps)
    name = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}[t.schedule]
    scheduler = get_scheduler(name, optimizer, num_warmup_steps=warmup,
                              num_training_steps=total_steps)
    return optimizer, scheduler


def make_batch(packs: Sequence[Pack], pad_id: int, packed: bool, device) -> dict[str, Any]:
    """One row of packs end to end (padding-free attention), or padded rows with a mask; or
    one row of preference items' sequences (prefdata.PrefItem), with their reference."""
    if packs and isinstance(packs[0], PrefItem):
        batch = collate_items(packs, with_reference=packs[0].reference is not None)
    else:
        batch = collate_flat(packs) if packed else collate(packs, pad_id)
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()}


@torch.no_grad()
def evaluate_loss(loss_model, packs: Sequence[Pack], batch_size: int, pad_id: int,
                  accelerator, packed: bool = True) -> tuple[float, int]:
    """Mean story loss over `packs` (shared out across processes) and its token count; for
    preference items the mean objective over items and their count, the summed reward
    statistics left in the loss model's `last_eval` (read by the run's eval_extras)."""
    was_training = loss_model.training
    loss_model.eval()
    rank, world = accelerator.process_index, accelerator.num_processes
    mine = list(packs[rank::world])
    total = torch.zeros((), dtype=torch.float64, device=accelerator.device)
    count = torch.zeros((), dtype=torch.float64, device=accelerator.device)
    stats = None
    for start in range(0, len(mine), batch_size):
        batch = make_batch(mine[start:start + batch_size], pad_id, packed, accelerator.device)
        with accelerator.autocast():
            loss_sum, n, *extra = loss_model(**batch)
        total += loss_sum.double()
        count += n.double()
        if extra:
            stats = extra[0].double() if stats is None else stats + extra[0].double()
    if world > 1:
        total = accelerator.reduce(total, "sum")
        count = accelerator.reduce(count, "sum")
    if packs and isinstance(packs[0], PrefItem):
        if stats is None:  # this process had no item; still take part in the reduction
            from storyteller.finetune.preference import STATS
            stats = torch.zeros(len(STATS), dtype=torch.float64, device=accelerator.device)
        if world > 1:
            stats = accelerator.reduce(stats, "sum")
        accelerator.unwrap_model(loss_model).last_eval = stats.cpu()
    loss_model.train(was_training)
    tokens = int(count.item())
    return (total.item() / tokens if tokens else float("nan")), tokens


@dataclass
class Loop:
    """Everything a run trains with; `run()` goes from `state.step` to the end."""

    cfg: FinetuneConfig
    accelerator: Any
    model: Any  # the (adapter-wrapped) model, for saving weights
    loss_model: Any  # StoryLoss around it, prepared by the accelerator
    optimizer: Any
    scheduler: Any
    plan: Plan  # or a StreamPlan (data.streaming), which answers the same questions
    val_packs: Sequence[Pack]
    pad_id: int
    run_dir: Path
    fingerprint: dict[str, Any]
    state: ckpt.TrainState
    log: Any  # MetricsLog on the main process, else None
    on_step: Callable[[ckpt.TrainState, dict[str, Any]], None] = lambda state, record: None
    updating: bool = False  # between an optimizer step and its record in `state`
    # The story the model writes at each evaluation (samples.py), on the main process; None: none.
    sampler: Callable[[int], dict[str, Any]] | None = None
    # The probe (probe.py) on the main process: step → (scores, stories); None: no probe there.
    probe: Callable[[int], tuple[dict[str, Any], list[dict[str, Any]]]] | None = None
    # More of an evaluation's record, merged in after the validation loss (preference runs:
    # validation reward accuracy and margin); None: nothing more.
    eval_extras: Callable[[], dict[str, Any]] | None = None

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def packed(self) -> bool:
        return self.cfg.model.attention == "packed"

    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.loss_model.parameters() if p.requires_grad]

    def train_step(self) -> dict[str, Any]:
        step = self.state.step
        accelerator, plan = self.accelerator, self.plan
        world = accelerator.num_processes
        # The step's loss is the mean over all of its supervised tokens, whichever micro-batch
        # or process they fall in; DDP averages gradients over processes, hence `* world`.
        batches, step_tokens = plan.step_packs(step, accelerator.process_index)
        loss_total = torch.zeros((), dtype=torch.float64, device=accelerator.device)
        stats = None  # preference objectives: summed reward statistics (preference.STATS)
        tokens = 0
        for index, packs in enumerate(batches):
            tokens += sum(len(p) for p in packs)
            batch = make_batch(packs, self.pad_id, self.packed, accelerator.device)
            last = index == len(batches) - 1
            sync = nullcontext() if last or world == 1 else accelerator.no_sync(self.loss_model)
            with sync, accelerator.autocast():
                loss_sum, _, *extra = self.loss_model(**batch)
                accelerator.backward(loss_sum * (world / max(step_tokens, 1)))
            loss_total += loss_sum.detach().double()
            if extra:
                stats = extra[0].double() if stats is None else stats + extra[0].double()
        clip = self.cfg.train.max_grad_norm
        grad_norm = accelerator.clip_grad_norm_(self.trainable(), clip if clip > 0 else math.inf)
        # From here until run() records the step, weights and state disagree: an interrupt
        # in this window must not be saved as a checkpoint.
        self.updating = True
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if world > 1:
            loss_total = accelerator.reduce(loss_total, "sum")
            tokens = int(accelerator.reduce(torch.tensor(tokens, device=accelerator.device),
                                            "sum").item())
            if stats is not None:
                stats = accelerator.reduce(stats, "sum")
        result = {"loss": loss_total.item() / max(step_tokens, 1),
                  "grad_norm": float(grad_norm), "tokens": tokens, "supervised": step_tokens}
        if stats is not None:
            from storyteller.finetune.preference import metrics

            result["extra"] = metrics(stats.cpu())
        return result

    def run_probe(self) -> dict[str, Any]:
        """The probe's scores (its stories go to probe.jsonl), the same on every process: it
        runs on the main one and its scores are sent to the others, which choose the best
        checkpoint from them too."""
        if not self.cfg.eval.probing:
            return {}
        scores: dict[str, Any] = {}
        if self.probe is not None:
            scores, stories = self.probe(self.state.step)
            if self.log is not None:
                self.log.probe(stories)
        if self.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            scores = broadcast_object_list([scores], from_process=0)[0]
        return scores

    def evaluate(self) -> dict[str, Any]:
        loss, tokens = evaluate_loss(self.loss_model, self.val_packs, self.cfg.eval.batch_size,
                                     self.pad_id, self.accelerator, self.packed)
        extras = self.eval_extras() if self.eval_extras is not None else {}
        scores = self.run_probe()
        state, e = self.state, self.cfg.eval
        entry = {"step": state.step, "val_loss": loss, "val_ppl": math.exp(min(loss, 50)),
                 **scores}
        # Ranked against the evaluations before this one only (selection.py).
        new = rank(e.select, entry, state.history, e.select_margin)
        best = [-state.best_loss] if e.select == "loss" and state.best_loss is not None \
            else state.best_rank
        improved = improves(e.select, new, best, e.min_delta)
        if improved:
            state.best_loss, state.best_step, state.evals_without_gain = loss, state.step, 0
            if e.select != "loss":
                state.best_rank, state.best_probe = list(new), dict(scores)
        else:
            state.evals_without_gain += 1
        record = {"kind": "eval", "step": state.step, "epoch": round(self.plan.epoch_of(state.step), 4),
                  "val_loss": loss, "val_ppl": entry["val_ppl"], "val_tokens": tokens, **extras,
                  **scores, "best": improved}
        state.history.append(entry)
        if e.patience and state.evals_without_gain >= e.patience:
            state.stopped_early = True
        return record

    def save(self) -> Path | None:
        """A complete checkpoint of the current step (main process), then prune old ones."""
        self.accelerator.wait_for_everyone()
        path = None
        if self.main:
            weights = trainable_state(self.accelerator.unwrap_model(self.loss_model).model)
            path = ckpt.save_checkpoint(self.checkpoints, self.state, weights,
                                        self.optimizer.state_dict(), self.scheduler.state_dict(),
                                        self.fingerprint)
            keep = set()
            if self.cfg.checkpoint.keep_best and self.state.best_step is not None:
                keep.add(self.checkpoints / ckpt.checkpoint_name(self.state.best_step))
            ckpt.prune(self.checkpoints, self.cfg.checkpoint.keep_last, keep)
        self.accelerator.wait_for_everyone()
        return path

    def write(self, record: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.write(record)

    def evaluate_and_sample(self) -> None:
        """Validation loss, then the evaluation's sample story: logged and shown."""
        record = self.evaluate()
        self.write(record)
        self.on_step(self.state, record)
        if self.sampler is not None and self.main:
            sample = self.sampler(self.state.step)
            if self.log is not None:
                self.log.sample(sample)
            self.on_step(self.state, {"kind": "sample", **sample})

    def run(self) -> ckpt.TrainState:
        cfg, state, plan = self.cfg, self.state, self.plan
        total = plan.total_steps
        self.loss_model.train()
        # The base model's validation loss, the curve's first point; a run resumed from the
        # checkpoint saved right after it (state.history holds it) has it already.
        if state.step == 0 and not state.history and self.val_packs and cfg.eval.every_steps:
            self.evaluate_and_sample()
            if cfg.checkpoint.keep_best:
                self.save()  # the untrained adapter may stay the best: keep it to fall back on
        window_start, window_tokens, window_supervised = time.perf_counter(), 0, 0
        while state.step < total and not state.stopped_early:
            started = time.perf_counter()
            result = self.train_step()
            state.step += 1
            state.micro_batches = state.step * plan.grad_accum
            state.stream = plan.cursor()  # a streamed split's place, saved with the step
            state.tokens += result["tokens"]
            state.supervised += result["supervised"]
            state.seconds += time.perf_counter() - started
            self.updating = False
            window_tokens += result["tokens"]
            window_supervised += result["supervised"]
            record = {"kind": "train", "step": state.step,
                      "epoch": round(plan.epoch_of(state.step), 4), "loss": result["loss"],
                      "lr": self.scheduler.get_last_lr()[0], "grad_norm": result["grad_norm"],
                      "tokens": state.tokens, "supervised": state.supervised,
                      **result.get("extra", {})}
            due = lambda every: every and (state.step % every == 0 or state.step == total)
            if due(cfg.log.every_steps) or state.step == total:
                elapsed = time.perf_counter() - window_start
                record["tokens_per_s"] = window_tokens / elapsed
                record["supervised_per_s"] = window_supervised / elapsed
                record["seconds"] = round(state.seconds, 2)
                self.write(record)
                window_start, window_tokens, window_supervised = time.perf_counter(), 0, 0
            self.on_step(state, record)
            best_before = state.best_step
            if self.val_packs and due(cfg.eval.every_steps):
                evaluating = time.perf_counter()
                self.evaluate_and_sample()
                window_start += time.perf_counter() - evaluating  # not training time either
            new_best = state.best_step != best_before and cfg.checkpoint.keep_best
            if due(cfg.checkpoint.every_steps) or new_best or state.stopped_early:
                self.save()
                window_start = time.perf_counter()  # saving is not training time
        return state

    def restore(self, checkpoint: ckpt.Checkpoint) -> None:
        load_trainable_state(self.accelerator.unwrap_model(self.loss_model).model,
                             checkpoint.weights)
        self.optimizer.load_state_dict(checkpoint.optimizer)
        self.scheduler.load_state_dict(checkpoint.scheduler)
        ckpt.set_rng_state(checkpoint.rng)
        self.state = checkpoint.state
        self.plan.resume(self.state.step, self.state.stream)
