"""The transparent lexicon classifier: weighted cause terms, scores, probabilities and the deciding terms.

It is a scikit-learn estimator with ``predict_proba`` and ``explain`` — the same interface as the trained
model — and its per-cause scores also serve as a feature block inside the trained model
(``LexiconFeatures``), so hand-written domain knowledge carries over to industries the labelled data
does not cover.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from pipeline.config import DATA_DIR
from pipeline.text.normalise import normalise_text
from pipeline.labels import CAUSES, NONE_LABEL

DEFAULT_LEXICON = DATA_DIR / "lexicon" / "cause_lexicon.toml"


def load_lexicon(path: Path | str = DEFAULT_LEXICON) -> dict[str, dict[str, float]]:
    path = Path(path)
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    unknown = sorted(set(raw) - set(CAUSES))
    if unknown:
        raise ValueError(f"{path}: unknown cause section(s) {unknown}; expected some of {list(CAUSES)}")
    lexicon: dict[str, dict[str, float]] = {}
    for cause, terms in raw.items():
        for term, weight in terms.items():
            if not isinstance(weight, (int, float)) or weight <= 0:
                raise ValueError(f"{path}: [{cause}] {term!r}: weight must be a positive number")
        lexicon[cause] = {normalise_text(term): float(w) for term, w in terms.items()}
    return lexicon


def match_terms(text: str, lexicon: dict[str, dict[str, float]]) -> dict[str, list[tuple[str, float]]]:
    """Per cause, the lexicon terms found in an already-normalised text. A term inside a longer matched
    term of the same cause (态度 inside 态度很差) is counted once, through the longer term."""
    found: dict[str, list[tuple[str, float]]] = {}
    for cause, terms in lexicon.items():
        hits = [(t, w) for t, w in terms.items() if t in text]
        hits.sort(key=lambda tw: -len(tw[0]))
        kept: list[tuple[str, float]] = []
        for term, weight in hits:
            if not any(term in longer for longer, _ in kept):
                kept.append((term, weight))
        if kept:
            found[cause] = sorted(kept, key=lambda tw: -tw[1])
    return found


def score_texts(texts, lexicon) -> np.ndarray:
    """Matrix (n_texts, 6): summed term weights per cause, in ``CAUSES`` order."""
    scores = np.zeros((len(texts), len(CAUSES)))
    for i, text in enumerate(texts):
        for cause, hits in match_terms(text, lexicon).items():
            scores[i, CAUSES.index(cause)] = sum(w for _, w in hits)
    return scores


class LexiconFeatures(TransformerMixin, BaseEstimator):
    """Pipeline step: normalised texts → log-scaled lexicon scores per cause (a dense feature block)."""

    def __init__(self, *, lexicon_path: str | None = None):
        self.lexicon_path = lexicon_path

    def fit(self, X, y=None):
        self.lexicon_ = load_lexicon(self.lexicon_path or DEFAULT_LEXICON)
        return self

    def transform(self, X):
        check_is_fitted(self, "lexicon_")
        return np.log1p(score_texts(list(X), self.lexicon_))

    def get_feature_names_out(self, input_features=None):
        return np.array([f"lexicon:{c}" for c in CAUSES], dtype=object)


class LexiconClassifier(ClassifierMixin, BaseEstimator):
    """Cause = highest lexicon score; no evidence at all → ``none``.

    Probabilities are a softmax over the scores with a fixed pseudo-score for ``none``, so a single weak
    hint stays uncertain and goes to review, while several strong terms give a confident answer.
    """

    def __init__(self, *, lexicon_path: str | None = None, none_score: float = 2.0, temperature: float = 1.5):
        self.lexicon_path = lexicon_path
        self.none_score = none_score
        self.temperature = temperature

    def fit(self, X=None, y=None):
        self.lexicon_ = load_lexicon(self.lexicon_path or DEFAULT_LEXICON)
        self.classes_ = np.array(list(CAUSES) + [NONE_LABEL], dtype=object)
        return self

    def predict_proba(self, X):
        check_is_fitted(self, "lexicon_")
        texts = [normalise_text(str(t)) for t in X]
        scores = score_texts(texts, self.lexicon_)
        logits = np.hstack([scores, np.full((len(texts), 1), self.none_score)]) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def explain(self, X, labels, top_n: int = 5) -> list[list[str]]:
        check_is_fitted(self, "lexicon_")
        out = []
        for text, label in zip(X, labels):
            hits = match_terms(normalise_text(str(text)), self.lexicon_).get(label, [])
            out.append([t for t, _ in hits[:top_n]])
        return out
