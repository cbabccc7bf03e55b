"""A streamed training split (data.streaming): buffers packed with the whole split's packing,
a seeded order, epochs that wrap, resume from a saved cursor, bounded reading, and the config
that asks for it."""

from __future__ import annotations

import pytest

from storyteller.config import load_config
from storyteller.curated import Position
from storyteller.errors import ConfigError, InputError
from storyteller.finetune.config import FinetuneConfig
from storyteller.finetune.data import IGNORE, Example, Rejection, pack_longest_first
from storyteller.finetune.stream import Cursor, StreamPlan
from tests.conftest import ROOT

PAIRS = [{"id": f"p{i:02d}", "kind": "title" if i % 3 == 0 else "premise", "n": 3 + (i * 7) % 11}
         for i in range(23)]


class Source:
    """The split as a list; a position's offset is the index of the next pair. Counts reads."""

    def __init__(self, pairs=PAIRS):
        self.pairs, self.read = pairs, 0

    def __call__(self, start: Position):
        for i in range(start.offset, len(self.pairs)):
            self.read += 1
            yield Position(0, i + 1, i + 1), self.pairs[i]


def prepare(pairs):
    """Pairs longer than 12 'tokens' are rejected; the others packed as finetune packs them."""
    examples, rejected = [], []
    for p in pairs:
        if p["n"] > 12:
            rejected.append(Rejection(p["id"], "too long"))
            continue
        ids = tuple(range(1, p["n"] + 1))
        examples.append(Example(p["id"], ids, (IGNORE,) + ids[1:]))
    return pack_longest_first(examples, 16), rejected


def plan(source=None, **options) -> StreamPlan:
    settings = dict(batch_size=2, grad_accum=2, seed=0, max_steps=40, buffer_size=5)
    settings.update(options)
    return StreamPlan(source or Source(), prepare, **settings)


def steps(p: StreamPlan, first: int, last: int, rank: int = 0) -> list[list[list[str]]]:
    return [[[i for pack in batch for i in pack.ids] for batch in p.step_packs(s, rank)[0]]
            for s in range(first, last)]


def flat(batches) -> list[str]:
    return [i for step in batches for batch in step for i in batch]


def test_the_order_is_a_function_of_the_seed():
    assert steps(plan(), 0, 10) == steps(plan(), 0, 10)
    assert steps(plan(seed=1), 0, 10) != steps(plan(), 0, 10)


def pack_ids(p: StreamPlan, count: int) -> list[tuple[str, ...]]:
    """The next `count` packs of a plan with one pack a step, as their pair ids."""
    first = p._next_step
    return [tuple(p.step_packs(s)[0][0][0].ids) for s in range(first, first + count)]


def test_each_buffer_is_packed_with_the_packing_of_a_whole_split():
    packs, _ = prepare(PAIRS[:12])
    assert len(packs) >= 4
    streamed = pack_ids(plan(batch_size=1, grad_accum=1, buffer_size=12), len(packs))
    assert sorted(streamed) == sorted(tuple(pack.ids) for pack in packs)
    assert streamed != [tuple(pack.ids) for pack in packs], "shuffled, not longest first"


def test_every_pass_sees_every_trainable_pair_once_then_wraps_with_a_new_shuffle():
    trainable = sorted(x["id"] for x in PAIRS if x["n"] <= 12)
    per_pass = sum(len(prepare(PAIRS[i:i + 5])[0]) for i in range(0, len(PAIRS), 5))
    p = plan(batch_size=1, grad_accum=1)
    epochs = []
    first = pack_ids(p, per_pass)
    epochs.append(p.epoch_of(p._next_step))
    second = pack_ids(p, per_pass)
    epochs.append(p.epoch_of(p._next_step))
    assert sorted(i for pack in first for i in pack) == trainable
    assert sorted(i for pack in second for i in pack) == trainable
    assert first != second, "each pass has its own shuffle"
    assert epochs[0] < epochs[1] and 1 <= epochs[1] < 2


def test_resume_from_any_saved_cursor_gives_the_same_packs():
    reference = plan()
    cursors, expected = [], []
    for step in range(15):
        expected.append(steps(reference, step, step + 1)[0])
        cursors.append(reference.cursor())
    for stop in (0, 1, 3, 6, 7, 11):
        resumed = plan()
        resumed.resume(stop + 1, cursors[stop])
        assert steps(resumed, stop + 1, 15) == expected[stop + 1:], stop
    fresh = plan()
    fresh.resume(0, None)
    assert steps(fresh, 0, 15) == expected
    # The cursor is plain data (it goes into state.json) and round-trips.
    assert Cursor.from_dict(cursors[6]).to_dict() == cursors[6]
    assert isinstance(Cursor.from_dict(cursors[6]).start, Position)


def test_steps_are_taken_in_order():
    p = plan()
    with pytest.raises(ValueError, match="at step 0, not 3"):
        p.step_packs(3)


def test_reading_is_bounded_by_the_buffer():
    source = Source()
    p = plan(source, buffer_size=4, batch_size=1, grad_accum=1)
    p.step_packs(0)
    assert source.read <= 4


def test_max_train_pairs_caps_each_pass_to_the_first_pairs():
    p = plan(limit=6, batch_size=1, grad_accum=1)
    seen = set(flat(steps(p, 0, 30)))
    assert seen <= {x["id"] for x in PAIRS[:6]} and len(seen) >= 4
    assert p.epoch_of(30) > 2


def test_kinds_filter_the_stream():
    p = plan(kinds=("title",))
    assert {i for i in flat(steps(p, 0, 10))} <= {x["id"] for x in PAIRS if x["kind"] == "title"}


def test_processes_share_each_micro_batch_and_count_all_supervised_tokens():
    a, b = plan(world=2), plan(world=2)
    for step in range(6):
        mine, supervised = a.step_packs(step, 0)
        theirs, supervised_b = b.step_packs(step, 1)
        assert supervised == supervised_b
        ids_a = {i for batch in mine for pack in batch for i in pack.ids}
        ids_b = {i for batch in theirs for pack in batch for i in pack.ids}
        assert all(len(batch) == 2 for batch in mine + theirs) and not ids_a & ids_b
        assert supervised == sum(pack.supervised for batch in mine + theirs for pack in batch)


def test_rejections_are_reported_once_and_a_pass_with_nothing_is_an_error():
    rejected = []
    p = plan(on_reject=rejected.append, batch_size=1, grad_accum=1)
    steps(p, 0, 60)
    too_long = sorted(x["id"] for x in PAIRS if x["n"] > 12)
    assert sorted(r.id for r in rejected) == too_long
    hopeless = plan(Source([{**x, "n": 20} for x in PAIRS]), where="data/x/train.jsonl")
    with pytest.raises(InputError, match="data/x/train.jsonl: no training pair can be trained on"):
        hopeless.step_packs(0)


def test_streaming_needs_max_steps_and_names_the_key():
    default = ROOT / "configs" / "finetune" / "default.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(FinetuneConfig, default, ["data.streaming=true"])
    assert "train.max_steps" in str(info.value) and "data.streaming" in str(info.value)
    cfg = load_config(FinetuneConfig, default, ["data.streaming=true", "train.max_steps=10",
                                                "data.stream_buffer=64"])
    assert cfg.data.streaming and cfg.data.stream_buffer == 64
    with pytest.raises(ConfigError, match="data.stream_buffer"):
        load_config(FinetuneConfig, default, ["data.stream_buffer=0"])
