"""The database's tables (SQLAlchemy Core): one definition for SQLite and PostgreSQL.

A change here needs a migration in pipeline/storage/migrations/versions/ (tests/test_migrations.py compares
the migrated schema with these tables).
"""
from __future__ import annotations

import sqlalchemy as sa

# Widths the validation enforces before a row reaches the database (PostgreSQL refuses longer values).
ID_LENGTH = 128
CHANNEL_LENGTH = 128

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
    sa.Column("complaint_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("text_raw", sa.Text, nullable=False),  # unmasked only with Settings.keep_raw_rows, else masked too
    sa.Column("text_masked", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime, index=True),
    sa.Column("channel", sa.String(CHANNEL_LENGTH), index=True),
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
    sa.Column("complaint_id", sa.String(ID_LENGTH), sa.ForeignKey("complaints.complaint_id"), primary_key=True),
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
    sa.Column("complaint_id", sa.String(ID_LENGTH), sa.ForeignKey("complaints.complaint_id"), index=True),
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
    sa.Column("complaint_id", sa.String(ID_LENGTH), sa.ForeignKey("complaints.complaint_id"), index=True),
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
    sa.Column("complaint_id", sa.String(ID_LENGTH), sa.ForeignKey("complaints.complaint_id"), primary_key=True,
              index=True),
    sa.Column("model_version", sa.String(128), nullable=False),
    sa.Column("predicted_cause", sa.String(64), nullable=False),  # the prediction the audit calibrates
    sa.Column("drawn_at", sa.DateTime, nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
)


# ---------------------------------------------------------------- what a source has given (pipeline/ingest/intake.py)

source_files = sa.Table(  # an export file of a folder or glob source, taken once per content
    "source_files", metadata,
    sa.Column("path", sa.String(1024), primary_key=True),  # absolute
    sa.Column("content_hash", sa.String(64), primary_key=True),  # sha256 of the bytes: changed content is new
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("modified_at", sa.DateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # taken | quarantined (unreadable as a whole)
    sa.Column("rows_read", sa.Integer, nullable=False),
    sa.Column("detail", sa.Text),  # why it was quarantined
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("taken_at", sa.DateTime, nullable=False),
)

source_watermarks = sa.Table(  # a database source read in key order: the highest key taken so far
    "source_watermarks", metadata,
    sa.Column("source_key", sa.String(64), primary_key=True),  # sha256 of URL (no password), table/query, key
    sa.Column("source", sa.Text, nullable=False),  # the same, readable, password hidden
    sa.Column("key_column", sa.String(255), nullable=False),
    sa.Column("last_key", sa.Text, nullable=False),
    sa.Column("key_type", sa.String(16), nullable=False),  # int | float | decimal | text | datetime | date
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
