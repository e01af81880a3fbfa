"""What a source has given (issue 12): ``source_files``, the export files of a folder or glob source taken
so far (by absolute path and content hash), and ``source_watermarks``, the highest key a database source
read in key order has given (pipeline/ingest/intake.py).

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("source_files",
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("modified_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("taken_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("path", "content_hash")
    )
    op.create_index(op.f("ix_source_files_run_id"), "source_files", ["run_id"], unique=False)
    op.create_table("source_watermarks",
        sa.Column("source_key", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("key_column", sa.String(length=255), nullable=False),
        sa.Column("last_key", sa.Text(), nullable=False),
        sa.Column("key_type", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source_key")
    )


def downgrade() -> None:
    op.drop_table("source_watermarks")
    op.drop_index(op.f("ix_source_files_run_id"), table_name="source_files")
    op.drop_table("source_files")
