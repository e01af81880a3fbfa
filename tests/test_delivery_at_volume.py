"""Webhook delivery at volume against a real, slow HTTP server on 127.0.0.1 that throttles with 429 and
Retry-After and counts what it processed per Idempotency-Key: a bounded pool, the wait it asks for, and still
exactly one delivery per key, also through a crash in the middle."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from pipeline.config import load_settings
from pipeline.delivery.outbox import deliver_pending
from pipeline.delivery.webhooks import backoff_seconds, retry_after_seconds
from pipeline.storage import store
from ticket_helpers import COMPLAINTS, WebhookReceiver, process_file, write_complaints

TICKETS = 96


def many_complaints(n: int = TICKETS) -> list[tuple]:
    return [(f"V{i:04d}", f"{COMPLAINTS[i % len(COMPLAINTS)][1]}（工单{i}）", "2026-11-20 10:00", "app", "门店", f"U{i}")
            for i in range(n)]


def stored_run(tmp_path, receiver_url: str, n: int = TICKETS, **overrides):
    settings = load_settings(work_dir=tmp_path / "work", classifier="lexicon", webhooks={"*": {"url": receiver_url}},
                             webhook_backoff_seconds=0.01, webhook_timeout_seconds=10, **overrides)
    # classified as they were made (10:00 in Shanghai): no ticket past its deadline (escalated as built, delivered twice)
    process_file(settings, write_complaints(tmp_path / "in.csv", many_complaints(n)), now=datetime(2026, 11, 20, 2, 0))
    return settings, store.connect(settings.resolved_database_url)


def webhook_keys(engine) -> set[str]:
    with engine.connect() as conn:
        return {key for (key,) in conn.execute(store.outbox.select().with_only_columns(store.outbox.c.idempotency_key)
                                               .where(store.outbox.c.target == "webhook"))}


def test_a_slow_throttling_receiver_gets_every_ticket_once_from_a_bounded_pool(tmp_path):
    # two throttled while the pool has eight in flight: the other six must hold too
    with WebhookReceiver(delay_seconds=0.02, throttle_first=2, retry_after="1") as receiver:
        settings, engine = stored_run(tmp_path, receiver.url, webhook_concurrency=8)

        report = deliver_pending(engine, settings)

        keys = webhook_keys(engine)
        assert len(keys) == TICKETS
        assert report.delivered["webhook"] == TICKETS and report.pending == {} and report.errors == []
        assert set(receiver.processed) == keys and receiver.duplicates == []  # no loss, no duplicate
        assert len(receiver.requests) == TICKETS + 2  # each throttled request sent once more
        assert 1 < receiver.max_in_flight <= 8  # concurrent, and never more than the pool
        throttled = [r for r in receiver.requests if r["status"] == 429]
        for refused in throttled:  # each throttled ticket came back no sooner than it was asked to
            retried = next(r for r in receiver.requests if r["key"] == refused["key"] and r["status"] == 200)
            assert retried["arrived"] - refused["answered"] >= 0.95
        # and the pace held every request to the receiver, not only the throttled ones
        quiet_from = max(r["answered"] for r in throttled) + 0.3
        quiet_until = min(r["answered"] for r in throttled) + 0.9
        assert not [r for r in receiver.requests if quiet_from < r["arrived"] < quiet_until]


def test_retry_after_as_an_http_date_is_honoured(tmp_path):
    def in_two_seconds() -> str:
        return format_datetime(datetime.now(timezone.utc) + timedelta(seconds=2), usegmt=True)

    with WebhookReceiver(throttle_first=1, retry_after=in_two_seconds) as receiver:
        settings, engine = stored_run(tmp_path, receiver.url, n=3, webhook_concurrency=1)
        report = deliver_pending(engine, settings)
        assert report.delivered["webhook"] == 3 and receiver.duplicates == []
        refused, retried = receiver.requests[0], receiver.requests[1]
        assert refused["status"] == 429 and retried["key"] == refused["key"]
        assert retried["arrived"] - refused["answered"] >= 0.9  # an HTTP-date counts whole seconds: 1–2 s


def test_a_receiver_asking_for_longer_than_the_longest_wait_is_left_for_the_next_run(tmp_path):
    with WebhookReceiver(throttle_first=2, retry_after="3600") as receiver:
        settings, engine = stored_run(tmp_path, receiver.url, n=6, webhook_concurrency=2)
        started = time.monotonic()
        report = deliver_pending(engine, settings)
        assert time.monotonic() - started < 60  # it did not wait the hour
        assert report.pending == {"webhook": 6} and len(receiver.requests) == 2
        assert "Retry-After 3600 s" in report.errors[0] and "webhook_max_wait_seconds" in report.errors[0]

        again = deliver_pending(engine, settings)  # the next run: the receiver takes them
        assert again.delivered == {"webhook": 6} and set(receiver.processed) == webhook_keys(engine)


def test_a_crash_while_the_pool_is_busy_loses_nothing_and_resends_only_what_was_in_flight(tmp_path):
    with WebhookReceiver(delay_seconds=0.01) as receiver:
        settings, engine = stored_run(tmp_path, receiver.url, webhook_concurrency=8)
        answers = []

        def crash_on_the_30th_answer(response):
            answers.append(response)
            if len(answers) == 30:
                raise RuntimeError("simulated crash")

        with httpx.Client(event_hooks={"response": [crash_on_the_30th_answer]}) as crashing_client:
            with pytest.raises(RuntimeError, match="simulated crash"):
                deliver_pending(engine, settings, client=crashing_client)
        report = deliver_pending(engine, settings)

        assert report.pending == {}
        assert set(receiver.processed) == webhook_keys(engine)  # nothing lost
        # resent: only the one whose answer the crash swallowed, never more than the pool had in flight
        assert 1 <= len(receiver.duplicates) <= 8 and len(set(receiver.duplicates)) == len(receiver.duplicates)


@pytest.mark.parametrize(("header", "seconds"), [("7", 7.0), ("0", 0.0), ("Sun, 06 Dec 2026 10:00:30 GMT", 30.0),
                                                 ("Sun, 06 Dec 2026 09:59:00 GMT", 0.0), ("soon", None), (None, None)])
def test_retry_after_is_read_as_seconds_or_an_http_date(header, seconds):
    now = datetime(2026, 12, 6, 10, 0, 0, tzinfo=timezone.utc)
    assert retry_after_seconds(header, now) == seconds


def test_backoff_doubles_with_jitter_and_is_capped():
    delays = [backoff_seconds(3, 1.0) for _ in range(200)]
    assert all(2.0 <= d <= 4.0 for d in delays) and len(set(delays)) > 100  # between half and all of 1 × 2²
    assert max(backoff_seconds(20, 1.0) for _ in range(50)) <= 60.0
