"""People's corrections: items for review out, corrected labels in, and labels back into training.

Corrected labels live in the ``reviews`` table with their reviewer and time, apart from the model's
predictions: a prediction is never overwritten, and every label says who gave it. A complaint's latest
review is its label; ``labelled_rows`` turns those into ``id,text,cause`` rows that ``complaints train``
reads (texts under the evaluation reserve never leave for training).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from pipeline.storage import store
from pipeline.training.reserved import is_reserved
from pipeline.labels import CAUSES, NONE_LABEL, canonical_label
from pipeline.delivery.spreadsheet import read_table

# Exported for people: what the model said, then the columns they fill in.
EXPORT_COLUMNS = ["complaint_id", "text", "predicted_cause", "confidence", "predicted_secondary_causes",
                  "needs_review", "explanation", "escalation_reasons", "queue", "priority", "due_at",
                  "cause", "secondary_causes", "reviewer", "note"]
LABELLED_COLUMNS = ["id", "text", "cause", "secondary_causes"]
MAX_LISTED_PROBLEMS = 10
_LABEL_SEPARATORS = re.compile(r"[|,，、;；\s]+")


class ReviewFileError(ValueError):
    """A review file cannot be imported; the message names the file, the rows and the columns."""


@dataclass(frozen=True)
class ImportResult:
    imported: int
    unchanged: int  # the same label by the same reviewer is already the complaint's latest review
    not_labelled: int  # rows whose cause was left empty


def review_candidates(engine: sa.Engine, *, include_reviewed: bool = False) -> pd.DataFrame:
    """Tickets flagged for review or escalated, most urgent first; reviewed ones only if asked."""
    tickets, predictions, complaints, reviews = store.tickets, store.predictions, store.complaints, store.reviews
    statement = (
        sa.select(tickets.c.complaint_id, complaints.c.text_masked.label("text"),
                  predictions.c.cause.label("predicted_cause"), predictions.c.confidence,
                  predictions.c.secondary_causes.label("predicted_secondary_causes"), predictions.c.needs_review,
                  predictions.c.explanation, tickets.c.escalation_reasons, tickets.c.queue, tickets.c.priority,
                  tickets.c.due_at)
        .join(complaints, complaints.c.complaint_id == tickets.c.complaint_id)
        .join(predictions, sa.and_(predictions.c.complaint_id == tickets.c.complaint_id,
                                   predictions.c.model_version == tickets.c.model_version))
        .where(sa.or_(predictions.c.needs_review.is_(True), tickets.c.escalation_reasons != "[]"))
        .order_by(tickets.c.priority, tickets.c.due_at, tickets.c.complaint_id))
    if not include_reviewed:
        statement = statement.where(~sa.exists().where(reviews.c.complaint_id == tickets.c.complaint_id))
    with engine.connect() as conn:
        frame = pd.read_sql(statement, conn)
    frame["escalation_reasons"] = ["; ".join(json.loads(r or "[]")) for r in frame["escalation_reasons"]]
    frame["due_at"] = pd.to_datetime(frame["due_at"]).dt.strftime("%Y-%m-%d %H:%M")
    for column in ("cause", "secondary_causes", "reviewer", "note"):
        frame[column] = ""
    return frame[EXPORT_COLUMNS]


def teaching_order(frame: pd.DataFrame, model, *, chosen: int = 500, seed: int = 0) -> pd.DataFrame:
    """Escalated items first, most urgent first; then the ``chosen`` items whose labels would teach ``model``
    most (`review select`'s strategy: uncertain and spread over kinds of text), then the rest, least sure
    first. With the lexicon (no trained model) the order is left as it is."""
    from pipeline.training.adapt import select_for_labelling, uncertainty

    escalated = frame["escalation_reasons"].astype(str) != ""
    rest = frame[~escalated].reset_index(drop=True)
    if model.kind == "lexicon" or len(rest) < 2:
        return frame
    order, probabilities = select_for_labelling(model, rest["text"].tolist(), min(chosen, len(rest)), seed=seed)
    unsure = uncertainty(probabilities)
    remaining = np.setdiff1d(np.arange(len(rest)), order)
    remaining = remaining[np.argsort(-unsure[remaining], kind="stable")]
    return pd.concat([frame[escalated], rest.iloc[np.concatenate([order, remaining])]], ignore_index=True)


def read_review_file(path: Path | str) -> pd.DataFrame:
    """A filled-in review file (CSV or XLSX) as strings, empty cells as ''."""
    path = Path(path)
    if not path.is_file():
        raise ReviewFileError(f"{path}: no such file")
    if path.suffix.lower() not in (".csv", ".xlsx", ".xlsm"):
        raise ReviewFileError(f"{path}: a review file must be .csv or .xlsx")
    frame = read_table(path)
    missing = [c for c in ("complaint_id", "cause") if c not in frame.columns]
    if missing:
        raise ReviewFileError(f"{path}: missing column(s) {missing}; start from `complaints review export`")
    return frame


def _labels(cell: str) -> list[str]:
    return [label for label in _LABEL_SEPARATORS.split(cell.strip()) if label]


def known_labels(engine: sa.Engine) -> set[str]:
    """The six causes, ``none`` and every label a model has predicted here (custom models' own)."""
    with engine.connect() as conn:
        predicted = conn.execute(sa.select(store.predictions.c.cause).distinct()).scalars()
        return set(CAUSES) | {NONE_LABEL} | set(predicted)


def _latest_reviews(conn, complaint_ids: list[str]) -> dict[str, dict]:
    reviews = store.reviews
    latest: dict[str, dict] = {}
    for start in range(0, len(complaint_ids), 500):
        rows = conn.execute(sa.select(reviews).where(reviews.c.complaint_id.in_(complaint_ids[start:start + 500]))
                            .order_by(reviews.c.review_id)).mappings()
        latest.update({row["complaint_id"]: dict(row) for row in rows})
    return latest


def import_reviews(engine: sa.Engine, path: Path | str, *, reviewer: str | None = None,
                   now: datetime | None = None) -> ImportResult:
    """Store the labels people filled in. All or nothing: any bad row stops the import, listing every
    problem with its row and column (row numbers count data rows, the header excluded)."""
    path = Path(path)
    frame = read_review_file(path).replace("\x00", "", regex=True)  # PostgreSQL refuses NUL in text
    labels = known_labels(engine)
    labelled = frame[frame["cause"].str.strip() != ""]
    ids = [cid.strip() for cid in labelled["complaint_id"]]
    stored = set(store.stored_hashes(engine, ids))
    problems, records = [], []
    for position, row in labelled.iterrows():
        where = f"row {position + 1}"
        complaint_id, cause = row["complaint_id"].strip(), canonical_label(row["cause"])
        secondary = [canonical_label(label) for label in _labels(row.get("secondary_causes", ""))]
        who = row.get("reviewer", "").strip() or (reviewer or "").strip()
        if complaint_id not in stored:
            problems.append(f"{where}, column 'complaint_id': {complaint_id!r} is not a stored complaint")
        if cause not in labels:
            problems.append(f"{where}, column 'cause': {cause!r} is not a known label ({', '.join(sorted(labels))})")
        unknown = [label for label in secondary if label not in labels]
        if unknown:
            problems.append(f"{where}, column 'secondary_causes': unknown label(s) {unknown}")
        if not who:
            problems.append(f"{where}, column 'reviewer': empty; fill it in or pass --reviewer")
        records.append({"complaint_id": complaint_id, "cause": cause, "secondary_causes": "|".join(secondary),
                        "reviewer": who, "note": row.get("note", "").strip() or None})
    if problems:
        shown = "; ".join(problems[:MAX_LISTED_PROBLEMS])
        more = f" (and {len(problems) - MAX_LISTED_PROBLEMS} more)" if len(problems) > MAX_LISTED_PROBLEMS else ""
        raise ReviewFileError(f"{path}: nothing imported, {len(problems)} problem(s): {shown}{more}")
    now = now or store.utcnow()
    compared = ("cause", "secondary_causes", "reviewer", "note")
    with engine.begin() as conn:
        latest = _latest_reviews(conn, ids)
        fresh = [record for record in records
                 if {k: latest.get(record["complaint_id"], {}).get(k) for k in compared}
                 != {k: record[k] for k in compared}]
        if fresh:
            conn.execute(store.reviews.insert(), [{**record, "reviewed_at": now} for record in fresh])
    return ImportResult(imported=len(fresh), unchanged=len(records) - len(fresh),
                        not_labelled=len(frame) - len(labelled))


def labelled_rows(engine: sa.Engine) -> tuple[pd.DataFrame, int]:
    """Each reviewed complaint's latest (highest review_id) label as ``id,text,cause,secondary_causes`` (the masked text), and
    how many were left out because their text is under the evaluation reserve."""
    reviews, complaints = store.reviews, store.complaints
    newest = (sa.select(reviews.c.complaint_id, sa.func.max(reviews.c.review_id).label("review_id"))
              .group_by(reviews.c.complaint_id).subquery())
    statement = (sa.select(complaints.c.complaint_id.label("id"), complaints.c.text_masked.label("text"),
                           complaints.c.text_raw, reviews.c.cause, reviews.c.secondary_causes)
                 .join(newest, newest.c.complaint_id == complaints.c.complaint_id)
                 .join(reviews, reviews.c.review_id == newest.c.review_id)
                 .order_by(complaints.c.complaint_id))
    with engine.connect() as conn:
        frame = pd.read_sql(statement, conn)
    reserved = [is_reserved(raw) or is_reserved(masked) for raw, masked in zip(frame["text_raw"], frame["text"])]
    kept = frame[~pd.Series(reserved, dtype=bool, index=frame.index)]
    return kept[LABELLED_COLUMNS].fillna("").reset_index(drop=True), int(sum(reserved))


SELECT_COLUMNS = ["id", "text", "predicted_cause", "confidence", "uncertainty", "cause", "secondary_causes", "note"]


def select_file(settings, source: Path | str, limit: int, *, model: Path | None = None, exclude=(),
                seed: int = 0) -> tuple[pd.DataFrame, int]:
    """`complaints review select`: the ``limit`` complaints of ``source`` worth labelling first (texts masked),
    with empty label columns, and how many valid complaints the file held. Ids in the ``exclude`` files
    (labelled already) are not chosen again."""
    from pipeline.training.adapt import select_for_labelling, uncertainty
    from pipeline.model.classify import load_model
    from pipeline.ingest.sources import iter_raw_chunks, map_columns
    from pipeline.text.normalise import mask_pii
    from pipeline.ingest.validate import validate_rows

    cause_model = load_model(settings, model)
    if cause_model.kind == "lexicon":
        raise ReviewFileError("choosing complaints to label needs a trained model; drop --lexicon / classifier = lexicon")
    seen: set[str] = set()
    parts = [validate_rows(map_columns(chunk, settings.columns), seen, max_text_chars=settings.max_text_chars,
                           text_column=settings.columns.text, date_column=settings.columns.created_at)[0]
             for chunk in iter_raw_chunks(str(source), chunk_size=settings.batch_size, encoding=settings.encoding,
                                          sheet=settings.sheet)]
    pool = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["complaint_id", "text"])
    done = {cid for path in exclude or () for cid in read_review_file_any(path)["id"]}
    pool = pool[~pool["complaint_id"].isin(done)].reset_index(drop=True)
    if pool.empty:
        raise ReviewFileError(f"{source}: no complaints left to choose from (columns id,text; see --exclude)")
    texts = pool["text"].str.slice(0, settings.max_text_chars).tolist()
    order, probabilities = select_for_labelling(cause_model, texts, limit, seed=seed)
    chosen_probabilities = probabilities[order]
    chosen = pd.DataFrame({
        "id": pool["complaint_id"].to_numpy()[order],
        "text": [mask_pii(texts[i]) for i in order],
        "predicted_cause": np.asarray(cause_model.labels)[chosen_probabilities.argmax(axis=1)],
        "confidence": chosen_probabilities.max(axis=1).round(4),
        "uncertainty": uncertainty(chosen_probabilities).round(4),
    })
    for column in ("cause", "secondary_causes", "note"):
        chosen[column] = ""
    return chosen[SELECT_COLUMNS], len(pool)


def read_review_file_any(path: Path | str) -> pd.DataFrame:
    """Any labelled or review file's ids (column ``id`` or ``complaint_id``) as strings."""
    path = Path(path)
    if not path.is_file():
        raise ReviewFileError(f"{path}: no such file")
    frame = read_table(path)
    column = "id" if "id" in frame.columns else "complaint_id" if "complaint_id" in frame.columns else None
    if column is None:
        raise ReviewFileError(f"{path}: no 'id' or 'complaint_id' column to exclude")
    return pd.DataFrame({"id": frame[column].str.strip()})
