"""Out-of-fold predictions for training: scikit-learn's ``cross_val_predict`` over stratified folds.

Each finished fold is reported to a ``progress`` callback, ``progress(stage, done, total)``: the command
line draws it (library code never prints). Quality figures and review thresholds are chosen on these
predictions, so they must not move: tests/test_training_progress.py compares them with the hand-written
loop they replaced.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import FeatureUnion, Pipeline

from pipeline.model.cause_model import vocabulary_coverage

Progress = Callable[[str, int, int], None]  # (stage, units done, units in all), e.g. ("cross-validation", 2, 5)


def no_progress(stage: str, done: int, total: int) -> None:
    """The default ``progress``: report nothing."""


def stratified_folds(folds: int, seed: int = 0, grouped: bool = False):
    """The folds every out-of-fold figure uses: stratified, shuffled with ``seed``; ``grouped``: no group
    (industry) in a training fold and its test fold at once."""
    if grouped:
        return StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)


def out_of_fold_probabilities(pipeline, texts: list[str], labels: np.ndarray, folds: int, seed: int = 0,
                              sample_weight: np.ndarray | None = None, groups: np.ndarray | None = None,
                              n_jobs: int = 1, progress: Progress = no_progress,
                              stage: str = "cross-validation") -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold class probabilities (columns follow ``np.unique(labels)``). ``sample_weight`` is cut to
    each training fold; with ``groups`` (industries) the figures are those of a model meeting an industry
    it never saw. ``n_jobs`` folds are fitted at once (then ``progress`` hears of the stage's start and end
    only: the folds finish in other processes)."""
    classes = np.unique(labels)
    progress(stage, 0, folds)
    finished = []

    def fold_done() -> None:
        finished.append(True)
        progress(stage, len(finished), folds)

    model = _FoldModel(pipeline, classes, fold_done if n_jobs == 1 else None)
    params = {} if sample_weight is None else {"classifier__sample_weight": np.asarray(sample_weight)}
    probabilities = cross_val_predict(model, list(texts), labels, groups=groups, params=params, n_jobs=n_jobs,
                                      cv=stratified_folds(folds, seed, grouped=groups is not None),
                                      method="predict_proba")
    if n_jobs != 1:
        progress(stage, folds, folds)
    return classes, probabilities


def out_of_fold_coverage(pipeline, texts: list[str], labels: np.ndarray, folds: int, seed: int = 0,
                         n_jobs: int = 1) -> np.ndarray | None:
    """Each text's vocabulary coverage against the character vocabulary of the fold that did not see it
    (the folds of ``out_of_fold_probabilities``): what familiar text looks like. None without a character
    block. Only the normaliser and character vectoriser are fitted per fold, a small part of a fold's fit."""
    if "chars" not in dict(pipeline.named_steps["features"].transformer_list):
        return None
    return cross_val_predict(CharacterCoverage(pipeline), list(texts), labels, n_jobs=n_jobs,
                             cv=stratified_folds(folds, seed))


class _FoldModel(MetaEstimatorMixin, BaseEstimator):
    """What ``cross_val_predict`` fits per fold: ``estimator`` trained on the label names — cross_val_predict
    hands the fold labels encoded as 0…k−1 when it predicts probabilities, and the two-stage classifier
    finds its ``none`` label by name — reporting each finished fit to ``on_fit``."""

    def __init__(self, estimator, labels, on_fit: Callable[[], None] | None = None):
        self.estimator = estimator
        self.labels = labels
        self.on_fit = on_fit

    def fit(self, X, y, **params):
        self.estimator_ = clone(self.estimator).fit(X, np.asarray(self.labels)[y], **params)
        self.classes_ = np.searchsorted(self.labels, self.estimator_.classes_)  # back to cross_val_predict's codes
        if self.on_fit is not None:
            self.on_fit()
        return self

    def predict_proba(self, X):
        return self.estimator_.predict_proba(X)

    def predict(self, X):
        return self.estimator_.predict(X)


class CharacterCoverage(BaseEstimator):
    """A pipeline's normaliser and character vectoriser alone, whose prediction is each text's vocabulary
    coverage as ``vocabulary_coverage`` gives it for the whole pipeline fitted on the same rows."""

    def __init__(self, pipeline):
        self.pipeline = pipeline

    def fit(self, X, y=None):
        characters = dict(self.pipeline.named_steps["features"].transformer_list)["chars"]
        self.fitted_ = Pipeline([("normalise", clone(self.pipeline.named_steps["normalise"])),
                                 ("features", FeatureUnion([("chars", clone(characters))]))]).fit(X)
        return self

    def predict(self, X) -> np.ndarray:
        normalised = self.fitted_.named_steps["normalise"].transform(X)
        return vocabulary_coverage(self.fitted_, normalised, self.fitted_.named_steps["features"].transform(normalised))
