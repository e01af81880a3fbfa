"""Training, cross-validation, evaluation and model comparison — for any label set.

Quality figures come only from data the model did not see: out-of-fold predictions of stratified
k-fold cross-validation, or a held-out file. The review thresholds are chosen on the out-of-fold
predictions, never on the evaluation split.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support
from sklearn.utils.class_weight import compute_sample_weight

from pipeline.model.classify import CauseModel, ReviewPolicy, decide, policy_as_dict
from pipeline.model.cause_model import build_pipeline
from pipeline.model.registry import save_artifact
from pipeline.labels import CAUSES, NONE_LABEL, UNFAMILIAR_NOTE_SHARE, canonical_label
from pipeline.delivery.spreadsheet import read_table
from pipeline.training.folds import Progress, no_progress, out_of_fold_coverage, out_of_fold_probabilities


class TrainingDataError(ValueError):
    """The labelled file cannot be used for training; the message says which column or class."""


def read_labelled(path: Path | str, text_column: str = "text", label_column: str = "cause") -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise TrainingDataError(f"{path}: no such file")
    frame = read_table(path)
    for column in (text_column, label_column):
        if column not in frame.columns:
            raise TrainingDataError(f"{path}: no column {column!r}; columns are {list(frame.columns)} "
                                    "(choose them with --text-column / --label-column)")
    empty = (frame[text_column].str.strip() == "") | (frame[label_column].str.strip() == "")
    frame = frame[~empty].copy()
    frame[text_column] = frame[text_column].astype(str)
    frame[label_column] = frame[label_column].map(canonical_label)
    return frame.reset_index(drop=True)


def data_fingerprint(texts, labels) -> str:
    digest = hashlib.sha256()
    for text, label in zip(texts, labels):
        digest.update(f"{text}\x1f{label}\x1e".encode("utf-8"))
    return digest.hexdigest()


# The cause mix the default model is weighted towards: what complaints across industries look like
# (management, process and technology dominate; customer and random are a few per cent), not the mix the
# labelled texts happen to have; shares are normalised. `none` is weighted low: the two-stage model
# compares P(none) with the complaint mass split over six causes, so with the none share at 0.15 it sent
# uncertain complaints of unseen industries to `none` (six-cause macro-F1 over the dev industries 0.489,
# accuracy on complaints 0.48; at 0.07: 0.516 and 0.54; the non-complaints given a cause mostly stay below
# the review threshold). `customer` at 0.08, not 0.04: at 0.04 the model named the customer's own part for
# almost no real complaint of the dev industries (F1 0.12, the lowest cause; 0.20 at 0.08, macro-F1 0.536 →
# 0.550; the dev industries' customer share is 1–9%, and 34% in shop chats); `random` at 0.06 instead cost
# restaurants 0.09 (random given where there is none). Chosen per industry on the dev sets, December 2026.
TARGET_CLASS_PRIOR = {"none": 0.07, "management": 0.25, "process": 0.20, "technology": 0.18,
                      "personnel": 0.14, "customer": 0.08, "random": 0.04}


def training_weights(labels, sources, *, prior: dict[str, float] = TARGET_CLASS_PRIOR,
                     synthetic_share: float | None = 0.5) -> np.ndarray:
    """Row weights under which each label carries its share of ``prior`` (labels outside it: the mean
    share) and, within every label that has both, synthetic rows carry ``synthetic_share`` of the label's
    weight and real rows the rest. The same share in every label keeps the source independent of the
    label, so a model cannot learn "written like a synthetic text ⇒ this cause". ``None``: every row of
    a label weighs the same. The weights average 1."""
    labels, sources = np.asarray(labels), np.asarray(sources)
    synthetic = sources == "synthetic"
    present = list(np.unique(labels))
    known = [prior[label] for label in present if label in prior]
    default_share = float(np.mean(known)) if known else 1.0
    shares = {label: prior.get(label, default_share) for label in present}
    total = sum(shares.values())
    weights = np.empty(len(labels))
    for label in present:
        rows = labels == label
        label_weight = shares[label] / total
        n_synthetic, n_real = int((rows & synthetic).sum()), int((rows & ~synthetic).sum())
        if synthetic_share is None or not n_synthetic or not n_real:
            weights[rows] = label_weight / rows.sum()
        else:
            weights[rows & synthetic] = label_weight * synthetic_share / n_synthetic
            weights[rows & ~synthetic] = label_weight * (1 - synthetic_share) / n_real
    return weights * len(labels)


def apply_weighting(pipeline, labels, sources, weighting: str = "prior",
                    synthetic_share: float | None = 0.5) -> np.ndarray | None:
    """The sample weights to fit ``pipeline`` with ("balanced": every label alike; "prior":
    ``training_weights``), switching off the classifier's own class weights where the rows carry them."""
    has_class_weight = "class_weight" in pipeline.named_steps["classifier"].get_params()
    if weighting == "prior":
        if has_class_weight:
            pipeline.set_params(classifier__class_weight=None)
        return training_weights(labels, sources, synthetic_share=synthetic_share)
    if weighting == "balanced":
        return None if has_class_weight else compute_sample_weight("balanced", labels)
    raise ValueError(f"weighting must be 'balanced' or 'prior', got {weighting!r}")


def classification_metrics(y_true, y_pred, labels: list[str]) -> dict:
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for label, p, r, f, s in zip(labels, precision, recall, f1, support)},
        "confusion_matrix": {"labels": labels,
                             "matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist()},
    }


def cause_macro_f1(y_true, y_pred) -> float:
    """Macro-F1 over the six causes that occur among the true or predicted labels (a cause an industry
    never has and the model never predicts is left out, not scored as zero)."""
    present = [cause for cause in CAUSES if cause in set(y_true) | set(y_pred)]
    return float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)) if present else 0.0


def bootstrap_interval(y_true, y_pred, metric, *, rounds: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of a metric over the evaluated rows."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        idx = rng.integers(0, len(y_true), len(y_true))
        values.append(metric(y_true[idx], y_pred[idx]))
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def choose_review_policy(probabilities: np.ndarray, y_true: np.ndarray, labels: list[str], *,
                         target_precision: float = 0.8, min_margin: float = 0.1) -> ReviewPolicy:
    """Lowest confidence threshold at which the predictions routed without review reach the target
    precision on out-of-fold data (those below it go to a person)."""
    top = probabilities.max(axis=1)
    predicted = np.asarray(labels)[probabilities.argmax(axis=1)]
    correct = predicted == y_true
    for threshold in np.arange(0.2, 0.95, 0.01):
        auto = (top >= threshold) & (predicted != NONE_LABEL)
        if auto.sum() >= 20 and correct[auto].mean() >= target_precision:
            return ReviewPolicy(min_confidence=round(float(threshold), 2), min_margin=min_margin)
    return ReviewPolicy(min_confidence=0.95, min_margin=min_margin)


def review_metrics(frame: pd.DataFrame, y_true) -> dict:
    """How the review flag behaves: share of non-complaints flagged, share of complaints auto-routed and
    their accuracy."""
    y_true = np.asarray(y_true)
    is_none = y_true == NONE_LABEL
    flagged = frame["needs_review"].to_numpy()
    auto = ~flagged & ~is_none
    return {
        "none_flagged_share": float(flagged[is_none].mean()) if is_none.any() else None,
        "complaints_auto_routed_share": float((~flagged[~is_none]).mean()) if (~is_none).any() else None,
        "auto_routed_precision": float((frame["cause"].to_numpy()[auto] == y_true[auto]).mean()) if auto.any() else None,
    }


def evaluate_predictions(frame: pd.DataFrame, y_true, labels: list[str]) -> dict:
    """Metrics for decided predictions: all labels, and the cause-only view the product's bar uses."""
    y_true = np.asarray(y_true)
    y_pred = frame["cause"].to_numpy()
    report = classification_metrics(y_true, y_pred, labels)
    report["review"] = review_metrics(frame, y_true)
    report["accuracy_ci95"] = bootstrap_interval(y_true, y_pred, accuracy_score)
    report["macro_f1_ci95"] = bootstrap_interval(
        y_true, y_pred, lambda t, p: f1_score(t, p, labels=labels, average="macro", zero_division=0))
    causes = [label for label in labels if label in CAUSES]
    if causes:
        complaint_rows = np.isin(y_true, causes)
        yt, yp = y_true[complaint_rows], y_pred[complaint_rows]
        cause_f1 = cause_macro_f1
        report["causes_only"] = {
            "rows": int(complaint_rows.sum()),
            "macro_f1": float(cause_f1(yt, yp)),
            "macro_f1_ci95": bootstrap_interval(yt, yp, cause_f1),
            "accuracy": float(accuracy_score(yt, yp)),
            "accuracy_ci95": bootstrap_interval(yt, yp, accuracy_score),
            # Stricter: non-complaints given a cause count against that cause's precision.
            "macro_f1_all_rows": float(cause_f1(y_true, y_pred)),
        }
    return report


def evaluation_mask(frame: pd.DataFrame) -> np.ndarray:
    """Rows whose predictions may be scored: all but those marked ``source=synthetic``."""
    if "source" not in frame.columns:
        return np.ones(len(frame), dtype=bool)
    return (frame["source"] != "synthetic").to_numpy()


UNFAMILIAR_COVERAGE_PERCENTILE = 10  # texts below this percentile of cross-validated coverage are unfamiliar
UNFAMILIAR_BATCH_SHARE = UNFAMILIAR_NOTE_SHARE  # 3× the share expected of familiar text
MIN_REAL_ROWS_FOR_BAR = 200
FINAL_FIT = "fitting on all rows"


def choose_familiarity(policy: ReviewPolicy, coverage: np.ndarray | None, grouped: tuple | None,
                       review_precision: float) -> ReviewPolicy:
    """Add the stricter bar for unfamiliar text to a policy. ``coverage``: cross-validated coverage of the
    training texts (what familiar text looks like); ``grouped``: (probabilities, true labels, classes)
    predicted for each sector by a model trained without it, on which the strict confidence bar is chosen."""
    if coverage is None or grouped is None:
        return policy
    probabilities, y_true, classes = grouped
    strict = choose_review_policy(probabilities, y_true, classes, target_precision=review_precision)
    return replace(policy, unfamiliar_min_confidence=max(strict.min_confidence, policy.min_confidence),
                   min_coverage=round(float(np.percentile(coverage, UNFAMILIAR_COVERAGE_PERCENTILE)), 4),
                   unfamiliar_batch_share=UNFAMILIAR_BATCH_SHARE)


def train_model(frame: pd.DataFrame, *, text_column: str = "text", label_column: str = "cause",
                out_dir: Path | str, folds: int = 5, feature_set: str = "union+lexicon",
                estimator: str = "logreg", engine: str = "jieba", name: str = "cause-model",
                data_source: str = "", review_precision: float = 0.8, weighting: str = "balanced",
                synthetic_share: float | None = 0.5, group_column: str | None = "sector", n_jobs: int = 1,
                extra_metadata: dict | None = None, progress: Progress = no_progress) -> dict:
    """Cross-validate, choose the review policy, fit on all rows, save a versioned artifact.

    ``weighting``: "balanced" (every label weighs the same; any label set) or "prior" (labels weighted to
    ``TARGET_CLASS_PRIOR``, synthetic rows ``synthetic_share`` of each label's weight). With a ``group_column``
    (sectors) of at least three values, a second cross-validation holds out whole sectors to set the bar
    for text unlike the training data. ``progress(stage, done, total)`` hears of every fold and fit."""
    texts = frame[text_column].tolist()
    labels = frame[label_column].to_numpy()
    counts = pd.Series(labels).value_counts()
    too_small = counts[counts < folds]
    if len(counts) < 2:
        raise TrainingDataError(f"column {label_column!r} has fewer than two labels: {list(counts.index)}")
    if len(too_small):
        raise TrainingDataError(f"labels with fewer than {folds} examples cannot be cross-validated: "
                                f"{too_small.to_dict()}; add examples or lower --folds")
    pipeline = build_pipeline(feature_set=feature_set, estimator=estimator, engine=engine)
    sources = frame["source"].to_numpy() if "source" in frame.columns else np.full(len(frame), "")
    sample_weight = apply_weighting(pipeline, labels, sources, weighting, synthetic_share)
    started = time.perf_counter()
    classes, oof = out_of_fold_probabilities(pipeline, texts, labels, folds, sample_weight=sample_weight,
                                             n_jobs=n_jobs, progress=progress)
    classes = [str(c) for c in classes]
    progress("vocabulary coverage", 0, 1)
    coverage = out_of_fold_coverage(pipeline, texts, labels, folds, n_jobs=n_jobs)
    progress("vocabulary coverage", 1, 1)
    # Synthetic rows help the model learn but never count as evidence of its quality.
    scored = evaluation_mask(frame)
    policy = choose_review_policy(oof[scored], labels[scored], classes, target_precision=review_precision)
    grouped = None
    groups = frame[group_column].to_numpy() if group_column and group_column in frame.columns else None
    if groups is not None and len(set(groups)) >= max(3, folds):
        _, grouped_oof = out_of_fold_probabilities(pipeline, texts, labels, folds, sample_weight=sample_weight,
                                                   groups=groups, n_jobs=n_jobs, progress=progress,
                                                   stage="cross-validation, industries held out")
        # Real texts predicted by a model that never saw their industry are the honest proxy for a new
        # company's complaints; synthetic texts of a held-out industry are cleaner and flatter the bar.
        judged = scored if scored.sum() >= MIN_REAL_ROWS_FOR_BAR else np.ones(len(labels), dtype=bool)
        grouped = (grouped_oof[judged], labels[judged], classes)
    policy = choose_familiarity(policy, coverage, grouped, review_precision)
    cv_report = evaluate_predictions(decide(oof[scored], classes, policy), labels[scored], classes)
    cv_report["evaluated_rows"] = int(scored.sum())
    if grouped is not None:
        unseen = evaluate_predictions(decide(grouped[0], classes, replace(policy, min_confidence=policy.unfamiliar_min_confidence)),
                                      grouped[1], classes)
        cv_report["industries_held_out"] = {"groups": int(len(set(groups))), "review": unseen["review"],
                                            "macro_f1": unseen["macro_f1"], "accuracy": unseen["accuracy"]}
    fit_params = {} if sample_weight is None else {"classifier__sample_weight": sample_weight}
    progress(FINAL_FIT, 0, 1)
    fitted = clone(pipeline).fit(texts, labels, **fit_params)
    progress(FINAL_FIT, 1, 1)
    seconds = time.perf_counter() - started
    metadata = {
        "name": name,
        "labels": classes,
        "feature_set": feature_set,
        "estimator": estimator,
        "estimator_params": estimator_params(fitted),
        "weighting": {"scheme": weighting, **({"synthetic_share": synthetic_share, "prior": TARGET_CLASS_PRIOR}
                                              if weighting == "prior" else {})},
        "segmenter_engine": engine,
        "review_policy": {**policy_as_dict(policy), "target_precision": review_precision},
        "training_rows": len(texts),
        "class_counts": {str(k): int(v) for k, v in counts.items()},
        "training_data": {"source": data_source, "sha256": data_fingerprint(texts, labels)},
        "cross_validation": {"folds": folds, **cv_report},
        "training_seconds": round(seconds, 1),
        **(extra_metadata or {}),
    }
    return save_artifact(fitted, metadata, out_dir)


def estimator_params(pipeline) -> dict:
    """The fitted classifier's own settings that JSON can hold (C, naive-Bayes share …), for the metadata and the
    model card: they are chosen in code, and the card must say what this artifact was trained with."""
    params = pipeline.named_steps["classifier"].get_params(deep=False)
    return {name: value for name, value in sorted(params.items())
            if isinstance(value, (bool, int, float, str)) or value is None}


def evaluate_model(model: CauseModel, frame: pd.DataFrame, *, text_column: str = "text",
                   label_column: str = "cause") -> dict:
    from pipeline.model.classify import classify_texts

    decided = classify_texts(model, frame[text_column].tolist())
    labels = sorted(set(model.labels) | set(frame[label_column]))
    return evaluate_predictions(decided, frame[label_column].to_numpy(), labels)
