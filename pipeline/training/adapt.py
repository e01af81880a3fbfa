"""Teach the shipped model a company's industry from a few hundred of its labels, and choose which ones.

Adapting retrains the base model's recipe on the shipped training rows plus the company's labelled rows,
which carry a fixed share of the weight however few they are: the shipped rows keep what every industry
shares, the company's rows teach its words and its cause mix. (Measured against a cheaper correction
fitted on the company's rows alone over the base model's features and probabilities: with 200 random
labels the retrain scored 0.67 against 0.61 six-cause macro-F1 on telecom, 0.40 against 0.27 on banking.)
The review threshold is chosen on the company's rows by cross-validation.

Which complaints to label: the ones the current model is least sure of, spread over the kinds of text in
the pool (uncertainty-weighted k-means++ seeding over a reduced feature space), so that a few hundred
labels cover the industry instead of repeating one confusing kind of complaint.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.decomposition import TruncatedSVD
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import normalize

from pipeline.model.classify import CauseModel, ReviewPolicy, decide, load_trained_model, policy_as_dict
from pipeline.config import PROJECT_ROOT
from pipeline.model.cause_model import build_pipeline
from pipeline.training.model_card import write_adapted_model_card
from pipeline.model.registry import save_artifact
from pipeline.training.evaluation import (FINAL_FIT, TrainingDataError, choose_review_policy, data_fingerprint,
                                          evaluate_predictions, read_labelled, training_weights)
from pipeline.training.folds import Progress, no_progress, stratified_folds

# The company's rows carry this share of the training weight, however few they are: 200 rows among the
# ~22k shipped ones then weigh as much as ~9k of them would (0.3 and 0.6 were level on telecom).
DEFAULT_COMPANY_SHARE = 0.3
MIN_COMPANY_ROWS = 20
COMPANY_SOURCE = "company"


class AdaptationError(TrainingDataError):
    """The company's labelled rows cannot adapt the base model; the message says why."""


def adaptation_weights(base: pd.DataFrame, company_rows: int, company_share: float, *,
                       synthetic_share: float | None) -> np.ndarray:
    """Row weights (averaging 1): the shipped rows weighted as the base model was, together
    ``1 − company_share`` of the weight; the company's rows share the rest equally, in the company's own
    cause mix."""
    shipped = training_weights(base["cause"].to_numpy(), base["source"].to_numpy(), synthetic_share=synthetic_share)
    shipped = shipped / shipped.sum() * (1.0 - company_share)
    company = np.full(company_rows, company_share / company_rows)
    weights = np.concatenate([shipped, company])
    return weights * len(weights)


def _fit(recipe: dict, texts: list[str], labels: np.ndarray, weights: np.ndarray) -> Pipeline:
    pipeline = build_pipeline(feature_set=recipe["feature_set"], estimator=recipe["estimator"],
                              engine=recipe["segmenter_engine"])
    if "class_weight" in pipeline.named_steps["classifier"].get_params():
        pipeline.set_params(classifier__class_weight=None)  # the weights carry the cause mix
    return pipeline.fit(texts, labels, classifier__sample_weight=weights)


def _fold_probabilities(recipe, base, company, train_idx, test_idx, company_share, synthetic_share):
    part = company.iloc[train_idx]
    texts = base["text"].tolist() + part["text"].tolist()
    labels = np.concatenate([base["cause"].to_numpy(), part["cause"].to_numpy()])
    fitted = _fit(recipe, texts, labels, adaptation_weights(base, len(part), company_share,
                                                            synthetic_share=synthetic_share))
    return test_idx, list(fitted.classes_), fitted.predict_proba(company["text"].iloc[test_idx].tolist())


def adapt_model(base_metadata: dict, base: pd.DataFrame, company: pd.DataFrame, *,
                company_share: float = DEFAULT_COMPANY_SHARE, folds: int = 3, review_precision: float = 0.85,
                n_jobs: int = 2, progress: Progress = no_progress) -> tuple[Pipeline, ReviewPolicy, dict]:
    """Retrain the base model's recipe on its training rows plus the company's (``text``, ``cause``), and
    choose the review threshold on the company's rows by cross-validation: each fold's company rows are
    predicted by a model trained on the shipped rows and the company's other rows. Returns the fitted
    pipeline, the review policy and the cross-validated figures on the company's rows.

    The folds are fitted here, not by ``cross_val_predict``: every fold also trains on all the shipped
    rows (which are never predicted, so the folds do not partition the training rows), and the company
    rows' weights depend on how many of them the fold holds."""
    labels = set(base["cause"])
    unknown = sorted(set(company["cause"]) - labels)
    if unknown:
        raise AdaptationError(f"label(s) {unknown} are not causes the base model knows ({sorted(labels)}); "
                              "use them with a model trained from scratch (`complaints train` without --base)")
    if len(company) < MIN_COMPANY_ROWS:
        raise AdaptationError(f"{len(company)} labelled rows: adapting needs at least {MIN_COMPANY_ROWS}")
    recipe = {key: base_metadata[key] for key in ("feature_set", "estimator", "segmenter_engine")}
    synthetic_share = base_metadata.get("weighting", {}).get("synthetic_share", 0.5)
    y = company["cause"].to_numpy()
    classes = sorted(labels)
    oof = np.zeros((len(company), len(classes)))
    if folds >= 2:
        with warnings.catch_warnings():  # causes with fewer rows than folds are spread as far as they go
            warnings.simplefilter("ignore")
            split_list = list(stratified_folds(folds).split(np.zeros(len(y)), y))
        stage = f"cross-validation on the company's {len(company)} rows (each fold with the {len(base)} shipped rows)"
        progress(stage, 0, folds)
        finished = Parallel(n_jobs=min(n_jobs, folds), return_as="generator_unordered")(
            delayed(_fold_probabilities)(recipe, base, company, train_idx, test_idx, company_share, synthetic_share)
            for train_idx, test_idx in split_list)
        for done, (test_idx, fold_classes, probabilities) in enumerate(finished, start=1):
            for j, label in enumerate(fold_classes):
                oof[test_idx, classes.index(label)] = probabilities[:, j]
            progress(stage, done, folds)
    progress(FINAL_FIT, 0, 1)
    fitted = _fit(recipe, base["text"].tolist() + company["text"].tolist(),
                  np.concatenate([base["cause"].to_numpy(), y]),
                  adaptation_weights(base, len(company), company_share, synthetic_share=synthetic_share))
    progress(FINAL_FIT, 1, 1)
    base_policy = ReviewPolicy(**{k: v for k, v in base_metadata.get("review_policy", {}).items()
                                  if k in ReviewPolicy.__dataclass_fields__})
    report: dict = {"company_rows": len(company), "company_share": company_share,
                    "company_class_counts": {str(k): int(v) for k, v in pd.Series(y).value_counts().items()}}
    if folds < 2:
        return fitted, base_policy, report
    strict = choose_review_policy(oof, y, classes, target_precision=review_precision)
    # The company's kind of text is familiar now: its threshold applies to it, the base's stricter bar to
    # text unlike both.
    unfamiliar = base_policy.unfamiliar_min_confidence
    policy = replace(base_policy, min_confidence=strict.min_confidence,
                     unfamiliar_min_confidence=None if unfamiliar is None else max(strict.min_confidence, unfamiliar))
    report["cross_validation"] = {"folds": folds, **evaluate_predictions(decide(oof, classes, policy), y, classes)}
    return fitted, policy, report


def read_company_labels(paths, text_column: str = "text", label_column: str = "cause") -> pd.DataFrame:
    """The company's labelled rows from one or more files as ``text, cause, source, sector`` (labels in
    English or Chinese). A text labelled twice keeps its last label (a later round corrects an earlier one)."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    frames = [read_labelled(path, text_column, label_column) for path in paths]
    frame = pd.concat(frames, ignore_index=True).drop_duplicates(subset=[text_column], keep="last")
    return pd.DataFrame({"text": frame[text_column], "cause": frame[label_column],
                         "source": COMPANY_SOURCE, "sector": COMPANY_SOURCE}).reset_index(drop=True)


def shipped_training_rows(base_metadata: dict) -> pd.DataFrame:
    """The rows the base model was trained on, checked against the fingerprint in its metadata."""
    source = base_metadata.get("training_data", {}).get("source", "")
    path = PROJECT_ROOT / source
    if not source or not path.is_file():
        raise AdaptationError(f"the base model {base_metadata.get('version')} does not name training rows in this "
                              f"checkout ({source!r}); adapt the shipped default model, or train from scratch")
    rows = read_labelled(path)
    if data_fingerprint(rows["text"], rows["cause"]) != base_metadata["training_data"]["sha256"]:
        raise AdaptationError(f"{path} is not the data {base_metadata['version']} was trained on (its fingerprint "
                              "differs); restore it with `complaints data build` or `git checkout data/training`")
    return rows


def train_adapted(company_paths, base_dir: Path | str, out_dir: Path | str, *,
                  text_column: str = "text", label_column: str = "cause",
                  company_share: float = DEFAULT_COMPANY_SHARE, folds: int = 3, review_precision: float = 0.85,
                  n_jobs: int = 2, progress: Progress = no_progress) -> dict:
    """`complaints train --base`: adapt the base model to the company's labelled file and save the artifact
    (with its model card). Returns the artifact's metadata."""
    base = load_trained_model(base_dir)
    company_paths = [company_paths] if isinstance(company_paths, (str, Path)) else list(company_paths)
    company = read_company_labels(company_paths, text_column, label_column)
    sources = " + ".join(str(path) for path in company_paths)
    progress(f"reading the {base.version} training rows", 0, 1)
    shipped = shipped_training_rows(base.metadata)
    progress(f"reading the {base.version} training rows", 1, 1)
    started = time.perf_counter()
    pipeline, policy, report = adapt_model(base.metadata, shipped, company, company_share=company_share,
                                           folds=folds, review_precision=review_precision, n_jobs=n_jobs,
                                           progress=progress)
    texts = shipped["text"].tolist() + company["text"].tolist()
    labels = np.concatenate([shipped["cause"].to_numpy(), company["cause"].to_numpy()])
    metadata = {
        **{key: base.metadata[key] for key in ("feature_set", "estimator", "segmenter_engine", "weighting")},
        "name": Path(out_dir).name,
        "labels": [str(c) for c in pipeline.classes_],
        "review_policy": {**policy_as_dict(policy), "target_precision": review_precision},
        "training_rows": len(texts),
        "class_counts": {str(k): int(v) for k, v in pd.Series(labels).value_counts().items()},
        "training_data": {"source": f"{base.metadata['training_data']['source']} + {sources}",
                          "sha256": data_fingerprint(texts, labels)},
        "adaptation": {"base_version": base.version, "base_sha256": base.metadata["sha256"],
                       "company_data": {"source": sources,
                                        "sha256": data_fingerprint(company["text"], company["cause"])},
                       **report},
        "training_seconds": round(time.perf_counter() - started, 1),
    }
    metadata = save_artifact(pipeline, metadata, out_dir)
    progress("scoring the held-out real reviews for the model card", 0, 1)
    write_adapted_model_card(Path(out_dir), Path(base_dir))
    progress("scoring the held-out real reviews for the model card", 1, 1)
    return metadata


def model_features(pipeline: Pipeline, texts):
    """The trained pipeline's feature matrix for ``texts`` (normalised, segmented, vectorised)."""
    return pipeline.named_steps["features"].transform(pipeline.named_steps["normalise"].transform(list(texts)))


def uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """1 − (top probability − second): 1 when the model cannot choose, 0 when it is sure."""
    ordered = np.sort(probabilities, axis=1)
    return 1.0 - (ordered[:, -1] - ordered[:, -2])


def text_points(features, *, dimensions: int = 64, seed: int = 0) -> np.ndarray:
    """Texts as unit vectors in a reduced feature space, where distance says how different two texts are."""
    components = min(dimensions, features.shape[1] - 1, features.shape[0] - 1)
    if components < 2:
        return np.zeros((features.shape[0], 1))
    return normalize(TruncatedSVD(components, random_state=seed).fit_transform(features))


def uncertain_and_diverse(points: np.ndarray, unsure: np.ndarray, limit: int, *, already=(),
                          seed: int = 0) -> np.ndarray:
    """k-means++ seeding weighted by uncertainty: each next text is drawn with probability proportional to
    its uncertainty times its squared distance to the texts chosen (or labelled) so far — what the model is
    unsure of, spread over the kinds of text in the pool. Returns the new indices in choice order."""
    rng = np.random.default_rng(seed)
    weight = np.maximum(unsure, 1e-3)
    taken = np.zeros(len(points), dtype=bool)
    taken[list(already)] = True
    limit = min(limit, int((~taken).sum()))
    if taken.any():
        distance = np.min([((points - points[i]) ** 2).sum(axis=1) for i in np.flatnonzero(taken)], axis=0)
    else:
        distance = np.ones(len(points))
    chosen: list[int] = []
    while len(chosen) < limit:
        score = np.where(taken, 0.0, weight * distance)
        if score.sum() <= 0:  # the rest are copies of chosen texts: take the most uncertain of them
            pick = int(np.flatnonzero(~taken)[np.argmax(weight[~taken])])
        elif not chosen and not taken.any():
            pick = int(np.argmax(score))
        else:
            pick = int(rng.choice(len(points), p=score / score.sum()))
        chosen.append(pick)
        taken[pick] = True
        distance = np.minimum(distance, ((points - points[pick]) ** 2).sum(axis=1))
    return np.asarray(chosen, dtype=int)


def select_for_labelling(model: CauseModel, texts, limit: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``limit`` texts worth labelling first, in that order, and every text's probabilities
    (columns: ``model.labels``), so callers need not classify the texts again."""
    if model.kind == "lexicon":
        raise ValueError("choosing texts to label needs a trained model, not the lexicon")
    X = model_features(model.estimator, texts)
    probabilities = model.estimator.named_steps["classifier"].predict_proba(X)
    order = uncertain_and_diverse(text_points(X, seed=seed), uncertainty(probabilities), limit, seed=seed)
    return order, probabilities
