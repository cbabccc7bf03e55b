"""The pairs stage: a task per read task. Builds each story's prompt–story pairs (with
augmented variants in the splits that get them) in the worker pool and writes them per split,
with the counts the manifest and report need."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from typing import Any

import numpy as np

from storyteller.curate.pairs import Story
from storyteller.curate.split import SPLITS
from storyteller.curate.stages.read import CHUNK, reject_line
from storyteller.curate.stages.tagging import kept_stories
from storyteller.curate.records import Rejected


def run(plan, rank: int, work, pool, track) -> dict[str, Any]:
    config = plan.config
    parts = work.begin("pairs", rank)
    tags = iter(work.read_pickle(("tag", f"{rank:05d}", "tags.pkl")))
    splits = iter(work.read_pickle(("split", "00000", f"splits-{rank:05d}.pkl")))

    def stories():
        for kept in kept_stories(work, rank):
            for (text, source, line, position, meta, words, tokens, input_index), story_id, group \
                    in kept:
                story = Story(id=story_id, group=group, text=text,
                              source={"file": source, "line": line, "position": position},
                              meta=meta, words=words, tokens=tokens, tags=next(tags))
                yield story, next(splits), input_index

    pairs_count, tokens = Counter(), Counter()
    genres = {name: Counter() for name in SPLITS}
    kinds = {name: Counter() for name in SPLITS}
    by_genre = {name: Counter() for name in SPLITS}
    inferred: Counter[str] = Counter()
    kept_per_input: Counter[int] = Counter()
    words: list[int] = []
    handles = {name: work.open((*parts, f"{name}.jsonl"), "wb") for name in SPLITS}
    try:
        with work.open((*parts, "rejects-pairs.jsonl"), "wb") as rejects:
            batch_size = CHUNK // 4
            flow = stories()
            while batch := list(itertools.islice(flow, batch_size * 64)):
                work_items = [(story, split in config.augment.apply_to) for story, split, _ in batch]
                chunks = [work_items[i:i + batch_size] for i in range(0, len(work_items), batch_size)]
                made = itertools.chain.from_iterable(pool.map_chunks("pairs", chunks))
                for (story, split, input_index), pairs in zip(batch, made):
                    if not pairs:
                        rejects.write(reject_line(Rejected(
                            story.source["file"], story.source["line"], "no_pairs",
                            f"none of pairs.kinds {config.pairs.kinds} applies to it (no premise, "
                            "title or opening to use)", story.source["position"])))
                        continue
                    handle = handles[split]
                    for pair in pairs:
                        handle.write((json.dumps(pair, ensure_ascii=False) + "\n").encode("utf-8"))
                        pairs_count[split] += 1
                        genres[split][pair["controls"].get("genre", "(none)")] += 1
                        kinds[split][pair["kind"] + (" (augmented)" if pair["augmented"] else "")] += 1
                    tokens[split] += story.tokens
                    by_genre[split][story.control("genre") or "(none)"] += 1
                    inferred.update(f"{name}:{tag.value}" for name, tag in story.tags.items()
                                    if tag.inferred)
                    kept_per_input[input_index] += 1
                    words.append(story.words)
    finally:
        for handle in handles.values():
            handle.close()
    work.save_array((*parts, "words.npy"), np.array(words, dtype=np.int64))
    return {"pairs": dict(pairs_count), "tokens": dict(tokens), "genres": genres, "kinds": kinds,
            "stories_by_genre": by_genre, "inferred": dict(inferred),
            "kept_per_input": {str(k): v for k, v in kept_per_input.items()}}
