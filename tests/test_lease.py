"""Lease fencing with two real processes on one database (SQLite and PostgreSQL): a run renews its lease while
it delivers, and a run whose lease was taken over stops writing and sending instead of delivering tickets a
second time."""
import json
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from pipeline.storage import runlock
from pipeline.storage import store
from pipeline.config import PROJECT_ROOT, load_settings
from pipeline.delivery.outbox import deliver_pending
from ticket_helpers import COMPLAINTS, WebhookReceiver, process_file, write_complaints

DELIVER_AS_A = """
import json, sys
from pipeline.storage import runlock
from pipeline.storage import store
from pipeline.config import load_settings
from pipeline.delivery.outbox import deliver_pending
settings = load_settings(work_dir=sys.argv[1], webhooks={"*": {"url": sys.argv[2]}}, webhook_max_attempts=1,
                         database_url=sys.argv[3], webhook_concurrency=int(sys.argv[4]))
engine = store.connect(settings.resolved_database_url)
lease = runlock.acquire(engine, "run-A")
print("held", flush=True)
try:
    report = deliver_pending(engine, settings, keeper=runlock.LeaseKeeper(engine, lease, renew_every=0.2))
    print("delivered", json.dumps(report.as_dict()), flush=True)
except runlock.LeaseLostError as exc:
    print("lost:", exc, flush=True)
"""


@pytest.fixture
def pending_tickets(tmp_path, database_url):
    settings = load_settings(work_dir=tmp_path / "work", classifier="lexicon", database_url=database_url,
                             webhooks={"*": {"url": "http://127.0.0.1:9/"}})  # queues the webhook deliveries
    process_file(settings, write_complaints(tmp_path / "in.csv"))
    return settings


def _start_a(settings, url, concurrency: int = 1):
    """Run A delivering in its own process; one POST at a time unless told, so that it takes a while."""
    process = subprocess.Popen([sys.executable, "-c", DELIVER_AS_A, str(settings.work_dir), url,
                                settings.resolved_database_url, str(concurrency)], cwd=PROJECT_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout.readline() == b"held\n"
    return process


def test_renewing_a_lease_that_was_taken_over_fails(pending_tickets):
    first, second = (store.connect(pending_tickets.resolved_database_url) for _ in range(2))
    lease = runlock.acquire(first, "run-A")
    runlock.renew(first, lease)
    taken = runlock.acquire(second, "run-B", stale_after=timedelta(0))  # A stalled and was judged dead
    assert taken.abandoned == "run-A" and taken.generation == lease.generation + 1
    with pytest.raises(runlock.LeaseLostError, match="run-A lost its lease"):
        runlock.renew(first, lease)
    runlock.release(first, lease)  # a lost lease's release leaves the new holder's lease alone
    runlock.renew(second, taken)


@pytest.mark.slow
def test_a_long_delivery_keeps_its_lease(pending_tickets):
    """Delivery takes ~3 s against a slow receiver; a second process that treats a lease as stale after 1 s
    without renewal must find it held until A has delivered everything (A, exiting, may stop renewing)."""
    engine = store.connect(pending_tickets.resolved_database_url)
    with WebhookReceiver(delay_seconds=0.5) as receiver:
        process_a = _start_a(pending_tickets, receiver.url)
        started, refusals = time.monotonic(), 0
        while process_a.poll() is None:
            try:
                lease = runlock.acquire(engine, "run-B", stale_after=timedelta(seconds=1))
            except runlock.RunLockedError:
                refusals += 1
                time.sleep(0.2)
                continue
            # taken once A stopped renewing; had A still been delivering, its next write reports a lost lease
            runlock.release(engine, lease)
            break
        output = process_a.communicate(timeout=60)[0].decode()
        delivering_seconds = time.monotonic() - started
    assert output.startswith("delivered"), output
    assert delivering_seconds > 2.5 and refusals >= 3  # longer than the 1 s staleness, refused throughout
    assert len(receiver.processed) == len(COMPLAINTS) and receiver.duplicates == []


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_run_that_lost_its_lease_stops_delivering(pending_tickets, concurrency):
    engine = store.connect(pending_tickets.resolved_database_url)
    settings_b = load_settings(work_dir=pending_tickets.work_dir, webhook_max_attempts=1,
                               database_url=pending_tickets.resolved_database_url)
    with WebhookReceiver(delay_seconds=0.5) as receiver:
        settings_b = settings_b.model_copy(update={"webhooks": load_settings(
            webhooks={"*": {"url": receiver.url}}).webhooks})
        process_a = _start_a(pending_tickets, receiver.url, concurrency)
        deadline = time.monotonic() + 30
        while len(receiver.requests) < 2:  # A is delivering
            assert process_a.poll() is None and time.monotonic() < deadline, process_a.stdout.read().decode()
            time.sleep(0.05)
        lease_b = runlock.acquire(engine, "run-B", stale_after=timedelta(0))  # A judged dead while it works
        report = deliver_pending(engine, settings_b, keeper=runlock.LeaseKeeper(engine, lease_b))
        output = process_a.communicate(timeout=60)[0].decode()
    assert output.startswith("lost: run run-A lost its lease"), output
    assert report.pending == {}
    assert len(receiver.processed) == len(COMPLAINTS)
    # at most A's requests in flight at the takeover, resent with the same Idempotency-Key
    assert len(receiver.duplicates) <= concurrency
    sent = [request["key"] for request in receiver.requests]
    assert len(sent) <= len(COMPLAINTS) + concurrency
    assert all(json.loads(line)["ticket_id"] for line in pending_tickets.tickets_dir.joinpath(
        next(p.name for p in pending_tickets.tickets_dir.glob("*.jsonl"))).read_text().splitlines())
