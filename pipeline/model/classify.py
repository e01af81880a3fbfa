"""One classification interface for the lexicon baseline and trained models.

Per complaint: primary cause, a probability per label, secondary causes, ``needs_review`` and the terms
that decided it. Runs in worker processes when there is more than one core (segmentation holds the GIL).
"""
from __future__ import annotations

import hashlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from pipeline.model.lexicon import DEFAULT_LEXICON, LexiconClassifier
from pipeline.text.normalise import TextNormaliser, mask_pii, normalise_text
from pipeline.model.cause_model import explain_from_features, use_segmenter_engine, vocabulary_coverage
from pipeline.nightly.reaper import die_with_parent
from pipeline.model.registry import load_artifact
from pipeline.labels import NONE_LABEL

PARALLEL_MIN_ROWS = 2000  # below this, starting worker processes costs more than it saves


@dataclass(frozen=True)
class ReviewPolicy:
    """When a prediction goes to a person instead of straight to a queue."""

    min_confidence: float = 0.5  # top probability below this → review
    min_margin: float = 0.1  # top minus second probability below this → review
    secondary_threshold: float = 0.3  # other causes at or above this are secondary causes
    # Texts unlike the training data get a stricter bar: a text whose vocabulary coverage is below
    # ``min_coverage``, and every text of a batch in which more than ``unfamiliar_batch_share`` of the
    # texts are such (a new industry or channel), must reach ``unfamiliar_min_confidence``.
    unfamiliar_min_confidence: float | None = None
    min_coverage: float = 0.0
    unfamiliar_batch_share: float = 1.0


UNFAMILIAR_BATCH_MIN_ROWS = 30  # below this a batch's unfamiliar share says too little to judge the batch


class CauseModel:
    """A fitted estimator with ``predict_proba`` and ``classes_``, its version and its review policy."""

    def __init__(self, estimator, *, version: str, policy: ReviewPolicy, kind: str, metadata: dict | None = None):
        self.estimator = estimator
        self.version = version
        self.policy = policy
        self.kind = kind
        self.metadata = metadata or {}

    @property
    def labels(self) -> list[str]:
        return [str(c) for c in self.estimator.classes_]

    def predict_proba(self, texts) -> np.ndarray:
        return self.estimator.predict_proba(list(texts))

    def predict_and_explain(self, texts, normalised: list[str] | None = None
                            ) -> tuple[np.ndarray, np.ndarray | None, Callable[[list[str]], list[list[str]]]]:
        """Probabilities, each text's vocabulary coverage (None when the model cannot tell), and a function
        naming the deciding terms for given labels. A trained pipeline computes its features once for all
        three (segmentation is most of the cost). ``normalised``: ``normalise_text`` of each text, when the
        caller has it already (used when the pipeline's first step is the plain ``TextNormaliser``)."""
        texts = list(texts)
        if self.kind == "lexicon":
            return (self.estimator.predict_proba(texts), None,
                    lambda labels: self.estimator.explain(texts, labels))
        step = self.estimator.named_steps["normalise"]
        if normalised is not None and type(step) is TextNormaliser:
            normalised = [text[:step.max_chars] for text in normalised]
        else:
            normalised = step.transform(texts)
        features = self.estimator.named_steps["features"].transform(normalised)
        probabilities = self.estimator.named_steps["classifier"].predict_proba(features)
        coverage = vocabulary_coverage(self.estimator, normalised, features)
        return probabilities, coverage, lambda labels: explain_from_features(self.estimator, features, labels, normalised)


def load_lexicon_model(lexicon_path: Path | str = DEFAULT_LEXICON) -> CauseModel:
    digest = hashlib.sha256(Path(lexicon_path).read_bytes()).hexdigest()[:8]
    estimator = LexiconClassifier(lexicon_path=str(lexicon_path)).fit()
    return CauseModel(estimator, version=f"lexicon-{digest}", policy=ReviewPolicy(min_confidence=0.55),
                      kind="lexicon")


def load_trained_model(model_path: Path | str, trusted: list[str] | None = None) -> CauseModel:
    estimator, metadata = load_artifact(model_path, trusted)
    policy_fields = {k: v for k, v in metadata.get("review_policy", {}).items() if k in ReviewPolicy.__dataclass_fields__}
    policy = ReviewPolicy(**policy_fields)
    return CauseModel(estimator, version=metadata["version"], policy=policy, kind="model", metadata=metadata)


def load_model(settings, model_path: Path | str | None = None) -> CauseModel:
    if model_path is None and settings.classifier == "lexicon":
        return load_lexicon_model(settings.lexicon_path)
    model = load_trained_model(model_path or settings.model_path, settings.trusted_models)
    trained_with = model.metadata.get("segmenter_engine", "jieba")
    if settings.segmenter_engine != trained_with and use_segmenter_engine(model.estimator, settings.segmenter_engine):
        model.version = f"{model.version}+{settings.segmenter_engine}"
    return model


def unfamiliar_rows(coverage: np.ndarray | None, policy: ReviewPolicy, rows: int) -> np.ndarray:
    """Which rows must meet the stricter bar: texts with too little known vocabulary, or all rows of a
    batch where such texts are more than the policy's share. None without coverage or a stricter bar."""
    if coverage is None or policy.unfamiliar_min_confidence is None:
        return np.zeros(rows, dtype=bool)
    low = np.asarray(coverage) < policy.min_coverage
    if len(low) >= UNFAMILIAR_BATCH_MIN_ROWS and low.mean() > policy.unfamiliar_batch_share:
        return np.ones(len(low), dtype=bool)
    return low


def decide(probabilities: np.ndarray, labels: list[str], policy: ReviewPolicy,
           coverage: np.ndarray | None = None) -> pd.DataFrame:
    """Probabilities (and vocabulary coverage) → primary label, confidence, secondary causes, the review
    flag and whether the text was judged unfamiliar (pure)."""
    order = np.argsort(-probabilities, axis=1)
    top = probabilities[np.arange(len(probabilities)), order[:, 0]]
    second = probabilities[np.arange(len(probabilities)), order[:, 1]] if probabilities.shape[1] > 1 else 0.0
    primary = [labels[i] for i in order[:, 0]]
    secondary = [
        "|".join(labels[j] for j in order[r, 1:]
                 if labels[j] != NONE_LABEL and probabilities[r, j] >= policy.secondary_threshold)
        for r in range(len(probabilities))
    ]
    unfamiliar = unfamiliar_rows(coverage, policy, len(probabilities))
    min_confidence = np.where(unfamiliar, policy.unfamiliar_min_confidence or policy.min_confidence,
                              policy.min_confidence)
    needs_review = (top < min_confidence) | ((top - second) < policy.min_margin)
    needs_review |= np.array([p == NONE_LABEL for p in primary], dtype=bool)
    frame = pd.DataFrame({"cause": primary, "confidence": np.round(top, 4),
                          "needs_review": needs_review, "secondary_causes": secondary,
                          "unfamiliar": unfamiliar,
                          "coverage": np.round(coverage, 4) if coverage is not None else np.nan})
    for j, label in enumerate(labels):
        frame[f"p_{label}"] = np.round(probabilities[:, j], 4)
    return frame


@dataclass(frozen=True)
class TextWork:
    """What the batch path needs of each text besides its scores, done where the text is classified: the
    text masked for storage (``text_masked``) and the escalation term rules it fires (``text_triggers``).
    The model's clean-up masks and normalises every text anyway; doing both here once, next to it, saves
    the batch's main process a second masking and normalisation of each text. Texts come whole (they are
    stored and searched whole); the model sees each cut to ``max_model_chars``."""

    escalator: object  # pipeline.routing.escalation.Escalator (not imported: the model needs no routing)
    max_model_chars: int

    def model_inputs(self, texts: list[str]) -> tuple[list[str], list[str], list[str]]:
        """Each text masked, its whole text normalised, and the text the model sees, normalised."""
        masked = [mask_pii(text) for text in texts]
        clean = [normalise_text(text, mask) for text, mask in zip(texts, masked)]
        cut = self.max_model_chars
        for_model = [whole if len(text) <= cut else normalise_text(text[:cut])
                     for text, whole in zip(texts, clean)]
        return masked, clean, for_model


def classify_texts(model: CauseModel, texts, work: TextWork | None = None) -> pd.DataFrame:
    return decide_batch(model, score_texts(model, texts, work))


def score_texts(model: CauseModel, texts, work: TextWork | None = None) -> pd.DataFrame:
    """What each text gets on its own: a probability per label (unrounded), its vocabulary coverage and the
    terms behind its top label (and with ``work``, ``TextWork``'s columns). Worker processes score slices of
    a batch; ``decide_batch`` then decides over the whole batch, since the unfamiliar-share rule looks at
    every text of the batch, not of a slice."""
    texts = list(texts)
    if work is not None:
        masked, clean, normalised = work.model_inputs(texts)
        model_texts = [text[:work.max_model_chars] for text in texts]
    else:
        normalised, model_texts = None, texts
    if texts:
        probabilities, coverage, explain = model.predict_and_explain(model_texts, normalised)
        top = [model.labels[i] for i in np.argsort(-probabilities, axis=1)[:, 0]]
        explanations = ["、".join(terms) for terms in explain(top)]
    else:
        probabilities, coverage, explanations = np.zeros((0, len(model.labels))), None, []
    scores = pd.DataFrame(probabilities, columns=[f"p_{label}" for label in model.labels])
    scores["coverage"] = coverage if coverage is not None else np.nan
    scores["explanation"] = explanations
    if work is not None:
        scores["text_masked"] = masked
        scores["text_triggers"] = [work.escalator.clean_text_triggers(text) for text in clean]
    return scores


def decide_batch(model: CauseModel, scores: pd.DataFrame) -> pd.DataFrame:
    """A batch's scores (one frame, or its slices' frames concatenated in order) → ``decide``'s frame with
    each text's explanation."""
    probabilities = scores[[f"p_{label}" for label in model.labels]].to_numpy(dtype=float)
    coverage = None if scores["coverage"].isna().all() else scores["coverage"].to_numpy(dtype=float)
    decided = decide(probabilities, model.labels, model.policy, coverage)
    decided["explanation"] = scores["explanation"].tolist()
    for column in TEXT_WORK_COLUMNS.intersection(scores.columns):
        decided[column] = scores[column].tolist()
    return decided


TEXT_WORK_COLUMNS = {"text_masked", "text_triggers"}


_worker_model: CauseModel | None = None


_worker_work: TextWork | None = None


def _init_worker(model: CauseModel, work: TextWork | None = None) -> None:
    global _worker_model, _worker_work  # one model per worker process, set once by the pool initialiser
    _worker_model, _worker_work = model, work
    die_with_parent()


def _score_in_worker(texts: list[str]) -> pd.DataFrame:
    return score_texts(_worker_model, texts, _worker_work)


class ParallelClassifier:
    """Classifies large batches across worker processes; each worker segments, vectorises and scores its
    own slice and returns only the small score frame; the batch is decided here, whole. ``work``: the batch
    path's per-text work, done next to the model. Use as a context manager."""

    def __init__(self, model: CauseModel, workers: int, work: TextWork | None = None):
        self.model = model
        self.workers = workers
        self.work = work
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._pool is not None:
            self._pool.shutdown()

    def classify(self, texts) -> pd.DataFrame:
        texts = list(texts)
        if self.workers <= 1 or len(texts) < PARALLEL_MIN_ROWS:
            return classify_texts(self.model, texts, self.work)
        if self._pool is None:
            # forkserver: a fork of this multi-threaded process (Prefect's threads) can copy a held lock and hang
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("forkserver"),
                                             initializer=_init_worker, initargs=(self.model, self.work))
        slices = [list(s) for s in np.array_split(np.array(texts, dtype=object), self.workers) if len(s)]
        return decide_batch(self.model, pd.concat(list(self._pool.map(_score_in_worker, slices)), ignore_index=True))


def policy_as_dict(policy: ReviewPolicy) -> dict:
    return asdict(policy)
