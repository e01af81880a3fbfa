"""The database: runs, complaints, predictions, tickets, the delivery outbox, quarantine, reviews.

SQLAlchemy Core, so the same code runs on the default SQLite file and on PostgreSQL. Each batch is
written in one transaction: a run killed half-way leaves whole batches behind, and the next run skips
exactly those complaints (they are "already seen").
"""
from __future__ import annotations

import functools
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import alembic.command
import alembic.config
import pandas as pd
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import postgresql, sqlite

from pipeline.clock import local_wall_times, to_local, to_utc
from pipeline.config import ConfigError, hide_password
from pipeline.text.normalise import mask_pii
from pipeline.ingest.quarantine import QuarantinedRow

from pipeline.storage.tables import (  # noqa: F401  callers reach the tables as store.<table>
    audit_items, complaints, metadata, outbox, predictions, quarantine, reviews, run_lock, runs, sla_breaches,
    source_files, source_watermarks, ticket_events, tickets)



def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


_DIALECT_INSERT = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}  # the engines the store runs on
MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATION_LOCK = 7_331_001  # the PostgreSQL advisory lock key of migrations


def connect(database_url: str) -> sa.Engine:
    """Engine on a database migrated to the latest schema (``alembic upgrade head``, a no-op when it is
    there already). SQLite files get their folder created."""
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    # hide_parameters: an error must not carry the batch's texts (bound parameters) into logs and runs.error
    engine = sa.create_engine(database_url, future=True, hide_parameters=True)
    if engine.dialect.name not in _DIALECT_INSERT:
        raise ConfigError(f"database_url {hide_password(database_url)}: only SQLite and PostgreSQL are supported")
    if engine.dialect.name == "sqlite":
        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()
    with engine.begin() as conn:
        if _revision(conn) != _head_revision():
            _lock_for_migration(conn)
            if _revision(conn) != _head_revision():  # not migrated meanwhile by a process connecting at once
                config = _migration_config()
                config.attributes["connection"] = conn
                alembic.command.upgrade(config, "head")
    return engine


def _revision(conn: sa.Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _lock_for_migration(conn: sa.Connection) -> None:
    """Hold the database's migration lock for the rest of the transaction: processes connecting at once
    migrate one after the other."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
    else:  # SQLite's write lock, taken now rather than at the first write
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _migration_config() -> alembic.config.Config:
    config = alembic.config.Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@functools.cache
def _head_revision() -> str:
    return ScriptDirectory.from_config(_migration_config()).get_current_head()


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
            found.update(rows.all())  # (id, hash) rows
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


def insert_or_ignore(conn: sa.Connection, table: sa.Table) -> sa.Insert:
    """``insert … on conflict do nothing``: a row whose key (primary or unique) is stored already is skipped.
    To learn whether a row went in, add ``.returning(…)``: the rowcount is -1 through psycopg."""
    return _DIALECT_INSERT[conn.dialect.name](table).on_conflict_do_nothing()


def insert_new(conn: sa.Connection, table: sa.Table, records: list[dict]) -> None:
    """Insert the rows whose key is not stored yet, all in one statement."""
    if records:
        conn.execute(insert_or_ignore(conn, table), records)


def write_batch(engine: sa.Engine, *, complaint_rows: list[dict], prediction_rows: list[dict],
                ticket_rows: list[dict], outbox_rows: list[dict], quarantine_rows: list[dict],
                run_id: str, counts: dict, breach_rows: list[dict] = ()) -> None:
    """One transaction: the batch's complaints, predictions, tickets, outbox entries, breaches found as the
    tickets were built, quarantined rows and the run's running counts land together or not at all."""
    insert = _insert_rows if engine.dialect.name == "sqlite" else insert_new
    with engine.begin() as conn:
        for table, rows in ((complaints, complaint_rows), (predictions, prediction_rows), (tickets, ticket_rows),
                            (outbox, outbox_rows), (sla_breaches, breach_rows), (quarantine, quarantine_rows)):
            insert(conn, table, rows)
        conn.execute(runs.update().where(runs.c.run_id == run_id).values(**counts))


def _insert_rows(conn: sa.Connection, table: sa.Table, records: list[dict]) -> None:
    """``insert_new`` as one prepared ``insert … on conflict do nothing`` run over plain tuples (SQLite): the
    same values SQLAlchemy would bind — its own type conversions, each distinct value converted once — without
    its per-row parameter processing, which cost more than SQLite's insert itself."""
    if not records:
        return
    keys = list(records[0])  # every record of a batch has the same keys
    if any(column.default is not None and column.key not in keys for column in table.c):
        return insert_new(conn, table, records)  # a Python-side default to fill in: SQLAlchemy's way
    statement = insert_or_ignore(conn, table).compile(dialect=conn.dialect, column_keys=keys)
    columns = list(statement.positiontup)  # the order of the statement's ? marks
    values = [[record[column] for record in records] for column in columns]  # column by column
    for position, column in enumerate(columns):
        convert = _bind_processor(table.c[column].type, conn.dialect)
        if convert is not None:
            converted: dict = {None: None}
            for value in values[position]:
                if value not in converted:
                    converted[value] = convert(value)
            values[position] = list(map(converted.__getitem__, values[position]))
    conn.exec_driver_sql(statement.string, list(zip(*values)))


def _bind_processor(column_type: sa.types.TypeEngine, dialect: sa.Dialect):
    """SQLAlchemy's conversion of a column's values for ``dialect``; for a plain ``DateTime`` on SQLite the
    text it writes ('YYYY-MM-DD HH:MM:SS.ffffff') made by ``isoformat`` for naive datetimes, at a third of
    the cost (a batch has four distinct times per complaint)."""
    convert = column_type.dialect_impl(dialect).bind_processor(dialect)
    if type(column_type) is not sa.DateTime or dialect.name != "sqlite":
        return convert

    def sqlite_datetime(value):
        if type(value) is datetime and value.tzinfo is None:
            return value.isoformat(" ", "microseconds")
        return convert(value)
    return sqlite_datetime


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


TREND_READ_CHUNK = 20_000
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
    with engine.connect() as conn:  # streamed: psycopg would otherwise fetch every row at once
        chunks = [chunk.astype({c: "category" for c in _REPEATED_TREND_COLUMNS}) for chunk in
                  pd.read_sql(statement, conn.execution_options(stream_results=True), chunksize=TREND_READ_CHUNK)]
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
