"""A database made by a release before migrations gets the columns that release's connect added with ALTER
TABLE (and their indexes): the customer reference, the model's unfamiliarity verdict, the ticket lifecycle,
the Prefect flow run of a run and the lease's fencing generation. A new database has them all from 0001.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ADDED_COLUMNS = {
    "complaints": [sa.Column("customer_key", sa.String(128))],
    "predictions": [sa.Column("unfamiliar", sa.Boolean()), sa.Column("coverage", sa.Float())],
    "tickets": [sa.Column("received_at", sa.DateTime()), sa.Column("acknowledge_due_at", sa.DateTime()),
                sa.Column("acknowledged_at", sa.DateTime()), sa.Column("resolved_at", sa.DateTime()),
                sa.Column("closed_at", sa.DateTime()), sa.Column("resolution", sa.String(32)),
                sa.Column("compensation", sa.Float()), sa.Column("corrected_cause", sa.String(64)),
                sa.Column("reopened_count", sa.Integer()), sa.Column("updated_at", sa.DateTime()),
                sa.Column("updated_by", sa.String(128))],
    "runs": [sa.Column("prefect_flow_run_id", sa.String(64))],
    "run_lock": [sa.Column("generation", sa.Integer())],
}
INDEXED = {("complaints", "customer_key")}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for table, columns in ADDED_COLUMNS.items():
        present = {column["name"] for column in inspector.get_columns(table)}
        for column in columns:
            if column.name in present:
                continue
            op.add_column(table, column)
            if (table, column.name) in INDEXED:
                op.create_index(op.f(f"ix_{table}_{column.name}"), table, [column.name])
