"""A real nightly flow run on PostgreSQL stores what the same run stores on SQLite: every complaint,
prediction, ticket, delivery and quarantined row alike, but for the run's id and its clock."""
import json

import pandas as pd
import pytest

from pipeline.config import PROJECT_ROOT, load_settings
from pipeline.storage import store

SAMPLE = PROJECT_ROOT / "data" / "samples" / "complaints_sample.csv"
pytestmark = pytest.mark.flow

KEYS = {"complaints": ["complaint_id"], "predictions": ["complaint_id", "model_version"], "tickets": ["ticket_id"],
        "outbox": ["idempotency_key"], "quarantine": ["quarantine_key"], "sla_breaches": ["ticket_id"]}
# what depends on when the run ran, not on what it read
RUN_CLOCK = {"run_id", "ingested_at", "predicted_at", "quarantined_at", "outbox_id", "delivered_at",
             "due_at", "acknowledge_due_at", "received_at", "updated_at", "detected_at", "hours_late"}


def _stored_rows(database_url: str) -> dict[str, pd.DataFrame]:
    engine = store.connect(database_url)
    frames = {}
    for name, key in KEYS.items():
        frame = store.read_table(engine, store.metadata.tables[name])
        volatile = RUN_CLOCK | ({"created_at"} if name in ("tickets", "outbox") else set())
        frame = frame.drop(columns=[c for c in frame.columns if c in volatile])
        if name == "tickets":
            frame["payload_json"] = [json.dumps({k: v for k, v in json.loads(p).items()
                                                 if k not in RUN_CLOCK and k != "created_at"}, sort_keys=True)
                                     for p in frame["payload_json"]]
        frames[name] = frame.sort_values(key).reset_index(drop=True)
    runs = store.read_table(engine, store.runs)
    frames["runs"] = runs[["status", "rows_read", "classified", "quarantined", "skipped_seen"]]
    engine.dispose()
    return frames


def test_a_nightly_run_on_postgresql_stores_the_same_rows_as_on_sqlite(prefect_harness, tmp_path, postgres_server):
    from flows.nightly import nightly_flow

    stored = {}
    for engine_name, url in (("sqlite", f"sqlite:///{tmp_path / 'sqlite' / 'complaints.db'}"),
                             ("postgresql", postgres_server.create_database())):
        settings = load_settings(work_dir=tmp_path / engine_name, classifier="lexicon", database_url=url)
        summary = nightly_flow(source=str(SAMPLE), settings=settings)
        assert summary["status"] == "completed" and summary["counts"]["classified"] == 400, engine_name
        stored[engine_name] = _stored_rows(url)

    for name, frame in stored["sqlite"].items():
        assert len(frame) > 0, name
        pd.testing.assert_frame_equal(stored["postgresql"][name], frame, check_dtype=False, obj=name)
