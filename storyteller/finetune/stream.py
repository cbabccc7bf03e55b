"""The training split read lazily (`data.streaming`), for splits too large to hold in memory.

Pairs come in buffers of `data.stream_buffer`, in the split's file order; each buffer is
tokenised and packed on its own, with the same packing the whole split gets otherwise, and its
packs are shuffled by (seed, epoch, buffer). Steps take packs one after another, across buffers
and epochs, so every micro-batch is full and the run's length is `train.max_steps`. Memory holds
one buffer, whatever the size of the split.

Where the stream is after a step, its `Cursor`, is plain data saved with each checkpoint:
resuming re-reads only the current buffer from its byte position, packs and shuffles it again
(the same pairs give the same packs in the same order) and skips the packs already trained on,
so a resumed run trains on exactly what an uninterrupted one would. Reading and tokenising are
functions passed in; this module touches no file."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from storyteller.curated import Position
from storyteller.errors import InputError
from storyteller.finetune.data import Pack, Rejection

# From a position of the split: (the position after each pair, the pair), to the split's end.
Read = Callable[[Position], Iterator[tuple[Position, dict[str, Any]]]]
# One buffer of pairs → its packs (longest first, first fit) and the pairs it cannot train on.
Prepare = Callable[[list[dict[str, Any]]], tuple[list[Pack], list[Rejection]]]


@dataclass(frozen=True)
class Cursor:
    """The pack a stream hands out next: pack `done` of buffer `buffer` of epoch `epoch`, that
    buffer's pairs starting at `start` with `taken` pairs of the epoch before it."""

    epoch: int = 0
    buffer: int = 0
    start: Position = Position()
    taken: int = 0  # for data.max_train_pairs, which caps each epoch
    done: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Cursor":
        return cls(**{**data, "start": Position(**data["start"])})


class StreamPlan:
    """Which packs each optimizer step trains on, read from the stream step after step; the
    same questions as `Plan` answers, asked in order."""

    def __init__(self, read: Read, prepare: Prepare, batch_size: int, grad_accum: int,
                 world: int = 1, seed: int = 0, max_steps: int = 0, buffer_size: int = 10000,
                 limit: int = 0, kinds: Sequence[str] = (), sizes: Sequence[int] = (),
                 where: str = "the training split",
                 on_reject: Callable[[Rejection], None] = lambda rejection: None):
        if max_steps < 1:
            raise ValueError("a streamed plan needs max_steps (its split's size is unknown)")
        self.read, self.prepare = read, prepare
        self.batch_size, self.grad_accum, self.world = batch_size, grad_accum, world
        self.seed, self.max_steps, self.buffer_size = seed, max_steps, buffer_size
        self.limit, self.kinds, self.sizes = limit, tuple(kinds), tuple(sizes)
        self.where, self.on_reject = where, on_reject
        self._next_step = 0
        self._cursor = Cursor()
        self._loaded = False
        self._packs: list[Pack] = []  # the current buffer's, shuffled
        self._count = 0  # pairs in the current buffer
        self._end = Position()  # where the current buffer's pairs end
        self._last = False  # the current buffer ends its epoch
        self._reader: Iterator | None = None
        self._reader_at: Position | None = None  # where the open reader goes on from
        self._epoch_packs: int | None = 0  # packs of an epoch read from its start (else None)

    @property
    def packs_per_micro(self) -> int:
        return self.batch_size * self.world

    @property
    def total_steps(self) -> int:
        return self.max_steps

    def epoch_of(self, step: int) -> float:
        """Epochs read by now (the stream's place; `step` is the step just taken): passes done
        plus the share of the split, by bytes, before the current buffer (by pairs under
        data.max_train_pairs)."""
        c = self._cursor
        if self.limit:
            return c.epoch + c.taken / self.limit
        total = sum(self.sizes)
        if not total:
            return float(c.epoch)
        return c.epoch + (sum(self.sizes[:c.start.file]) + c.start.offset) / total

    def cursor(self) -> dict[str, Any]:
        return self._cursor.to_dict()

    def resume(self, step: int, cursor: dict[str, Any] | None) -> None:
        """Continue after `step`, at `cursor` (None: the stream's start, as at step 0)."""
        self._next_step = step
        self._cursor = Cursor.from_dict(cursor) if cursor else Cursor()
        self._loaded = False
        self._epoch_packs = 0 if self._cursor == Cursor() else None

    def step_packs(self, step: int, rank: int = 0) -> tuple[list[list[Pack]], int]:
        """Process `rank`'s micro-batches of step `step` (the next step: a stream is read in
        order) and the step's supervised tokens over every process. Every process reads the
        whole stream and keeps its own share of each micro-batch, as Plan does."""
        if step != self._next_step:
            raise ValueError(f"the stream is at step {self._next_step}, not {step}")
        micro = [[self._next_pack() for _ in range(self.packs_per_micro)]
                 for _ in range(self.grad_accum)]
        self._next_step += 1
        supervised = sum(p.supervised for batch in micro for p in batch)
        start = rank * self.batch_size
        return [batch[start:start + self.batch_size] for batch in micro], supervised

    def _next_pack(self) -> Pack:
        if not self._loaded:
            self._load()
        while self._cursor.done >= len(self._packs):
            self._advance()
        pack = self._packs[self._cursor.done]
        self._cursor = replace(self._cursor, done=self._cursor.done + 1)
        return pack

    def _advance(self) -> None:
        """On to the next buffer, or the next epoch's first after the epoch's last."""
        c = self._cursor
        if self._last:
            if self._epoch_packs == 0:  # a whole pass without a pack: it would never end
                raise InputError.at(self.where, "no training pair can be trained on",
                                    "check data.kinds and data.max_length (rejected pairs are "
                                    "listed as warnings)")
            self._cursor = Cursor(epoch=c.epoch + 1)
            self._epoch_packs = 0
        else:
            self._cursor = Cursor(c.epoch, c.buffer + 1, self._end, c.taken + self._count)
        self._load()

    def _load(self) -> None:
        """Read, pack and shuffle the cursor's buffer."""
        c = self._cursor
        if self._reader is None or self._reader_at != c.start:
            self._close()
            self._reader = self.read(c.start)
        room = self.buffer_size if not self.limit else min(self.buffer_size, self.limit - c.taken)
        pairs, end, last = [], c.start, False
        while len(pairs) < room:
            item = next(self._reader, None)
            if item is None:
                last = True
                break
            end, pair = item
            if not self.kinds or pair.get("kind") in self.kinds:
                pairs.append(pair)
        if self.limit and c.taken + len(pairs) >= self.limit:
            last = True
        self._reader_at = end
        packs, rejected = self.prepare(pairs) if pairs else ([], [])
        if c.epoch == 0:  # in the first pass only, not once a pass
            for rejection in rejected:
                self.on_reject(rejection)
        order = np.random.default_rng([self.seed, c.epoch, c.buffer]).permutation(len(packs))
        self._packs = [packs[i] for i in order]
        self._count, self._end, self._last, self._loaded = len(pairs), end, last, True
        if self._epoch_packs is not None:
            self._epoch_packs += len(packs)
        if last:
            self._close()  # the next epoch reads from the start again

    def _close(self) -> None:
        if self._reader is not None and hasattr(self._reader, "close"):
            self._reader.close()
        self._reader, self._reader_at = None, None
