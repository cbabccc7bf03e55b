"""Genre and style tags: from metadata where present, else inferred offline.

Styles with a program check (the house styles in `storyteller.styles`) are recognised by that
check with full confidence. Other genres and styles come from a small TF-IDF + logistic
regression classifier trained on tagged stories: those the project ships (the reference corpus)
plus the tagged stories of the current inputs. Every inferred tag carries its confidence and is
marked as inferred; below the minimum confidence no tag is given."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from storyteller.styles import HOUSE_STYLES


@dataclass(frozen=True)
class Tag:
    value: str
    confidence: float
    inferred: bool

    def to_json(self) -> dict:
        return {"value": self.value, "confidence": round(self.confidence, 4), "inferred": self.inferred}


class TextClassifier:
    """TF-IDF word and bigram features with logistic regression; deterministic for its inputs."""

    def __init__(self, texts: Sequence[str], labels: Sequence[str]):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        # Chosen by 5-fold cross-validation on the starter corpus (8 genres): 64% accuracy over
        # all stories, 81% on the 64% whose confidence reaches 0.3 (docs/BENCHMARKS.md).
        self.vectorizer = TfidfVectorizer(ngram_range=(1, 1), min_df=2 if len(texts) >= 20 else 1,
                                          sublinear_tf=True, stop_words="english",
                                          max_features=50000)
        features = self.vectorizer.fit_transform(texts)
        self.model = LogisticRegression(max_iter=5000, C=100.0, random_state=0)
        self.model.fit(features, labels)

    @property
    def classes(self) -> int:
        return len(self.model.classes_)

    @property
    def labels(self) -> list[str]:
        return [str(label) for label in self.model.classes_]

    def probabilities(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Each text's probability for every label."""
        if not texts:
            return []
        rows = self.model.predict_proba(self.vectorizer.transform(texts))
        return [dict(zip(self.labels, map(float, row))) for row in rows]

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        if not texts:
            return []
        probabilities = self.model.predict_proba(self.vectorizer.transform(texts))
        classes = self.model.classes_
        best = probabilities.argmax(axis=1)
        return [(str(classes[i]), float(row[i])) for i, row in zip(best, probabilities)]


def train_classifier(texts: Sequence[str], labels: Sequence[str | None]) -> TextClassifier | None:
    """A classifier for the labelled texts, or None with fewer than two labels to tell apart."""
    pairs = [(t, l) for t, l in zip(texts, labels) if l]
    if len({l for _, l in pairs}) < 2:
        return None
    return TextClassifier([t for t, _ in pairs], [l for _, l in pairs])


def house_style_of(text: str) -> str | None:
    """The one house style whose check `text` passes, if exactly one does."""
    passed = [name for name, check in HOUSE_STYLES.items() if check(text)]
    return passed[0] if len(passed) == 1 else None


class Tagger:
    """Tags stories with genre and style, trained once per run on the tagged stories given."""

    def __init__(self, texts: Sequence[str], genres: Sequence[str | None],
                 styles: Sequence[str | None], min_confidence: float):
        self.min_confidence = min_confidence
        self.genre_model = train_classifier(texts, genres)
        plain_styles = [s if s not in HOUSE_STYLES else None for s in styles]
        self.style_model = train_classifier(texts, plain_styles)
        self.trained_on = sum(1 for g in genres if g)

    def floor(self, model: TextClassifier) -> float:
        """The confidence a prediction needs: the configured minimum, and well above what
        guessing among the model's classes would give (1.5 times chance, at most 0.9)."""
        return max(self.min_confidence, min(0.9, 1.5 / model.classes))

    def tag(self, texts: Sequence[str], genres: Sequence[str | None],
            styles: Sequence[str | None]) -> list[dict[str, Tag]]:
        """A {genre, style} → Tag mapping for each story; metadata wins over inference."""
        results: list[dict[str, Tag]] = [{} for _ in texts]
        need_genre = [i for i, g in enumerate(genres) if not g]
        need_style = [i for i, s in enumerate(styles) if not s]
        for i, genre in enumerate(genres):
            if genre:
                results[i]["genre"] = Tag(genre, 1.0, False)
        for i, style in enumerate(styles):
            if style:
                results[i]["style"] = Tag(style, 1.0, False)
        if self.genre_model is not None:
            floor = self.floor(self.genre_model)
            for i, (value, confidence) in zip(need_genre, self.genre_model.predict([texts[i] for i in need_genre])):
                if confidence >= floor:
                    results[i]["genre"] = Tag(value, confidence, True)
        still_need = []
        for i in need_style:
            house = house_style_of(texts[i])
            if house:
                results[i]["style"] = Tag(house, 1.0, True)
            else:
                still_need.append(i)
        if self.style_model is not None:
            floor = self.floor(self.style_model)
            for i, (value, confidence) in zip(still_need, self.style_model.predict([texts[i] for i in still_need])):
                if confidence >= floor:
                    results[i]["style"] = Tag(value, confidence, True)
        return results
