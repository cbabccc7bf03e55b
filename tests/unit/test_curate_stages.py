"""The pieces of the staged curate run: near duplicates from band keys on disk match the
in-memory index, exact duplicates keep the first, tasks divide inputs in order, progress lines
for logs, and the work folder's files."""

from __future__ import annotations

import numpy as np
import pytest

from storyteller import console
from storyteller.curate import dedup
from storyteller.curate.stages import task_groups
from storyteller.curate.stages.assemble import shard_names
from storyteller.curate.stages.link import exact_firsts
from storyteller.curate.work import Work


def corpus(count: int, seed: int) -> list[str]:
    """Random stories, every fifth a light edit of an earlier one, some exact repeats."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(400)]
    texts: list[str] = []
    for index in range(count):
        if texts and index % 5 == 0:
            base = texts[int(rng.integers(len(texts)))].split()
            for _ in range(max(1, len(base) // 15)):
                base[int(rng.integers(len(base)))] = words[int(rng.integers(len(words)))]
            texts.append(" ".join(base))
        elif texts and index % 17 == 0:
            texts.append(texts[-1])
        else:
            texts.append(" ".join(words[int(i)] for i in rng.integers(0, len(words), 80)))
    return texts


@pytest.mark.parametrize("threshold", [0.5, 0.8])
def test_band_keys_from_disk_find_the_clusters_the_index_finds(threshold):
    signer = dedup.Signer(128, 3, seed=1)
    signed = [signer.sign_with_set(text) for text in corpus(600, 3)]
    signatures, sets = [s for s, _ in signed], [h for _, h in signed]
    expected = dedup.near_duplicate_clusters(signatures, threshold, 128, shingle_sets=sets)
    bands, rows = dedup.lsh_shape(threshold, 128)
    keys = dedup.band_keys(np.stack(signatures), bands, rows)
    found = dedup.staged_clusters(len(signed), iter(keys),
                                  lambda a, b: dedup.jaccard(sets[a], sets[b]), threshold)
    assert len(expected) > 20
    assert [(c.representative, c.members, c.similarity) for c in found] == \
        [(c.representative, c.members, c.similarity) for c in expected]


def test_band_keys_are_equal_exactly_where_a_band_agrees():
    signatures = np.array([[1, 2, 3, 4], [1, 2, 9, 9], [7, 2, 3, 4]], dtype=np.uint32)
    keys = dedup.band_keys(signatures, bands=2, rows=2)
    assert keys.shape == (2, 3)
    assert keys[0, 0] == keys[0, 1] != keys[0, 2]   # rows 0–1: 1,2 | 1,2 | 7,2
    assert keys[1, 0] == keys[1, 2] != keys[1, 1]   # rows 2–3: 3,4 | 9,9 | 3,4
    assert keys[0, 0] != keys[1, 0]                  # the same values in another band differ


def test_band_candidates_are_every_pair_of_a_bucket_once():
    pairs = dedup.band_candidates(np.array([5, 3, 5, 5, 3, 9], dtype=np.uint64))
    assert sorted(map(tuple, pairs.tolist())) == [(0, 2), (0, 3), (1, 4), (2, 3)]


def test_exact_firsts_point_at_the_first_in_input_order():
    keys = np.array([[1, 1], [2, 2], [1, 1], [3, 3], [2, 2], [1, 1]], dtype=np.uint64)
    assert exact_firsts(keys).tolist() == [0, 1, 0, 3, 1, 0]
    assert exact_firsts(np.zeros((0, 2), dtype=np.uint64)).tolist() == []


@pytest.mark.parametrize("count,tasks,expected", [
    (5, 2, [[0, 1, 2], [3, 4]]), (2, 8, [[0], [1]]), (0, 4, [[]]), (3, 1, [[0, 1, 2]])])
def test_task_groups_keep_input_order(count, tasks, expected):
    assert task_groups(count, tasks) == expected


def test_shard_names_follow_datasets():
    assert shard_names("train", 1) == ["train.jsonl"]
    assert shard_names("val", 3) == ["val-00000-of-00003.jsonl", "val-00001-of-00003.jsonl",
                                     "val-00002-of-00003.jsonl"]


@pytest.mark.parametrize("url", ["local", "memory://unit-work"])
def test_work_folder_round_trips_and_marks_tasks(tmp_path, url):
    work = Work(str(tmp_path / "work") if url == "local" else url)
    work.makedirs()
    parts = work.begin("read", 3)
    (work.open((*parts, "stale"), "wb")).close()
    parts = work.begin("read", 3)  # a task begun again starts from nothing
    assert not work.exists((*parts, "stale"))
    with work.chunk_writer((*parts, "stories.pkl")) as writer:
        writer.write([1, 2])
        writer.write(["three"])
    work.save_array((*parts, "a.npy"), np.arange(5, dtype=np.uint32))
    assert list(work.chunks((*parts, "stories.pkl"))) == [[1, 2], ["three"]]
    assert work.load_array((*parts, "a.npy"), mmap=True).tolist() == [0, 1, 2, 3, 4]
    assert not work.done("read", 3)
    work.mark_done("read", 3, {"stories": 2})
    assert work.done("read", 3) and work.summary("read", 3) == {"stories": 2}
    work.clear()
    assert not work.exists(("read",))


def test_line_progress_prints_only_for_long_steps():
    now = [0.0]
    lines: list[str] = []
    steps = console.LineSteps(every=30, clock=lambda: now[0], write=lines.append)

    def ticking(count: int, step: float):
        for index in range(count):
            now[0] += step
            yield index

    assert list(steps.track(ticking(10, 0.1), "quick")) == list(range(10))
    assert lines == []
    list(steps.track(ticking(100, 1.0), "slow", total=100))
    assert lines[0] == "slow: 30/100 (30%), 1.0/s, 1:10 left"
    assert len(lines) == 4 and lines[-1] == "slow: 100 done in 1:40"
