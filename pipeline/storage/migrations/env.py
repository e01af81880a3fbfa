"""Alembic environment, run by pipeline.storage.store.connect (no alembic.ini): it passes the connection in
``config.attributes["connection"]``. A schema change is a new file in versions/ (next number, ``down_revision``
the latest), written by hand with ``op`` calls; tests/test_migrations.py checks it matches tables.py."""
from alembic import context

from pipeline.storage.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")  # SQLite alters tables by copying them
with context.begin_transaction():
    context.run_migrations()
