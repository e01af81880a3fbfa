"""Today's tables: a new database gets all of them; a database made before migrations (when connect ran
create_all) keeps the tables it has and gets those its release lacked. Frozen: change the schema in a new
revision, never here.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "complaints" not in existing:
        op.create_table("complaints",
            sa.Column("complaint_id", sa.String(length=128), nullable=False),
            sa.Column("text_raw", sa.Text(), nullable=False),
            sa.Column("text_masked", sa.Text(), nullable=False),
            sa.Column("content_hash", sa.String(length=64), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=True),
            sa.Column("channel", sa.String(length=128), nullable=True),
            sa.Column("customer_key", sa.String(length=128), nullable=True),
            sa.Column("metadata_json", sa.Text(), nullable=True),
            sa.Column("source", sa.Text(), nullable=True),
            sa.Column("source_row", sa.Integer(), nullable=True),
            sa.Column("text_truncated", sa.Boolean(), nullable=True),
            sa.Column("run_id", sa.String(length=64), nullable=True),
            sa.Column("ingested_at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("complaint_id")
        )
        op.create_index(op.f("ix_complaints_channel"), "complaints", ["channel"], unique=False)
        op.create_index(op.f("ix_complaints_created_at"), "complaints", ["created_at"], unique=False)
        op.create_index(op.f("ix_complaints_customer_key"), "complaints", ["customer_key"], unique=False)
        op.create_index(op.f("ix_complaints_run_id"), "complaints", ["run_id"], unique=False)
    if "quarantine" not in existing:
        op.create_table("quarantine",
            sa.Column("quarantine_key", sa.String(length=64), nullable=False),
            sa.Column("run_id", sa.String(length=64), nullable=True),
            sa.Column("source", sa.Text(), nullable=False),
            sa.Column("source_row", sa.Integer(), nullable=False),
            sa.Column("column_name", sa.String(length=128), nullable=True),
            sa.Column("reason", sa.String(length=64), nullable=False),
            sa.Column("detail", sa.Text(), nullable=True),
            sa.Column("raw_json", sa.Text(), nullable=True),
            sa.Column("quarantined_at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("quarantine_key")
        )
        op.create_index(op.f("ix_quarantine_reason"), "quarantine", ["reason"], unique=False)
        op.create_index(op.f("ix_quarantine_run_id"), "quarantine", ["run_id"], unique=False)
    if "run_lock" not in existing:
        op.create_table("run_lock",
            sa.Column("name", sa.String(length=64), nullable=False),
            sa.Column("run_id", sa.String(length=64), nullable=False),
            sa.Column("host", sa.String(length=255), nullable=False),
            sa.Column("pid", sa.Integer(), nullable=False),
            sa.Column("acquired_at", sa.DateTime(), nullable=False),
            sa.Column("renewed_at", sa.DateTime(), nullable=False),
            sa.Column("generation", sa.Integer(), nullable=True),
            sa.PrimaryKeyConstraint("name")
        )
    if "runs" not in existing:
        op.create_table("runs",
            sa.Column("run_id", sa.String(length=64), nullable=False),
            sa.Column("source", sa.Text(), nullable=False),
            sa.Column("started_at", sa.DateTime(), nullable=False),
            sa.Column("finished_at", sa.DateTime(), nullable=True),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("model_version", sa.String(length=128), nullable=True),
            sa.Column("since", sa.DateTime(), nullable=True),
            sa.Column("rows_read", sa.Integer(), nullable=True),
            sa.Column("classified", sa.Integer(), nullable=True),
            sa.Column("quarantined", sa.Integer(), nullable=True),
            sa.Column("skipped_seen", sa.Integer(), nullable=True),
            sa.Column("skipped_before_since", sa.Integer(), nullable=True),
            sa.Column("error", sa.Text(), nullable=True),
            sa.Column("prefect_flow_run_id", sa.String(length=64), nullable=True),
            sa.PrimaryKeyConstraint("run_id")
        )
    if "audit_items" not in existing:
        op.create_table("audit_items",
            sa.Column("audit_id", sa.String(length=64), nullable=False),
            sa.Column("complaint_id", sa.String(length=128), nullable=False),
            sa.Column("model_version", sa.String(length=128), nullable=False),
            sa.Column("predicted_cause", sa.String(length=64), nullable=False),
            sa.Column("drawn_at", sa.DateTime(), nullable=False),
            sa.Column("seed", sa.BigInteger(), nullable=False),
            sa.ForeignKeyConstraint(["complaint_id"], ["complaints.complaint_id"], ),
            sa.PrimaryKeyConstraint("audit_id", "complaint_id")
        )
        op.create_index(op.f("ix_audit_items_complaint_id"), "audit_items", ["complaint_id"], unique=False)
    if "predictions" not in existing:
        op.create_table("predictions",
            sa.Column("complaint_id", sa.String(length=128), nullable=False),
            sa.Column("model_version", sa.String(length=128), nullable=False),
            sa.Column("cause", sa.String(length=64), nullable=False),
            sa.Column("confidence", sa.Float(), nullable=False),
            sa.Column("needs_review", sa.Boolean(), nullable=False),
            sa.Column("secondary_causes", sa.Text(), nullable=True),
            sa.Column("probabilities_json", sa.Text(), nullable=False),
            sa.Column("explanation", sa.Text(), nullable=True),
            sa.Column("unfamiliar", sa.Boolean(), nullable=True),
            sa.Column("coverage", sa.Float(), nullable=True),
            sa.Column("run_id", sa.String(length=64), nullable=True),
            sa.Column("predicted_at", sa.DateTime(), nullable=False),
            sa.ForeignKeyConstraint(["complaint_id"], ["complaints.complaint_id"], ),
            sa.PrimaryKeyConstraint("complaint_id", "model_version")
        )
        op.create_index(op.f("ix_predictions_cause"), "predictions", ["cause"], unique=False)
        op.create_index(op.f("ix_predictions_run_id"), "predictions", ["run_id"], unique=False)
    if "reviews" not in existing:
        op.create_table("reviews",
            sa.Column("review_id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("complaint_id", sa.String(length=128), nullable=True),
            sa.Column("cause", sa.String(length=64), nullable=False),
            sa.Column("secondary_causes", sa.Text(), nullable=True),
            sa.Column("reviewer", sa.String(length=128), nullable=False),
            sa.Column("reviewed_at", sa.DateTime(), nullable=False),
            sa.Column("note", sa.Text(), nullable=True),
            sa.ForeignKeyConstraint(["complaint_id"], ["complaints.complaint_id"], ),
            sa.PrimaryKeyConstraint("review_id")
        )
        op.create_index(op.f("ix_reviews_complaint_id"), "reviews", ["complaint_id"], unique=False)
    if "tickets" not in existing:
        op.create_table("tickets",
            sa.Column("ticket_id", sa.String(length=64), nullable=False),
            sa.Column("complaint_id", sa.String(length=128), nullable=True),
            sa.Column("cause", sa.String(length=64), nullable=False),
            sa.Column("remedy_code", sa.String(length=32), nullable=True),
            sa.Column("queue", sa.String(length=128), nullable=False),
            sa.Column("priority", sa.Integer(), nullable=False),
            sa.Column("due_at", sa.DateTime(), nullable=True),
            sa.Column("escalation_reasons", sa.Text(), nullable=True),
            sa.Column("model_version", sa.String(length=128), nullable=True),
            sa.Column("status", sa.String(length=32), nullable=False),
            sa.Column("payload_json", sa.Text(), nullable=False),
            sa.Column("run_id", sa.String(length=64), nullable=True),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("received_at", sa.DateTime(), nullable=True),
            sa.Column("acknowledge_due_at", sa.DateTime(), nullable=True),
            sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
            sa.Column("resolved_at", sa.DateTime(), nullable=True),
            sa.Column("closed_at", sa.DateTime(), nullable=True),
            sa.Column("resolution", sa.String(length=32), nullable=True),
            sa.Column("compensation", sa.Float(), nullable=True),
            sa.Column("corrected_cause", sa.String(length=64), nullable=True),
            sa.Column("reopened_count", sa.Integer(), nullable=True),
            sa.Column("updated_at", sa.DateTime(), nullable=True),
            sa.Column("updated_by", sa.String(length=128), nullable=True),
            sa.ForeignKeyConstraint(["complaint_id"], ["complaints.complaint_id"], ),
            sa.PrimaryKeyConstraint("ticket_id")
        )
        op.create_index(op.f("ix_tickets_complaint_id"), "tickets", ["complaint_id"], unique=False)
        op.create_index(op.f("ix_tickets_queue"), "tickets", ["queue"], unique=False)
        op.create_index(op.f("ix_tickets_status"), "tickets", ["status"], unique=False)
    if "outbox" not in existing:
        op.create_table("outbox",
            sa.Column("outbox_id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("ticket_id", sa.String(length=64), nullable=True),
            sa.Column("target", sa.String(length=32), nullable=False),
            sa.Column("queue", sa.String(length=128), nullable=False),
            sa.Column("idempotency_key", sa.String(length=128), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("last_error", sa.Text(), nullable=True),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("delivered_at", sa.DateTime(), nullable=True),
            sa.ForeignKeyConstraint(["ticket_id"], ["tickets.ticket_id"], ),
            sa.PrimaryKeyConstraint("outbox_id"),
            sa.UniqueConstraint("idempotency_key")
        )
        op.create_index(op.f("ix_outbox_status"), "outbox", ["status"], unique=False)
        op.create_index(op.f("ix_outbox_ticket_id"), "outbox", ["ticket_id"], unique=False)
    if "sla_breaches" not in existing:
        op.create_table("sla_breaches",
            sa.Column("ticket_id", sa.String(length=64), nullable=False),
            sa.Column("queue", sa.String(length=128), nullable=False),
            sa.Column("cause", sa.String(length=64), nullable=False),
            sa.Column("due_at", sa.DateTime(), nullable=False),
            sa.Column("detected_at", sa.DateTime(), nullable=False),
            sa.Column("run_id", sa.String(length=64), nullable=False),
            sa.Column("priority_before", sa.Integer(), nullable=False),
            sa.Column("priority_after", sa.Integer(), nullable=False),
            sa.Column("hours_late", sa.Float(), nullable=False),
            sa.Column("escalated", sa.Boolean(), nullable=False),
            sa.ForeignKeyConstraint(["ticket_id"], ["tickets.ticket_id"], ),
            sa.PrimaryKeyConstraint("ticket_id")
        )
        op.create_index(op.f("ix_sla_breaches_run_id"), "sla_breaches", ["run_id"], unique=False)
    if "ticket_events" not in existing:
        op.create_table("ticket_events",
            sa.Column("event_id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("ticket_id", sa.String(length=64), nullable=False),
            sa.Column("from_status", sa.String(length=32), nullable=False),
            sa.Column("to_status", sa.String(length=32), nullable=False),
            sa.Column("at", sa.DateTime(), nullable=False),
            sa.Column("by", sa.String(length=128), nullable=False),
            sa.Column("resolution", sa.String(length=32), nullable=True),
            sa.Column("compensation", sa.Float(), nullable=True),
            sa.Column("corrected_cause", sa.String(length=64), nullable=True),
            sa.Column("note", sa.Text(), nullable=True),
            sa.Column("source", sa.String(length=255), nullable=False),
            sa.Column("recorded_at", sa.DateTime(), nullable=False),
            sa.ForeignKeyConstraint(["ticket_id"], ["tickets.ticket_id"], ),
            sa.PrimaryKeyConstraint("event_id")
        )
        op.create_index(op.f("ix_ticket_events_ticket_id"), "ticket_events", ["ticket_id"], unique=False)
