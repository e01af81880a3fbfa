"""The database: runs, complaints, predictions, tickets, the delivery outbox, quarantine, reviews.

SQLAlchemy Core, so the same code runs on the default SQLite file and on PostgreSQL. Each batch is
written in one transaction: a run killed half-way leaves whole batches behind, and the next run skips
exactly those complaints (they are "already seen").
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from pipeline.clock import local_wall_times, to_local, to_utc
from pipeline.config import hide_password
from pipeline.text.normalise import mask_pii
from pipeline.ingest.quarantine import QuarantinedRow

metadata = sa.MetaData()

runs = sa.Table(
    "runs", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("status", sa.String(16), nullable=False),  # running | completed | failed
    sa.Column("model_version", sa.String(128)),
    sa.Column("since", sa.DateTime),
    sa.Column("rows_read", sa.Integer, default=0),
    sa.Column("classified", sa.Integer, default=0),
    sa.Column("quarantined", sa.Integer, default=0),
    sa.Column("skipped_seen", sa.Integer, default=0),
    sa.Column("skipped_before_since", sa.Integer, default=0),
    sa.Column("error", sa.Text),
    sa.Column("prefect_flow_run_id", sa.String(64)),  # so a run found dead can be marked Crashed in Prefect
)

run_lock = sa.Table(  # one row while a run (or a redelivery) holds the database: pipeline/storage/runlock.py
    "run_lock", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("acquired_at", sa.DateTime, nullable=False),
    sa.Column("renewed_at", sa.DateTime, nullable=False),
    sa.Column("generation", sa.Integer),  # fencing token: one more at each taking of the lease
)

complaints = sa.Table(
    "complaints", metadata,
    sa.Column("complaint_id", sa.String(128), primary_key=True),
    sa.Column("text_raw", sa.Text, nullable=False),  # unmasked only with Settings.keep_raw_rows, else masked too
    sa.Column("text_masked", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime, index=True),
    sa.Column("channel", sa.String(128), index=True),
    sa.Column("customer_key", sa.String(128), index=True),  # customer reference (privacy.py), for repeat complaints
    sa.Column("metadata_json", sa.Text),
    sa.Column("source", sa.Text),
    sa.Column("source_row", sa.Integer),
    sa.Column("text_truncated", sa.Boolean, default=False),
    sa.Column("run_id", sa.String(64), index=True),
    sa.Column("ingested_at", sa.DateTime, nullable=False),
)

predictions = sa.Table(
    "predictions", metadata,
    sa.Column("complaint_id", sa.String(128), sa.ForeignKey("complaints.complaint_id"), primary_key=True),
    sa.Column("model_version", sa.String(128), primary_key=True),
    sa.Column("cause", sa.String(64), nullable=False, index=True),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("needs_review", sa.Boolean, nullable=False),
    sa.Column("secondary_causes", sa.Text),
    sa.Column("probabilities_json", sa.Text, nullable=False),
    sa.Column("explanation", sa.Text),
    sa.Column("unfamiliar", sa.Boolean),  # unlike the training data: held to a stricter bar for auto-routing
    sa.Column("coverage", sa.Float),  # share of the text's wording the model knows
    sa.Column("run_id", sa.String(64), index=True),
    sa.Column("predicted_at", sa.DateTime, nullable=False),
)

tickets = sa.Table(
    "tickets", metadata,
    sa.Column("ticket_id", sa.String(64), primary_key=True),
    sa.Column("complaint_id", sa.String(128), sa.ForeignKey("complaints.complaint_id"), index=True),
    sa.Column("cause", sa.String(64), nullable=False),
    sa.Column("remedy_code", sa.String(32)),
    sa.Column("queue", sa.String(128), nullable=False, index=True),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("due_at", sa.DateTime),
    sa.Column("escalation_reasons", sa.Text),
    sa.Column("model_version", sa.String(128)),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("payload_json", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("created_at", sa.DateTime, nullable=False),
    # lifecycle (pipeline/tickets/lifecycle.py): the current state; ticket_events holds every change
    sa.Column("received_at", sa.DateTime),  # the SLA clocks start here: the complaint's time, else created_at
    sa.Column("acknowledge_due_at", sa.DateTime),
    sa.Column("acknowledged_at", sa.DateTime),
    sa.Column("resolved_at", sa.DateTime),  # the current resolution; cleared when the ticket is reopened
    sa.Column("closed_at", sa.DateTime),
    sa.Column("resolution", sa.String(32)),
    sa.Column("compensation", sa.Float),  # total given to the customer, as the team last stated it
    sa.Column("corrected_cause", sa.String(64)),
    sa.Column("reopened_count", sa.Integer),
    sa.Column("updated_at", sa.DateTime),
    sa.Column("updated_by", sa.String(128)),
)

outbox = sa.Table(
    "outbox", metadata,
    sa.Column("outbox_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.String(64), sa.ForeignKey("tickets.ticket_id"), index=True),
    sa.Column("target", sa.String(32), nullable=False),  # file | webhook
    sa.Column("queue", sa.String(128), nullable=False),
    sa.Column("idempotency_key", sa.String(128), nullable=False, unique=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),  # pending | delivered | failed
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("delivered_at", sa.DateTime),
)

quarantine = sa.Table(
    "quarantine", metadata,
    sa.Column("quarantine_key", sa.String(64), primary_key=True),  # same bad row, same key: reruns add nothing
    sa.Column("run_id", sa.String(64), index=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("source_row", sa.Integer, nullable=False),
    sa.Column("column_name", sa.String(128)),
    sa.Column("reason", sa.String(64), nullable=False, index=True),
    sa.Column("detail", sa.Text),
    sa.Column("raw_json", sa.Text),
    sa.Column("quarantined_at", sa.DateTime, nullable=False),
)

reviews = sa.Table(
    "reviews", metadata,
    sa.Column("review_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("complaint_id", sa.String(128), sa.ForeignKey("complaints.complaint_id"), index=True),
    sa.Column("cause", sa.String(64), nullable=False),
    sa.Column("secondary_causes", sa.Text),
    sa.Column("reviewer", sa.String(128), nullable=False),
    sa.Column("reviewed_at", sa.DateTime, nullable=False),
    sa.Column("note", sa.Text),
)

# ---------------------------------------------------------------- closing the recovery loop (issue 14)

ticket_events = sa.Table(  # every lifecycle change of a ticket, with who and when: pipeline/tickets/lifecycle.py
    "ticket_events", metadata,
    sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.String(64), sa.ForeignKey("tickets.ticket_id"), nullable=False, index=True),
    sa.Column("from_status", sa.String(32), nullable=False),
    sa.Column("to_status", sa.String(32), nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),  # when it happened (UTC), as the team said
    sa.Column("by", sa.String(128), nullable=False),
    sa.Column("resolution", sa.String(32)),
    sa.Column("compensation", sa.Float),
    sa.Column("corrected_cause", sa.String(64)),
    sa.Column("note", sa.Text),  # PII-masked
    sa.Column("source", sa.String(255), nullable=False),  # cli | http | FILE row N
    sa.Column("recorded_at", sa.DateTime, nullable=False),
)

sla_breaches = sa.Table(  # a ticket found past its resolve deadline unresolved, once: pipeline/tickets/sla.py
    "sla_breaches", metadata,
    sa.Column("ticket_id", sa.String(64), sa.ForeignKey("tickets.ticket_id"), primary_key=True),
    sa.Column("queue", sa.String(128), nullable=False),
    sa.Column("cause", sa.String(64), nullable=False),
    sa.Column("due_at", sa.DateTime, nullable=False),
    sa.Column("detected_at", sa.DateTime, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),  # the run that found it: "since the last run"
    sa.Column("priority_before", sa.Integer, nullable=False),
    sa.Column("priority_after", sa.Integer, nullable=False),
    sa.Column("hours_late", sa.Float, nullable=False),
    sa.Column("escalated", sa.Boolean, nullable=False),  # false: already too late when first seen (a backfill)
)

audit_items = sa.Table(  # complaints drawn at random for people to label: pipeline/reporting/audit.py
    "audit_items", metadata,
    sa.Column("audit_id", sa.String(64), primary_key=True),
    sa.Column("complaint_id", sa.String(128), sa.ForeignKey("complaints.complaint_id"), primary_key=True,
              index=True),
    sa.Column("model_version", sa.String(128), nullable=False),
    sa.Column("predicted_cause", sa.String(64), nullable=False),  # the prediction the audit calibrates
    sa.Column("drawn_at", sa.DateTime, nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def connect(database_url: str) -> sa.Engine:
    """Engine with every table created (idempotent). SQLite files get their folder created."""
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    # hide_parameters: an error must not carry the batch's texts (bound parameters) into logs and runs.error
    engine = sa.create_engine(database_url, future=True, hide_parameters=True)
    if engine.dialect.name == "sqlite":
        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()
    metadata.create_all(engine)
    _add_missing_columns(engine)
    return engine


def _add_missing_columns(engine: sa.Engine) -> None:
    """A database created by an earlier version gets the nullable columns added since (and their indexes)."""
    inspector = sa.inspect(engine)
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            present = {column["name"] for column in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in present:
                    continue
                column_type = column.type.compile(engine.dialect)
                conn.execute(sa.text(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {column_type}'))
                for index in table.indexes:
                    if column.name in index.columns:
                        index.create(conn, checkfirst=True)


def customer_history(engine: sa.Engine, customer_keys: list[str], since: datetime) -> dict[str, list[tuple[datetime, str]]]:
    """customer_key → [(complaint time, complaint_id)] of stored complaints at or after ``since``
    (complaint time = created_at, or ingested_at when the source gave no date)."""
    at = sa.func.coalesce(complaints.c.created_at, complaints.c.ingested_at)
    history: dict[str, list[tuple[datetime, str]]] = {}
    with engine.connect() as conn:
        for start in range(0, len(customer_keys), 500):
            part = customer_keys[start:start + 500]
            rows = conn.execute(sa.select(complaints.c.customer_key, at.label("at"), complaints.c.complaint_id)
                                .where(complaints.c.customer_key.in_(part), at >= since))
            for row in rows:
                history.setdefault(row.customer_key, []).append((row.at, row.complaint_id))
    return history


def redact(text: str) -> str:
    """Text that may quote complaints or URLs (an error message) with personal data and passwords masked."""
    return hide_password(mask_pii(text))


def start_run(engine: sa.Engine, run_id: str, source: str, model_version: str, since: datetime | None,
              prefect_flow_run_id: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(runs.insert().values(run_id=run_id, source=hide_password(source), started_at=utcnow(),
                                          status="running", model_version=model_version, since=since, rows_read=0,
                                          classified=0, quarantined=0, skipped_seen=0, skipped_before_since=0,
                                          prefect_flow_run_id=prefect_flow_run_id))


def prefect_flow_run_of(engine: sa.Engine, run_id: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(sa.select(runs.c.prefect_flow_run_id).where(runs.c.run_id == run_id)).scalar()


def finish_run(engine: sa.Engine, run_id: str, counts: dict, status: str, error: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(runs.update().where(runs.c.run_id == run_id)
                     .values(finished_at=utcnow(), status=status, error=error and redact(error), **counts))


def stored_hashes(engine: sa.Engine, complaint_ids: list[str]) -> dict[str, str]:
    """complaint_id → content_hash for the ids already stored."""
    found: dict[str, str] = {}
    with engine.connect() as conn:
        for start in range(0, len(complaint_ids), 500):  # stay under SQLite's bound-parameter limit
            part = complaint_ids[start:start + 500]
            rows = conn.execute(sa.select(complaints.c.complaint_id, complaints.c.content_hash)
                                .where(complaints.c.complaint_id.in_(part)))
            found.update({r.complaint_id: r.content_hash for r in rows})
    return found


def quarantine_records(rows: list[QuarantinedRow], run_id: str) -> list[dict]:
    now = utcnow()
    records = []
    for row in rows:
        raw_json = json.dumps(row.raw, ensure_ascii=False, default=str)
        key = hashlib.sha256(f"{row.source}\x1f{row.source_row}\x1f{row.reason}\x1f{raw_json}".encode()).hexdigest()
        records.append({"quarantine_key": key, "run_id": run_id, "source": row.source, "source_row": row.source_row,
                        "column_name": row.column, "reason": row.reason.value, "detail": row.detail,
                        "raw_json": raw_json, "quarantined_at": now})
    return records


def _insert_new(conn, table: sa.Table, records: list[dict], key_columns: list[str]) -> None:
    """Insert rows whose key is not stored yet (portable 'insert or ignore')."""
    if not records:
        return
    key_of = lambda r: tuple(r[k] for k in key_columns)  # noqa: E731
    wanted = {key_of(r) for r in records}
    existing: set = set()
    keys = list(wanted)
    for start in range(0, len(keys), 400):
        part = keys[start:start + 400]
        if len(key_columns) == 1:
            column = table.c[key_columns[0]]
            rows = conn.execute(sa.select(column).where(column.in_([k[0] for k in part])))
        else:
            rows = conn.execute(sa.select(*[table.c[k] for k in key_columns])
                                .where(sa.tuple_(*[table.c[k] for k in key_columns]).in_(part)))
        existing.update(tuple(r) for r in rows)
    fresh = {}
    for record in records:
        if key_of(record) not in existing:
            fresh.setdefault(key_of(record), record)
    if fresh:
        conn.execute(table.insert(), list(fresh.values()))


def write_batch(engine: sa.Engine, *, complaint_rows: list[dict], prediction_rows: list[dict],
                ticket_rows: list[dict], outbox_rows: list[dict], quarantine_rows: list[dict],
                run_id: str, counts: dict) -> None:
    """One transaction: the batch's complaints, predictions, tickets, outbox entries, quarantined rows and
    the run's running counts land together or not at all."""
    with engine.begin() as conn:
        _insert_new(conn, complaints, complaint_rows, ["complaint_id"])
        _insert_new(conn, predictions, prediction_rows, ["complaint_id", "model_version"])
        _insert_new(conn, tickets, ticket_rows, ["ticket_id"])
        _insert_new(conn, outbox, outbox_rows, ["idempotency_key"])
        _insert_new(conn, quarantine, quarantine_rows, ["quarantine_key"])
        conn.execute(runs.update().where(runs.c.run_id == run_id).values(**counts))



def complaint_time():
    """When a complaint happened: the source's created_at, or ingested_at when the source gave no date."""
    return sa.func.coalesce(complaints.c.created_at, complaints.c.ingested_at)


def complaint_time_range(engine: sa.Engine, timezone: str = "UTC") -> tuple[datetime | None, datetime | None]:
    """Local times (in ``timezone``, naive) of the earliest and the latest classified complaint (None, None
    when nothing is classified)."""
    at = complaint_time()
    statement = sa.select(sa.func.min(at), sa.func.max(at)).select_from(complaints.join(predictions))
    with engine.connect() as conn:
        earliest, latest = conn.execute(statement).one()
    local = [to_local(pd.Timestamp(t) if t is not None else None, timezone) for t in (earliest, latest)]
    return tuple(t.tz_localize(None).to_pydatetime() if t is not None else None for t in local)


TREND_READ_CHUNK = 100_000
_REPEATED_TREND_COLUMNS = ("channel", "metadata_json", "cause", "model_version", "reviewed_cause")


def read_trend_rows(engine: sa.Engine, since: datetime | None = None, until: datetime | None = None,
                    timezone: str = "UTC") -> pd.DataFrame:
    """Every stored prediction of complaints with since ≤ time < until, with the complaint's time, channel
    and metadata and the cause of its latest review (``reviewed_cause``, None when unreviewed). No texts.
    ``since``, ``until`` and the times returned are local wall times in ``timezone``.

    Read in chunks, repeated strings as categories: a million rows peak at ~0.5 GB instead of ~1.5 GB."""
    newest_review = (sa.select(sa.func.max(reviews.c.review_id).label("review_id"))
                     .group_by(reviews.c.complaint_id).scalar_subquery())
    at = complaint_time()
    # datetimes come back as text and are parsed by pandas in one go (SQLite's per-row parsing is slow)
    statement = (
        sa.select(predictions.c.complaint_id, sa.type_coerce(at, sa.String).label("at"), complaints.c.channel,
                  complaints.c.metadata_json, predictions.c.cause, predictions.c.confidence,
                  predictions.c.needs_review, predictions.c.unfamiliar, predictions.c.explanation,
                  predictions.c.model_version,
                  sa.type_coerce(predictions.c.predicted_at, sa.String).label("predicted_at"),
                  reviews.c.cause.label("reviewed_cause"))
        .select_from(predictions.join(complaints)
                     .outerjoin(reviews, sa.and_(reviews.c.complaint_id == predictions.c.complaint_id,
                                                 reviews.c.review_id.in_(newest_review)))))
    if since is not None:
        statement = statement.where(at >= to_utc(since, timezone))
    if until is not None:
        statement = statement.where(at < to_utc(until, timezone))
    with engine.connect() as conn:
        chunks = [chunk.astype({c: "category" for c in _REPEATED_TREND_COLUMNS})
                  for chunk in pd.read_sql(statement, conn, chunksize=TREND_READ_CHUNK)]
    if not chunks:
        chunks = [pd.DataFrame(columns=[c.name for c in statement.selected_columns])]
    frame = pd.concat(chunks, ignore_index=True)
    for column in _REPEATED_TREND_COLUMNS:  # concat turns categories that differ by chunk back into text
        frame[column] = pd.api.types.union_categoricals([chunk[column] for chunk in chunks])
    for column in ("at", "predicted_at"):
        frame[column] = local_wall_times(pd.to_datetime(frame[column], format="ISO8601"), timezone)
    frame["needs_review"] = frame["needs_review"].astype(bool)
    frame["unfamiliar"] = frame["unfamiliar"].astype("boolean").fillna(False).astype(bool)
    return frame


def read_masked_texts(engine: sa.Engine, complaint_ids: list[str]) -> dict[str, str]:
    """complaint_id → PII-masked text."""
    texts: dict[str, str] = {}
    with engine.connect() as conn:
        for start in range(0, len(complaint_ids), 500):
            part = complaint_ids[start:start + 500]
            rows = conn.execute(sa.select(complaints.c.complaint_id, complaints.c.text_masked)
                                .where(complaints.c.complaint_id.in_(part)))
            texts.update({r.complaint_id: r.text_masked for r in rows})
    return texts


def read_table(engine: sa.Engine, table: sa.Table, where=None) -> pd.DataFrame:
    statement = sa.select(table)
    if where is not None:
        statement = statement.where(where)
    with engine.connect() as conn:
        return pd.read_sql(statement, conn)
