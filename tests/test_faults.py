"""Faults during a run: a failed lookup retried, credentials in URLs, errors carrying raw texts."""
import sqlite3

import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline import store
from pipeline.config import PROJECT_ROOT

SAMPLE = PROJECT_ROOT / "data" / "samples" / "complaints_sample.csv"


def _fail_first_stored_hashes_lookup():
    """Every engine's first SELECT of stored content hashes fails like a database that went away for a moment."""
    failures = []

    def before_cursor_execute(conn, cursor, statement, parameters, context, executemany):
        if "content_hash" in statement and statement.lstrip().upper().startswith("SELECT") and not failures:
            failures.append(statement)
            raise sqlite3.OperationalError("disk I/O error")

    return before_cursor_execute, failures


@pytest.mark.flow
def test_a_retried_lookup_does_not_turn_the_batch_into_duplicates(prefect_harness, lexicon_settings, monkeypatch):
    """The prepare task's database lookup fails once and Prefect retries it: the retry must see the batch as
    it was, not as ids it had already recorded as seen (which quarantined every row as a duplicate)."""
    from flows import nightly

    monkeypatch.setattr(nightly.prepare, "retry_delay_seconds", 0)
    listener, failures = _fail_first_stored_hashes_lookup()
    sa.event.listen(sa.Engine, "before_cursor_execute", listener)
    try:
        summary = nightly.nightly_flow(source=str(SAMPLE), settings=lexicon_settings)
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", listener)
    assert failures, "the injected failure never happened"
    rows = len(pd.read_csv(SAMPLE, keep_default_na=False))
    assert summary["status"] == "completed"
    assert summary["counts"]["quarantined"] == 4  # the sample's planted bad rows, nothing more
    assert summary["counts"]["classified"] == rows - 4
    engine = store.connect(lexicon_settings.resolved_database_url)
    reasons = store.read_table(engine, store.quarantine)["reason"]
    engine.dispose()
    assert len(reasons) == 4 and (reasons == "duplicate_id_in_source").sum() == 1  # the sample plants one
