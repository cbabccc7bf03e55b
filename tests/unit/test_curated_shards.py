"""A curated split as one file or as a set of shards (`train-00000-of-00004.jsonl` …): finding
the files, refusing an incomplete set, reading whole and streaming, errors naming file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storyteller.curated import (Position, iter_located_pairs, iter_pairs, read_data, read_split,
                                 shard_name, split_files, split_label)
from storyteller.errors import InputError


def pair(i: int, split: str = "train") -> dict:
    return {"id": f"{split}-{i}", "group": f"g{i}", "kind": "premise",
            "messages": [{"role": "user", "content": f"prompt {i}"},
                         {"role": "assistant", "content": f"story {i}"}]}


def write_lines(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def curated(tmp_path: Path, shards: dict[str, int], sizes: dict[str, int] | None = None) -> Path:
    """A curated directory: each split in `shards` pieces (1: the single file), in order."""
    sizes = sizes or {"train": 10, "val": 3, "test": 4}
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "manifest.json").write_text("{}")
    for split, count in shards.items():
        rows = [pair(i, split) for i in range(sizes[split])]
        if count == 1:
            write_lines(tmp_path / f"{split}.jsonl", rows)
            continue
        # Written last shard first: the order comes from the names, not the directory.
        for index in reversed(range(count)):
            write_lines(tmp_path / shard_name(split, index, count), rows[index::count])
    return tmp_path


def ids(pairs) -> list[str]:
    return [p["id"] for p in pairs]


def test_shard_names_are_those_datasets_writes():
    assert shard_name("train", 2, 4) == "train-00002-of-00004.jsonl"


def test_a_single_file_a_shard_set_or_nothing(tmp_path):
    data = curated(tmp_path, {"train": 4, "val": 1})
    assert [p.name for p in split_files(data, "train")] == [
        f"train-0000{i}-of-00004.jsonl" for i in range(4)]
    assert split_files(data, "val") == [data / "val.jsonl"]
    assert split_files(data, "test") == []
    assert split_files(tmp_path / "absent", "train") == []
    # Files that only look alike are not shards.
    (data / "train-1-of-4.jsonl").write_text("")
    (data / ".train-00000-of-00004.jsonl.tmp").write_text("")
    (data / "training-00000-of-00001.jsonl").write_text("")
    assert len(split_files(data, "train")) == 4
    assert split_label(data, "train") == str(data / "train-*-of-00004.jsonl")
    assert split_label(data, "val") == str(data / "val.jsonl")


def test_a_missing_shard_is_named_with_what_to_do(tmp_path):
    data = curated(tmp_path, {"train": 4})
    (data / "train-00002-of-00004.jsonl").unlink()
    with pytest.raises(InputError) as info:
        split_files(data, "train")
    text = str(info.value)
    assert str(data) in text and "train-00002-of-00004.jsonl" in text
    assert "1 of 4 shards missing" in text and "curate again" in text
    with pytest.raises(InputError, match="train-00002-of-00004.jsonl"):
        read_data(data)
    with pytest.raises(InputError, match="train-00002-of-00004.jsonl"):
        next(iter_pairs(data, "train"))


def test_two_shard_counts_or_a_file_beside_shards_are_refused(tmp_path):
    data = curated(tmp_path, {"train": 2})
    write_lines(data / shard_name("train", 0, 3), [pair(99)])
    with pytest.raises(InputError, match="disagree on their count") as info:
        split_files(data, "train")
    assert "2 of 00002" in str(info.value) and "1 of 00003" in str(info.value)

    other = curated(tmp_path / "both", {"train": 2})
    write_lines(other / "train.jsonl", [pair(99)])
    with pytest.raises(InputError, match="holds both train.jsonl and train shards"):
        split_files(other, "train")

    beyond = curated(tmp_path / "beyond", {"train": 2})
    write_lines(beyond / shard_name("train", 2, 2), [pair(99)])
    with pytest.raises(InputError, match="train-00002-of-00002.jsonl: shard index beyond"):
        split_files(beyond, "train")


def test_read_data_joins_shards_in_order(tmp_path):
    sharded = curated(tmp_path / "sharded", {"train": 3, "val": 1, "test": 2})
    single = curated(tmp_path / "single", {"train": 1, "val": 1, "test": 1})
    (sharded_splits, digest), (single_splits, _) = read_data(sharded), read_data(single)
    for split in ("train", "val", "test"):
        assert sorted(ids(sharded_splits[split])) == sorted(ids(single_splits[split]))
    # Shard after shard, each in its own line order.
    assert ids(sharded_splits["train"]) == [f"train-{i}" for i in (0, 3, 6, 9, 1, 4, 7, 2, 5, 8)]
    assert len(digest) == 64


def test_bad_lines_are_named_by_shard_file_and_line(tmp_path):
    data = curated(tmp_path, {"train": 2})
    second = data / shard_name("train", 1, 2)
    write_lines(second, [pair(1), "{not json", pair(3), {"id": "x"}])
    with pytest.raises(InputError) as info:
        read_data(data)
    text = str(info.value)
    assert f"{second}:2: not valid JSON" in text
    assert f"{second}:4: not a curated pair" in text


def test_no_training_pairs_names_the_shards(tmp_path):
    data = curated(tmp_path, {"train": 2}, {"train": 0})
    with pytest.raises(InputError, match=r"train-\*-of-00002.jsonl: no training pairs"):
        read_data(data)


def test_iter_pairs_streams_what_read_split_reads(tmp_path):
    data = curated(tmp_path, {"train": 3, "val": 1})
    for split in ("train", "val"):
        assert ids(iter_pairs(data, split)) == ids(read_split(data, split))
    assert list(iter_pairs(data, "test")) == []


def test_iter_pairs_is_lazy_and_names_the_bad_line_when_it_gets_there(tmp_path):
    data = curated(tmp_path, {"train": 2})
    second = data / shard_name("train", 1, 2)
    write_lines(second, [pair(1), "", pair(3), "[1, 2]"])
    stream = iter_pairs(data, "train")
    first = [next(stream) for _ in range(5)]  # all of shard 0 is read before shard 1's problem
    assert ids(first) == [f"train-{i}" for i in (0, 2, 4, 6, 8)]
    assert ids([next(stream), next(stream)]) == ["train-1", "train-3"]  # the blank line skipped
    with pytest.raises(InputError, match=f"{second}:4: not a curated pair"):
        next(stream)


def test_a_stream_restarts_at_any_position(tmp_path):
    data = curated(tmp_path, {"train": 3})
    located = list(iter_located_pairs(data, "train"))
    everything = ids(pair for _, pair in located)
    for k, (position, _) in enumerate(located):
        assert ids(p for _, p in iter_located_pairs(data, "train", position)) == everything[k + 1:]
    # The position after the last line of a shard goes on with the next shard.
    assert located[3][0] == Position(0, (data / shard_name("train", 0, 3)).stat().st_size, 4)
    # Line numbers stay right after a seek.
    second = data / shard_name("train", 1, 3)
    write_lines(second, [pair(1), pair(4), "oops"])
    after_first = next(p for p, _ in iter_located_pairs(data, "train", Position(1, 0, 0)))
    with pytest.raises(InputError, match=f"{second}:3: not valid JSON"):
        list(iter_located_pairs(data, "train", after_first))


def test_merge_verifies_on_a_sharded_test_split(tmp_path):
    from storyteller.merge import heldout_pairs
    from storyteller.models import ModelSource

    data = curated(tmp_path, {"train": 1, "test": 2})
    source = ModelSource("runs/x/final", "base", None, "base", {})
    assert ids(heldout_pairs(source, None, data)) == sorted(f"test-{i}" for i in range(4))
    (data / shard_name("test", 1, 2)).unlink()
    with pytest.raises(InputError, match="test-00001-of-00002.jsonl"):
        heldout_pairs(source, None, data)
