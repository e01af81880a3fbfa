"""The database (SQLite or PostgreSQL through SQLAlchemy Core): tables, their Alembic migrations, queries,
idempotent writes, and the run lease that lets one nightly run at a time write."""
