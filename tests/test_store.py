"""The store on both engines, each test once on a SQLite file and once on a real PostgreSQL server
(tests/postgres_server.py): its queries, idempotent batch writes, the run lease raced by real processes,
exactly-once delivery through the outbox, and the values PostgreSQL refuses, stopped before they reach it."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline.config import PROJECT_ROOT, load_settings
from pipeline.delivery.outbox import deliver_pending
from pipeline.ingest.validate import content_hash
from pipeline.storage import store
from pipeline.storage.tables import CHANNEL_LENGTH, ID_LENGTH
from ticket_helpers import COMPLAINTS, WebhookReceiver, process_file, write_complaints

NOW = datetime(2026, 11, 23, 2, 0)


def settings_on(database_url, tmp_path, **overrides):
    return load_settings(work_dir=tmp_path / "work", classifier="lexicon", database_url=database_url, **overrides)


def stored(database_url: str, table: sa.Table) -> pd.DataFrame:
    engine = store.connect(database_url)
    try:
        return store.read_table(engine, table)
    finally:
        engine.dispose()


@pytest.fixture
def filled(database_url, tmp_path):
    """The six test complaints processed into a fresh database on the engine under test."""
    settings = settings_on(database_url, tmp_path)
    process_file(settings, write_complaints(tmp_path / "in.csv"), now=NOW)
    engine = store.connect(database_url)
    yield engine
    engine.dispose()


def test_the_queries_answer_from_what_was_stored(filled):
    ids = [row[0] for row in COMPLAINTS]
    hashes = store.stored_hashes(filled, ids + ["never-stored"])
    assert hashes == {row[0]: content_hash(row[1]) for row in COMPLAINTS}

    complaints = store.read_table(filled, store.complaints).set_index("complaint_id")
    u1 = complaints.loc["C1", "customer_key"]
    assert u1 and u1 == complaints.loc["C4", "customer_key"]  # the same customer, as a reference
    history = store.customer_history(filled, [u1], since=datetime(2026, 11, 1))
    assert sorted(cid for _at, cid in history[u1]) == ["C1", "C4"]
    assert store.customer_history(filled, [u1], since=datetime(2026, 11, 4)) == {u1: [(datetime(2026, 11, 4, 1), "C4")]}

    earliest, latest = store.complaint_time_range(filled, "Asia/Shanghai")
    assert (earliest, latest) == (datetime(2026, 11, 1, 10), datetime(2026, 11, 6, 15))
    trend = store.read_trend_rows(filled, since=datetime(2026, 11, 2), timezone="Asia/Shanghai")
    assert sorted(trend["complaint_id"]) == ["C2", "C3", "C4", "C5", "C6"]
    assert trend.set_index("complaint_id").loc["C2", "at"] == pd.Timestamp("2026-11-02 11:00")
    assert trend["needs_review"].dtype == bool and trend["reviewed_cause"].isna().all()

    masked = store.read_masked_texts(filled, ["C2"])
    assert masked["C2"].startswith("排队等了两个小时")


def test_writing_a_batch_twice_stores_it_once(filled):
    complaint = store.read_table(filled, store.complaints).iloc[0].to_dict()
    prediction = store.read_table(filled, store.predictions).iloc[0].to_dict()
    before = {table.name: len(store.read_table(filled, table)) for table in (store.complaints, store.predictions,
                                                                               store.tickets, store.outbox)}
    new = {**complaint, "complaint_id": "C-new"}
    store.start_run(filled, "again", "in.csv", "v", None)
    for _ in range(2):  # the batch again, with one new complaint listed twice
        store.write_batch(filled, complaint_rows=[complaint, new, new], prediction_rows=[prediction],
                          ticket_rows=[], outbox_rows=[], quarantine_rows=[], run_id="again",
                          counts={"classified": 1})
    after = {table.name: len(store.read_table(filled, table)) for table in (store.complaints, store.predictions,
                                                                              store.tickets, store.outbox)}
    assert after == {**before, "complaints": before["complaints"] + 1}
    runs = store.read_table(filled, store.runs).set_index("run_id")
    assert runs.loc["again", "classified"] == 1


RACE = """
import sys
from pipeline.storage import runlock, store
engine = store.connect(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()  # all racers go at once
try:
    lease = runlock.acquire(engine, sys.argv[2])
    print("held", lease.generation, flush=True)
except runlock.RunLockedError as exc:
    print("refused", exc, flush=True)
sys.stdin.readline()  # the holder holds until every racer has answered
"""


@pytest.mark.slow  # starts worker processes
def test_processes_racing_for_the_lease_let_exactly_one_run(database_url):
    engine = store.connect(database_url)  # migrated here once, not by the racers
    for round_number in range(3):
        racers = [subprocess.Popen([sys.executable, "-c", RACE, database_url, f"run-{round_number}-{i}"],
                                   cwd=PROJECT_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True) for i in range(3)]
        assert [racer.stdout.readline() for racer in racers] == ["ready\n"] * 3
        for racer in racers:
            racer.stdin.write("go\n")
            racer.stdin.flush()
        answers = [racer.stdout.readline() for racer in racers]
        for racer in racers:
            racer.communicate("done\n", timeout=60)
        assert sum(answer.startswith("held") for answer in answers) == 1, answers
        assert sum(answer.startswith("refused") for answer in answers) == 2, answers
        with engine.begin() as conn:  # the holder exited without releasing: the next round starts afresh
            conn.execute(store.run_lock.delete())
    engine.dispose()


def test_the_outbox_delivers_each_ticket_once_through_refusals_a_crash_and_a_rerun(database_url, tmp_path):
    source = write_complaints(tmp_path / "in.csv")
    with WebhookReceiver(refuse_first=3) as receiver:
        settings = settings_on(database_url, tmp_path, webhooks={"*": {"url": receiver.url}},
                               webhook_backoff_seconds=0.01, webhook_timeout_seconds=5)
        tickets = {t["ticket_id"] for t in process_file(settings, source, now=NOW)["ticket_rows"]}
        engine = store.connect(database_url)
        queued = store.read_table(engine, store.outbox)  # each ticket's, and the escalations of those built late
        assert len(queued) > 2 * len(tickets) and set(queued["ticket_id"]) == tickets
        report = deliver_pending(engine, settings)
        assert report.delivered == queued["target"].value_counts().to_dict() and report.pending == {}
        webhook_keys = set(queued.loc[queued["target"] == "webhook", "idempotency_key"])
        assert set(receiver.processed) == webhook_keys and receiver.duplicates == []

        again = process_file(settings, source, run_id="rerun", now=NOW)  # a rerun queues nothing new
        assert again["outbox_rows"] == [] and deliver_pending(engine, settings).delivered == {}
        assert len(receiver.requests) == len(webhook_keys) + 3
        entries = store.read_table(engine, store.outbox)
        engine.dispose()
    assert len(entries) == len(queued) and (entries["status"] == "delivered").all()
    lines = [json.loads(line) for path in settings.tickets_dir.glob("*.jsonl") for line in path.read_text().splitlines()]
    assert sorted(line["ticket_id"] for line in lines) == sorted(queued.loc[queued["target"] == "file", "ticket_id"])


def test_what_postgresql_refuses_is_quarantined_or_cleaned_before_it_gets_there(database_url, tmp_path):
    long_id, long_channel = "L" * 300, "渠" * (CHANNEL_LENGTH + 1)
    rows = [("N1", "前台服务\x00员态度很差", "2026-11-20 10:00", "app", "北京\x00店", "U1"),
            (long_id, "外卖送来全洒了，商家拒绝退款", "2026-11-20 10:00", "app", "北京朝阳店", "U2"),
            ("N\x003", "热水器坏了，洗澡没有热水", "2026-11-20 10:00", "app", "北京朝阳店", "U3"),
            ("N4", "门店没有开发票", "2026-11-20 10:00", long_channel, "北京朝阳店", "U4"),
            ("N5", "空调坏了一整晚", "2026-11-20 10:00", "x" * CHANNEL_LENGTH, "北京朝阳店", "U5")]
    source = write_complaints(tmp_path / "hostile.csv", rows)
    settings = settings_on(database_url, tmp_path, keep_raw_rows=True)  # the raw text is stored too
    process_file(settings, source, now=NOW)

    complaints = stored(database_url, store.complaints).set_index("complaint_id")
    assert sorted(complaints.index) == ["N1", "N5"]
    assert complaints.loc["N1", "text_raw"] == complaints.loc["N1", "text_masked"] == "前台服务员态度很差"
    assert json.loads(complaints.loc["N1", "metadata_json"])["store"] == "北京店"
    quarantine = stored(database_url, store.quarantine).set_index("source_row")
    assert sorted(quarantine.index) == [2, 3, 4]
    assert quarantine.loc[2, "reason"] == "value_too_long" and quarantine.loc[2, "column_name"] == "id"
    assert f"300 characters, more than the {ID_LENGTH}" in quarantine.loc[2, "detail"]
    assert quarantine.loc[3, "reason"] == "control_characters_in_id" and quarantine.loc[3, "column_name"] == "id"
    assert quarantine.loc[4, "reason"] == "value_too_long" and quarantine.loc[4, "column_name"] == "channel"
    assert all(quarantine["source"] == str(source))
    assert json.loads(quarantine.loc[3, "raw_json"])["id"] == "N\x003"  # the bad row is kept as it came


def test_the_sqlite_write_stores_times_as_sqlalchemy_would():
    """``_insert_rows`` formats plain naive datetimes itself: the same text as SQLAlchemy's SQLite DATETIME."""
    from datetime import date, timezone

    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    theirs = sa.DateTime().dialect_impl(dialect).bind_processor(dialect)
    ours = store._bind_processor(sa.DateTime(), dialect)
    times = [datetime(1, 1, 1), datetime(999, 12, 31, 23, 59, 59, 999999), datetime(2026, 11, 23, 2, 0, 0, 1),
             datetime(9999, 12, 31, 23, 59, 59), datetime(2026, 3, 1, 8, 5, tzinfo=timezone.utc),
             pd.Timestamp("2026-11-23 02:00:00.123456"), date(2026, 11, 23), None]
    assert [ours(value) for value in times] == [theirs(value) for value in times]
