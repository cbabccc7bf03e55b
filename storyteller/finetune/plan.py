"""Which packs each optimizer step trains on: a pure function of the seed and the step.

Because the order is computed, not drawn from a stateful sampler, resuming at step N needs only
N; and every process knows every other process's batches, so the loss of a step can be
normalised by its supervised tokens across all processes and micro-batches without talking to
them. That normalisation is what makes batch 4 x accumulation 1 equal batch 1 x accumulation 4."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from storyteller.finetune.data import Pack


@dataclass
class Plan:
    packs: tuple[Pack, ...]
    batch_size: int  # packs per micro-batch per process
    grad_accum: int
    world: int = 1
    seed: int = 0
    epochs: float = 1.0
    max_steps: int = 0
    _orders: dict[int, tuple[int, ...]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def packs_per_micro(self) -> int:
        """Packs in one micro-batch across all processes."""
        return self.batch_size * self.world

    @property
    def micro_per_epoch(self) -> int:
        return math.ceil(len(self.packs) / self.packs_per_micro)

    @property
    def total_steps(self) -> int:
        if self.max_steps:
            return self.max_steps
        return max(1, math.ceil(self.micro_per_epoch * self.epochs / self.grad_accum))

    def epoch_of(self, step: int) -> float:
        return step * self.grad_accum / self.micro_per_epoch

    def order(self, epoch: int) -> tuple[int, ...]:
        """The packs of `epoch` in training order, padded by wrapping around so that every
        process gets a full micro-batch (as a distributed sampler does)."""
        if epoch not in self._orders:
            self._orders[epoch] = self._draw_order(epoch)
        return self._orders[epoch]

    def _draw_order(self, epoch: int) -> tuple[int, ...]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.packs)).tolist()
        short = self.micro_per_epoch * self.packs_per_micro - len(order)
        if self.world > 1 and short:
            order += order[:short]
        return tuple(order)

    def micro_batch(self, index: int, rank: int = 0) -> list[int]:
        """Pack indices of global micro-batch `index` for process `rank`."""
        epoch, within = divmod(index, self.micro_per_epoch)
        order = self.order(epoch)
        start = within * self.packs_per_micro + rank * self.batch_size
        return list(order[start:start + self.batch_size])

    def step_micro_batches(self, step: int, rank: int = 0) -> list[list[int]]:
        first = step * self.grad_accum
        batches = [self.micro_batch(i, rank) for i in range(first, first + self.grad_accum)]
        return [b for b in batches if b]

    def step_supervised(self, step: int) -> int:
        """Supervised tokens in optimizer step `step`, summed over every process."""
        return sum(self.packs[i].supervised for rank in range(self.world)
                   for batch in self.step_micro_batches(step, rank) for i in batch)

    def step_packs(self, step: int, rank: int = 0) -> tuple[list[list[Pack]], int]:
        """The packs of process `rank`'s micro-batches in step `step`, and the step's supervised
        tokens over every process: what the loop asks of a plan (a StreamPlan answers too)."""
        batches = [[self.packs[i] for i in batch] for batch in self.step_micro_batches(step, rank)]
        return batches, self.step_supervised(step)

    def cursor(self) -> dict | None:
        """Where the data is after the steps taken, beyond the step number: nothing, since the
        order is computed from the step (a StreamPlan has a place in its files)."""
        return None

    def resume(self, step: int, cursor: dict | None) -> None:
        """Continue after `step`: nothing to do, every step's packs are computed from it."""
