"""The schema's Alembic migrations, on SQLite and PostgreSQL: a new database migrated to head is exactly
tables.py, and a database made by a release before migrations (its first tables, created on connect) is
brought up to date keeping its rows."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from pipeline.config import PROJECT_ROOT
from pipeline.storage import store, tables

TABLES_ADDED_SINCE_THE_FIRST_RELEASE = {"run_lock", "ticket_events", "sla_breaches", "audit_items", "source_files",
                                        "source_watermarks"}


def _columns_added_since_the_first_release() -> dict[str, set[str]]:
    path = store.MIGRATIONS / "versions" / "0002_columns_added_on_connect.py"
    spec = importlib.util.spec_from_file_location("revision_0002", path)
    revision = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(revision)
    return {table: {column.name for column in columns} for table, columns in revision.ADDED_COLUMNS.items()}


def first_release_schema() -> sa.MetaData:
    """The tables as the first release's connect created them: today's, without what came later."""
    added = _columns_added_since_the_first_release()
    old = sa.MetaData()
    for table in tables.metadata.sorted_tables:
        if table.name not in TABLES_ADDED_SINCE_THE_FIRST_RELEASE:
            kept = [column for column in table.columns if column.name not in added.get(table.name, set())]
            sa.Table(table.name, old, *[column._copy() for column in kept],
                     *[sa.ForeignKeyConstraint([column.name], [key.target_fullname])
                       for column in kept for key in column.foreign_keys])
    return old


def schema_differences(engine: sa.Engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), tables.metadata)


def test_a_new_database_migrated_to_head_is_exactly_the_tables_in_tables_py(database_url):
    engine = store.connect(database_url)
    assert schema_differences(engine) == []
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == "0003"
    engine.dispose()


def test_a_database_from_before_migrations_is_upgraded_and_keeps_its_rows(database_url):
    legacy = sa.create_engine(database_url)
    old = first_release_schema()
    old.create_all(legacy)
    at = datetime(2026, 11, 20, 9, 30)
    with legacy.begin() as conn:
        conn.execute(old.tables["runs"].insert().values(run_id="r1", source="old.csv", started_at=at,
                                                        status="completed", rows_read=1, classified=1))
        conn.execute(old.tables["complaints"].insert().values(
            complaint_id="OLD-1", text_raw="服务员态度很差", text_masked="服务员态度很差", content_hash="h",
            created_at=at, channel="app", run_id="r1", ingested_at=at))
        conn.execute(old.tables["predictions"].insert().values(
            complaint_id="OLD-1", model_version="v0", cause="personnel", confidence=0.9, needs_review=False,
            probabilities_json="{}", run_id="r1", predicted_at=at))
    assert "customer_key" not in {c["name"] for c in sa.inspect(legacy).get_columns("complaints")}
    legacy.dispose()

    engine = store.connect(database_url)
    assert schema_differences(engine) == []  # every table and column of today, with their indexes
    complaints = store.read_table(engine, store.complaints)
    assert complaints[["complaint_id", "text_masked", "channel"]].values.tolist() == [["OLD-1", "服务员态度很差", "app"]]
    assert complaints["customer_key"].isna().all()
    predictions = store.read_table(engine, store.predictions)
    assert predictions[["complaint_id", "cause"]].values.tolist() == [["OLD-1", "personnel"]]
    assert store.read_table(engine, store.runs)["status"].tolist() == ["completed"]
    assert store.stored_hashes(engine, ["OLD-1"]) == {"OLD-1": "h"}  # the next run skips it as seen
    engine.dispose()


CONNECT = """
import sys
from pipeline.storage import store
sys.stdin.readline()
store.connect(sys.argv[1]).dispose()
print("migrated", flush=True)
"""


@pytest.mark.slow  # starts worker processes
def test_processes_connecting_at_once_to_a_new_database_migrate_it_once(database_url):
    connecting = [subprocess.Popen([sys.executable, "-c", CONNECT, database_url], cwd=PROJECT_ROOT, text=True,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                  for _ in range(3)]
    outputs = [process.communicate("go\n", timeout=120)[0] for process in connecting]
    assert outputs == ["migrated\n"] * 3, outputs
    engine = store.connect(database_url)
    assert schema_differences(engine) == []
    engine.dispose()
