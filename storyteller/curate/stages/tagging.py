"""The tag stage: a task per read task. Each story that goes on gets its genre and style — from
its metadata where the data gives both to every story, else from the tagger the link stage
trained — and each group's stratum (its first story's genre) for the split."""

from __future__ import annotations

import itertools
from typing import Any

from storyteller.curate.pairs import Story
from storyteller.curate.tag import Tag


def kept_stories(work, rank: int) -> Any:
    """(row, id, group) of each story of read task `rank` that goes on, chunk by chunk."""
    decisions = work.read_pickle(("link", "00000", f"decisions-{rank:05d}.pkl"))
    index = 0
    for chunk in work.chunks(("read", f"{rank:05d}", "stories.pkl")):
        kept = []
        for row in chunk:
            decision = decisions[index]
            index += 1
            if decision is not None:
                kept.append((row, *decision))
        if kept:
            yield kept


TAGGER = ("link", "00000", "tagger.pkl")


def run(plan, rank: int, work, pool, track) -> dict[str, Any]:
    parts = work.begin("tag", rank)
    trained = work.exists(TAGGER)
    tags: list[dict[str, Tag]] = []
    strata: list[tuple[str, str | None]] = []
    stream = kept_stories(work, rank)
    if trained:  # the workers tag, each with the tagger loaded once from the work folder
        stream, for_workers = itertools.tee(stream)
        tagged = pool.map_chunks("tag", ((work.url, TAGGER, [row[0] for row, _, _ in kept],
                                          [row[4].get("genre") for row, _, _ in kept],
                                          [row[4].get("style") for row, _, _ in kept])
                                         for kept in for_workers))
    for kept in track.track(stream, f"tagging, part {rank + 1}"):
        metas = [row[4] for row, _, _ in kept]
        if trained:
            chunk_tags = next(tagged)
        else:
            chunk_tags = [{name: Tag(str(meta[name]), 1.0, False) for name in ("genre", "style")}
                          for meta in metas]
        for (row, story_id, group), story_tags in zip(kept, chunk_tags):
            story = Story(id=story_id, group=group, text="", source={}, meta=row[4], words=0,
                          tokens=0, tags=story_tags)
            strata.append((group, story.control("genre")))
        tags.extend(chunk_tags)
    work.write_pickle((*parts, "tags.pkl"), tags)
    work.write_pickle((*parts, "strata.pkl"), strata)
    return {"stories": len(tags)}
