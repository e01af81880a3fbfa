"""Cause shares corrected for the classifier's errors, from a random audit sample people label.

The classifier's own shares are biased wherever its mistakes do not cancel out (on unseen industries it
under-counts ``management`` by half). The review queue cannot measure that: it holds the unsure and the
escalated, not a random slice. So ``complaints review export --audit N`` draws N complaints uniformly at
random from the classified ones (``draw_audit``; blind: the file does not show the model's answer, so the
labellers are not anchored by it), people label them like any review file, and ``review import`` stores
the labels.

Estimator (post-stratification by the predicted cause, i.e. two-phase sampling): with W_j the share of the
window's complaints the model put under j, and q_ij the share of the audited complaints predicted j whose
label is i, the adjusted share of i is Σ_j W_j · q_ij. It is consistent when the audit is a random sample
of complaints like the window's and the model has not changed since — a rise in a cause then shows up in
W — and, unlike inverting the confusion matrix (adjusted classify-and-count), it never leaves [0, 1] and
stays stable on a few hundred labels. A predicted cause with no audited complaint keeps its prediction
(``unaudited_share`` says how much of the window that is). The 95% interval is a bootstrap over the audit
sample (and over the window's predictions, which matters only for small windows). Shares are reported
among the service failures (``none`` — not a complaint — left out), like the report's cause shares.

An audit calibrates the model version that predicted its complaints when it was drawn; after a new model
the report says so, and a new audit is due.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa

from pipeline.storage import store
from pipeline.labels import NONE_LABEL

EXPORT_COLUMNS = ["complaint_id", "text", "audit_id", "cause", "secondary_causes", "reviewer", "note"]
BOOTSTRAP_REPLICATES = 1000
MIN_AUDIT_LABELS = 30  # fewer: no adjusted shares, only the raw ones and a request to label more


class AuditError(ValueError):
    """An audit cannot be drawn; the message says what to change."""


def _latest_predictions(since: datetime | None = None):
    """complaint_id, cause, model_version of each complaint's latest prediction (subquery)."""
    predictions = store.predictions
    newest = (sa.select(predictions.c.complaint_id, sa.func.max(predictions.c.predicted_at).label("predicted_at"))
              .group_by(predictions.c.complaint_id).subquery())
    statement = (sa.select(predictions.c.complaint_id, predictions.c.cause, predictions.c.model_version)
                 .join(newest, sa.and_(newest.c.complaint_id == predictions.c.complaint_id,
                                       newest.c.predicted_at == predictions.c.predicted_at)))
    if since is not None:
        statement = statement.join(store.complaints, store.complaints.c.complaint_id == predictions.c.complaint_id) \
            .where(store.complaint_time() >= since)
    return statement


def draw_audit(engine: sa.Engine, size: int, *, since: datetime | None = None, seed: int | None = None,
               now: datetime | None = None) -> tuple[str, pd.DataFrame]:
    """Draw ``size`` complaints uniformly at random (without replacement) from the classified complaints
    since ``since`` that no earlier audit drew; record them; return the audit id and the blind export."""
    if size < 1:
        raise AuditError("--audit N: draw at least 1 complaint (a few hundred give useful intervals)")
    seed = secrets.randbits(32) if seed is None else seed
    now = now or store.utcnow()
    with engine.connect() as conn:
        population = pd.DataFrame(conn.execute(_latest_predictions(since).order_by(
            store.predictions.c.complaint_id)).mappings().all(), columns=["complaint_id", "cause", "model_version"])
        population = population.drop_duplicates("complaint_id", keep="last")  # two versions predicted at once
        audited = set(conn.execute(sa.select(store.audit_items.c.complaint_id)).scalars())
    population = population[~population["complaint_id"].isin(audited)].reset_index(drop=True)
    if population.empty:
        raise AuditError("no classified complaint is left to audit" + (" since --since" if since else "")
                         + ": run `complaints run SOURCE` first, or widen --since")
    take = min(size, len(population))
    chosen = population.iloc[np.sort(np.random.default_rng(seed).choice(len(population), take, replace=False))]
    audit_id = f"audit-{now:%Y%m%dT%H%M%S}-{seed:08x}"
    with engine.begin() as conn:
        conn.execute(store.audit_items.insert(), [
            {"audit_id": audit_id, "complaint_id": row.complaint_id, "model_version": row.model_version,
             "predicted_cause": row.cause, "drawn_at": now, "seed": seed} for row in chosen.itertuples()])
    texts = store.read_masked_texts(engine, chosen["complaint_id"].tolist())
    export = pd.DataFrame({"complaint_id": chosen["complaint_id"].to_numpy(),
                           "text": [texts[cid] for cid in chosen["complaint_id"]], "audit_id": audit_id})
    for column in ("cause", "secondary_causes", "reviewer", "note"):
        export[column] = ""
    return audit_id, export[EXPORT_COLUMNS]


def audit_labels(engine: sa.Engine) -> pd.DataFrame:
    """Every audited complaint with a label: the prediction recorded when it was drawn and the complaint's
    latest review label (from ``review import`` or a ticket correction), one row per complaint."""
    items, reviews = store.audit_items, store.reviews
    newest = sa.select(sa.func.max(reviews.c.review_id)).group_by(reviews.c.complaint_id).scalar_subquery()
    statement = (sa.select(items.c.complaint_id, items.c.audit_id, items.c.model_version, items.c.predicted_cause,
                           reviews.c.cause.label("label"))
                 .join(reviews, sa.and_(reviews.c.complaint_id == items.c.complaint_id, reviews.c.review_id.in_(newest)))
                 .order_by(items.c.drawn_at, items.c.complaint_id))
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(statement).mappings().all(),
                             columns=["complaint_id", "audit_id", "model_version", "predicted_cause", "label"])
    return frame.drop_duplicates("complaint_id", keep="first").reset_index(drop=True)


def audit_counts(engine: sa.Engine) -> tuple[int, int]:
    """(complaints drawn for audits, of which labelled)."""
    with engine.connect() as conn:
        drawn = conn.execute(sa.select(sa.func.count(sa.distinct(store.audit_items.c.complaint_id)))).scalar_one()
    return int(drawn), len(audit_labels(engine))


@dataclass(frozen=True)
class AdjustedShares:
    table: pd.DataFrame  # cause, raw_share, adjusted_share, ci_low, ci_high (among service failures)
    audit_labels: int  # audited complaints with a label
    audit_drawn: int
    unaudited_share: float  # of the window, predicted as a cause no audited complaint was predicted as
    model_versions: tuple[str, ...]  # the versions the audit calibrated
    window_model_share: float  # share of the window's predictions made by those versions


def post_stratified_shares(predicted_shares: np.ndarray, predicted: np.ndarray, labels: np.ndarray,
                           n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """Σ_j W_j · q_ij for label indices; also which predicted labels had no audited complaint."""
    counts = np.zeros((n_labels, n_labels))
    np.add.at(counts, (predicted, labels), 1)
    per_prediction = counts.sum(axis=1, keepdims=True)
    unaudited = per_prediction[:, 0] == 0
    q = np.where(per_prediction > 0, counts / np.where(per_prediction > 0, per_prediction, 1), np.eye(n_labels))
    return predicted_shares @ q, unaudited


def _among_failures(shares: np.ndarray, none_index: int | None) -> np.ndarray:
    """Shares over the labels without ``none``, renormalised (the last axis holds the labels)."""
    if none_index is None:
        return shares
    kept = np.delete(shares, none_index, axis=-1)
    total = kept.sum(axis=-1, keepdims=True)
    return kept / np.where(total > 0, total, np.nan)


def adjusted_shares(window_predictions: pd.Series, audit: pd.DataFrame, *, drawn: int | None = None,
                    window_versions: pd.Series | None = None, replicates: int = BOOTSTRAP_REPLICATES,
                    seed: int = 0) -> AdjustedShares | None:
    """Raw and adjusted shares of each cause among the window's service failures, with a 95% bootstrap
    interval for the adjusted one. ``window_predictions``: the model's cause for every complaint of the
    window; ``audit``: ``predicted_cause`` and ``label`` of audited complaints. None without enough labels."""
    window = pd.DataFrame({"cause": window_predictions.to_numpy(),
                           "model_version": None if window_versions is None else window_versions.to_numpy()})
    counted = window.groupby(["cause", "model_version"], dropna=False).size().rename("n").reset_index()
    return adjusted_shares_of_counts(counted, audit, drawn=drawn, replicates=replicates, seed=seed,
                                     versions_known=window_versions is not None)


def adjusted_shares_of_counts(window: pd.DataFrame, audit: pd.DataFrame, *, drawn: int | None = None,
                              replicates: int = BOOTSTRAP_REPLICATES, seed: int = 0,
                              versions_known: bool = True) -> AdjustedShares | None:
    """``adjusted_shares`` from the window's complaints counted (``n``) per model ``cause`` and
    ``model_version``, as the trend report reads them."""
    window = window[window["n"] > 0]
    if len(audit) < MIN_AUDIT_LABELS or window.empty:
        return None
    causes = window["cause"].astype(object)
    labels = sorted(set(causes) | set(audit["predicted_cause"]) | set(audit["label"]))
    index = {label: i for i, label in enumerate(labels)}
    k, none_index = len(labels), index.get(NONE_LABEL)
    window_counts = np.bincount(causes.map(index).to_numpy(), weights=window["n"].to_numpy(dtype=float),
                                minlength=k)
    n = window_counts.sum()
    predicted = audit["predicted_cause"].map(index).to_numpy()
    truth = audit["label"].map(index).to_numpy()
    weights = window_counts / n
    point, unaudited = post_stratified_shares(weights, predicted, truth, k)

    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(audit), (replicates, len(audit)))
    flat = (np.arange(replicates)[:, None] * k * k + predicted[picks] * k + truth[picks]).ravel()
    counts = np.bincount(flat, minlength=replicates * k * k).reshape(replicates, k, k).astype(float)
    per_prediction = counts.sum(axis=2, keepdims=True)
    q = np.where(per_prediction > 0, counts / np.where(per_prediction > 0, per_prediction, 1), np.eye(k))
    resampled_weights = rng.multinomial(int(n), weights, size=replicates) / n
    replicated = np.einsum("bj,bji->bi", resampled_weights, q)

    causes = [label for label in labels if label != NONE_LABEL]
    low, high = np.nanpercentile(_among_failures(replicated, none_index), [2.5, 97.5], axis=0)
    table = pd.DataFrame({"cause": causes, "raw_share": _among_failures(weights, none_index),
                          "adjusted_share": _among_failures(point, none_index), "ci_low": low, "ci_high": high})
    versions = tuple(sorted(set(audit["model_version"]))) if "model_version" in audit else ()
    window_model_share = (float(window.loc[window["model_version"].isin(versions), "n"].sum() / n)
                          if versions_known and versions else 1.0)
    return AdjustedShares(table=table, audit_labels=len(audit), audit_drawn=drawn or len(audit),
                          unaudited_share=float(weights[unaudited].sum()), model_versions=versions,
                          window_model_share=window_model_share)
