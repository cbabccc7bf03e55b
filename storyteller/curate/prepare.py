"""Per-record work of curation — clean, filter, count tokens, hash, sign — and per-story pair
building, run in worker processes where the machine has several cores.

Workers receive chunks in order and results come back in order, so the outputs do not depend on
the number of workers. Each worker holds its own tokenizer and MinHash signer, made once."""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from storyteller.curate import clean, dedup
from storyteller.curate.augment import augment
from storyteller.curate.config import CurateConfig
from storyteller.curate.pairs import PairOptions, Story, build_pairs
from storyteller.curate.records import Rejected, RawStory
from storyteller.processes import die_with_parent

T = TypeVar("T")


@dataclass
class Prepared:
    """A record that passed the text filters, with what deduplication needs."""

    raw: RawStory
    text: str
    words: int
    tokens: int
    exact_key: str
    signature: np.ndarray | None
    shingles: np.ndarray | None


def with_moral(raw: RawStory, append: bool) -> str:
    """The text, ending on `Moral: …` where the record carries a moral the text lacks."""
    moral = raw.meta.get("moral")
    if not append or not moral or not raw.text.strip() or "Moral:" in raw.text:
        return raw.text
    moral = str(moral).strip()
    if moral.lower().startswith("moral:"):
        moral = moral[6:].strip()
    return f"{raw.text.rstrip()}\n\nMoral: {moral}"


def clean_meta(meta: dict[str, Any], strip_html: bool) -> dict[str, Any]:
    """Metadata strings cleaned like the text (they reach prompts), each on one line."""
    cleaned: dict[str, Any] = {}
    for key, value in meta.items():
        if isinstance(value, str):
            value = " ".join(clean.clean_text(value, strip_html_tags=strip_html).split())
        elif isinstance(value, list):
            value = [" ".join(clean.clean_text(v, strip_html_tags=strip_html).split())
                     if isinstance(v, str) else v for v in value]
        cleaned[key] = value
    return cleaned


class Worker:
    """The state one process needs; made once per process."""

    def __init__(self, config: CurateConfig):
        from storyteller.models import load_tokenizer

        self.config = config
        tokenizer = load_tokenizer(config.tokenizer)
        self.count_tokens = _token_counter(tokenizer)
        self.signer = dedup.Signer(config.dedup.num_perm, config.dedup.shingle_words,
                                   seed=config.seed + 1)
        self.options = PairOptions(kinds=tuple(config.pairs.kinds),
                                   derive_premise=config.pairs.derive_premise,
                                   max_story_tokens=config.pairs.max_story_tokens,
                                   context_words=config.pairs.context_words,
                                   opening_share=config.pairs.opening_share,
                                   document_windows=config.pairs.document_windows,
                                   document_context_words=config.pairs.document_context_words,
                                   document_passage_words=config.pairs.document_passage_words,
                                   notes_probability=config.pairs.notes_probability,
                                   direction_probability=config.pairs.direction_probability,
                                   summary_probability=config.pairs.summary_probability,
                                   summary_words=config.pairs.summary_words,
                                   seed=config.seed)
        self._tagger, self._tagger_at = None, None

    def prepare(self, records: Sequence[RawStory]) -> list[Prepared | Rejected]:
        """Clean and filter a chunk of records; count tokens for the chunk in one batch."""
        config, filters = self.config, self.config.filters
        excluded_tags = {t.lower() for t in filters.exclude_tags}
        results: list[Prepared | Rejected | None] = []
        passed: list[tuple[int, RawStory, str, int]] = []
        for record in records:
            excluded = sorted({str(t).lower() for t in record.meta.get("tags") or []} & excluded_tags)
            if excluded:
                results.append(Rejected(record.source, record.line, "excluded_tag",
                                        f"tagged {', '.join(excluded)}", record.position))
                continue
            markup = record.meta.pop("markup", None) if config.clean.strip_markdown else None
            text = clean.clean_text(with_moral(record, config.source.append_moral), markup=markup,
                                    strip_html_tags=config.clean.strip_html)
            count = len(clean.words(text))
            verdict = clean.quality_verdict(text, count, min_words=filters.min_words,
                                            max_words=filters.max_words,
                                            max_repeated_share=filters.max_repeated_share,
                                            min_letter_share=filters.min_letter_share)
            if verdict:
                results.append(Rejected(record.source, record.line, verdict.reason, verdict.detail,
                                        record.position))
                continue
            record.meta = clean_meta(record.meta, config.clean.strip_html)
            passed.append((len(results), record, text, count))
            results.append(None)
        tokens = self.count_tokens([text for _, _, text, _ in passed])
        for (index, record, text, count), n in zip(passed, tokens):
            verdict = clean.token_verdict(n, min_tokens=filters.min_tokens, max_tokens=filters.max_tokens)
            if verdict:
                results[index] = Rejected(record.source, record.line, verdict.reason, verdict.detail,
                                          record.position)
                continue
            signature = shingles = None
            if config.dedup.near:
                signature, shingles = self.signer.sign_with_set(text)
            record.text = ""  # the cleaned text is kept; the raw copy would only cost memory
            results[index] = Prepared(record, text, count, n, dedup.exact_key(text), signature, shingles)
        return results  # type: ignore[return-value]

    def tag(self, job: tuple[str, tuple[str, ...], list[str], list[Any], list[Any]]
            ) -> list[dict[str, Any]]:
        """Genre and style of a chunk of stories, by the tagger saved at (work folder, parts) —
        loaded once per process, since it is trained after the workers start."""
        url, parts, texts, genres, styles = job
        if self._tagger_at != (url, parts):
            from storyteller.curate.work import Work

            self._tagger, self._tagger_at = Work(url).read_pickle(parts), (url, parts)
        return self._tagger.tag(texts, genres, styles)

    def pairs(self, work: Sequence[tuple[Story, bool]]) -> list[list[dict[str, Any]]]:
        """The pairs of each story, with augmented variants where asked."""
        config = self.config
        results = []
        for story, augmented in work:
            pairs = build_pairs(story, self.options, self.count_tokens)
            if augmented and config.augment.ratio > 0:
                pairs += augment(story, pairs, ratio=config.augment.ratio,
                                 methods=config.augment.methods, seed=config.seed,
                                 control_dropout=config.augment.control_dropout)
            results.append(pairs)
        return results


def _token_counter(tokenizer) -> Callable[[Sequence[str]], list[int]]:
    def count(texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False)
        return [len(ids) for ids in encoded["input_ids"]]
    return count


_WORKER: Worker | None = None
_INIT_ERROR: BaseException | None = None


def _init(config: CurateConfig) -> None:
    # An exception here would make the pool restart the worker forever; keep it and report it
    # from the first job instead.
    global _WORKER, _INIT_ERROR
    die_with_parent()  # a killed run must not leave its workers behind
    try:
        _WORKER = Worker(config)
    except BaseException as error:  # noqa: BLE001 - re-raised in the parent by _call
        _INIT_ERROR = error


def _call(job: tuple[str, Any]) -> Any:
    if _INIT_ERROR is not None:
        raise _INIT_ERROR
    method, chunk = job
    return getattr(_WORKER, method)(chunk)


class WorkerDied(RuntimeError):
    """A worker process ended in the middle of a chunk (killed, or out of memory)."""


class Pool:
    """Runs Worker methods over chunks, in order: in this process for one worker, else in a
    pool of forked processes (each makes its own Worker once). A worker that dies mid-chunk
    raises WorkerDied here rather than leaving the run waiting for it."""

    def __init__(self, config: CurateConfig, workers: int):
        self.workers = max(1, workers)
        self.config = config
        self._pool: ProcessPoolExecutor | None = None
        # Load (and on first use convert) the tokenizer here, before any fork: errors surface
        # once, cleanly, and workers inherit the loaded tokenizer instead of each converting it.
        from storyteller.models import load_tokenizer

        load_tokenizer(config.tokenizer)
        if self.workers > 1:
            # Each process tokenizes its own chunks; the tokenizer's own threads would only
            # compete with the other processes for the same cores.
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("fork"),
                                             initializer=_init, initargs=(config,))
            self.local = None
        else:
            self.local = Worker(config)

    def map_chunks(self, method: str, chunks: Iterable[Sequence[T]],
                   in_flight: int = 0) -> Iterator[Any]:
        """Results for each chunk, in order, with at most `in_flight` chunks handed out at a
        time (default four per worker): a stream of any length is worked through in bounded
        memory."""
        if self._pool is None:
            for chunk in chunks:
                yield getattr(self.local, method)(chunk)
            return
        pending: deque = deque()
        try:
            for chunk in chunks:
                pending.append(self._pool.submit(_call, (method, chunk)))
                if len(pending) >= (in_flight or 4 * self.workers):
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool:
            raise WorkerDied("a worker process died in the middle of its work (killed, or out "
                             "of memory)") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
