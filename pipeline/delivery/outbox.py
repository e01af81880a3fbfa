"""Ticket delivery through the transactional outbox.

``process.build_records`` queues a ticket's deliveries (outbox entries) in the same transaction that
stores the ticket, so a stored ticket always has its deliveries queued. This module works that queue:
one JSONL file per queue under ``<outputs>/tickets/`` and one webhook POST per ticket for queues that
have a webhook. An entry is marked delivered only after the receiver has it; an entry that fails stays
pending and the next run (or ``complaints tickets redeliver``) tries it again, so nothing is lost.

Webhook POSTs run ``webhook_concurrency`` at a time (retries, backoff and ``Retry-After`` in
``pipeline/delivery/webhooks.py``); every database write stays in the calling thread, fenced by the run's
lease. File entries are written in bulk: for up to ``FILE_CHUNK`` tickets, two outbox updates and one append
and fsync per queue.

Nothing is delivered twice either. A webhook request carries the entry's ``Idempotency-Key``: when a
crash falls between the receiver's answer and our bookkeeping, the resent request has the same key and a
receiver that honours it ignores the copy. A file entry is counted as attempted (committed) before its
line is written, so after a crash the lines already in the file are found and not written again.

About 370 lines: queueing, file and webhook delivery and their fenced bookkeeping are one exactly-once
contract, read best in one place (the POST itself, retries and pacing are in ``webhooks``).
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter, defaultdict, deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Mapping, NamedTuple

import httpx
import pandas as pd
import sqlalchemy as sa

from pipeline.storage import store
from pipeline.config import Settings, WebhookTarget
from pipeline.delivery.webhooks import PostOutcome, ReceiverPace, answers_in_flight, post_with_retries
from pipeline.storage.runlock import LeaseKeeper, LeaseLostError

FILE = "file"
WEBHOOK = "webhook"
PENDING = "pending"
DELIVERED = "delivered"
ANY_QUEUE = "*"
MAX_REPORTED_ERRORS = 10
WEBHOOK_MARK_EVERY = 100
FILE_CHUNK = 5000  # file entries per bulk write: one append and fsync per queue, two outbox updates
WEBHOOK_CHUNK = 500


class TicketFileError(ValueError):
    """A queue's ticket file holds a line this product did not write; the message names file and line."""


def webhook_for(queue: str, webhooks: Mapping[str, WebhookTarget]) -> WebhookTarget | None:
    return webhooks.get(queue) or webhooks.get(ANY_QUEUE)


def idempotency_key(target: str, ticket_id, key_suffix: str = ""):
    """The key a receiver deduplicates a delivery by. ``ticket_id`` may be a string or a SQL column (the same
    concatenation then happens in the database: ``queue_again``)."""
    return f"{target}:" + ticket_id + key_suffix


def delivery_targets(queue: str, webhooks: Mapping[str, WebhookTarget]) -> tuple[str, ...]:
    """Where a queue's tickets go: always its file; the webhook too when the queue has one."""
    return (FILE, WEBHOOK) if webhook_for(queue, webhooks) else (FILE,)


def outbox_entries(ticket: dict, webhooks: Mapping[str, WebhookTarget], now: datetime) -> list[dict]:
    """A ticket's deliveries, one per ``delivery_targets`` of its queue."""
    return [{"ticket_id": ticket["ticket_id"], "target": target, "queue": ticket["queue"],
             "idempotency_key": idempotency_key(target, ticket["ticket_id"]), "status": PENDING, "attempts": 0,
             "created_at": now} for target in delivery_targets(ticket["queue"], webhooks)]


def escalation_entries(ticket_id: str, queue: str, webhooks: Mapping[str, WebhookTarget], now: datetime, *,
                       key_suffix: str) -> list[dict]:
    """The entries ``queue_again`` queues for one ticket, for a ticket escalated as it is built."""
    return [{**entry, "idempotency_key": idempotency_key(entry["target"], ticket_id, key_suffix)}
            for entry in outbox_entries({"ticket_id": ticket_id, "queue": queue}, webhooks, now)]


def queue_again(conn: sa.Connection, ticket_ids: list[str], queue: str, webhooks: Mapping[str, WebhookTarget],
                now: datetime, *, key_suffix: str) -> None:
    """Queue stored tickets' deliveries to ``queue`` once more (an escalation): the entries ``outbox_entries``
    gives, their idempotency keys ending in ``key_suffix``, one insert … select per target."""
    outbox, tickets = store.outbox, store.tickets
    for target in delivery_targets(queue, webhooks):
        key = idempotency_key(target, tickets.c.ticket_id, key_suffix)
        entries = sa.select(tickets.c.ticket_id, sa.literal(target), sa.literal(queue), key, sa.literal(PENDING),
                            sa.literal(0), sa.literal(now, sa.DateTime)).where(tickets.c.ticket_id.in_(ticket_ids))
        conn.execute(outbox.insert().from_select(
            ["ticket_id", "target", "queue", "idempotency_key", "status", "attempts", "created_at"], entries))


def ticket_file(tickets_dir: Path, queue: str) -> Path:
    return Path(tickets_dir) / (re.sub(r"[^\w.-]", "_", queue) + ".jsonl")


class PendingEntry(NamedTuple):  # a tuple: built per entry, a frozen dataclass cost ~3 µs each
    outbox_id: int
    ticket_id: str
    target: str
    queue: str
    idempotency_key: str
    attempts: int
    payload_json: str


@dataclass
class DeliveryReport:
    delivered: Counter = field(default_factory=Counter)  # target → entries delivered in this run
    recovered: int = 0  # file entries whose line an interrupted run had already written
    pending: dict = field(default_factory=dict)  # target → entries still pending afterwards
    errors: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        if message not in self.errors and len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(message)

    def as_dict(self) -> dict:
        return {"delivered": dict(self.delivered), "recovered_from_files": self.recovered,
                "pending": dict(self.pending), "errors": list(self.errors)}


def _pending_entries(engine: sa.Engine, target: str, after_id: int, limit: int,
                     queue: str | None) -> list[PendingEntry]:
    outbox, tickets = store.outbox, store.tickets
    statement = (sa.select(outbox.c.outbox_id, outbox.c.ticket_id, outbox.c.target, outbox.c.queue,
                           outbox.c.idempotency_key, outbox.c.attempts, tickets.c.payload_json)
                 .join(tickets, tickets.c.ticket_id == outbox.c.ticket_id)
                 .where(outbox.c.status == PENDING, outbox.c.target == target, outbox.c.outbox_id > after_id)
                 .order_by(outbox.c.outbox_id).limit(limit))
    if queue is not None:
        statement = statement.where(outbox.c.queue == queue)
    with engine.connect() as conn:
        return [PendingEntry(*row) for row in conn.execute(statement).tuples()]


def _outbox_id_in(engine: sa.Engine, ids: list[int]) -> sa.ColumnElement[bool]:
    """``outbox_id IN ids`` with the ids as one parameter (a JSON array on SQLite, an array on PostgreSQL): the
    statement's text stays the same for every chunk. Bound one by one, 5,000 parameters cost SQLAlchemy's
    compiler more than the update; written into the statement, every chunk was a new statement, and each
    connection's cache of prepared statements held ~1 MB per chunk (+185 MB over a 1M-entry delivery, now +47)."""
    column = store.outbox.c.outbox_id
    ids = [int(outbox_id) for outbox_id in ids]
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.bindparam("outbox_ids", ids, type_=ARRAY(sa.Integer)))
    listed = sa.select(sa.column("value")).select_from(sa.func.json_each(sa.bindparam("outbox_ids", json.dumps(ids))))
    return column.in_(listed.scalar_subquery())


def _update(engine: sa.Engine, entries: list[PendingEntry], keeper: LeaseKeeper | None, **values) -> None:
    """Update outbox entries; with a lease keeper, only while the lease is still this run's (fenced)."""
    statement = store.outbox.update().where(_outbox_id_in(engine, [entry.outbox_id for entry in entries]))
    if keeper is not None:
        statement = statement.where(keeper.lease.still_held())
    with engine.begin() as conn:
        updated = conn.execute(statement.values(**values)).rowcount
    if keeper is not None and updated != len(entries):
        raise LeaseLostError(f"run {keeper.lease.run_id} lost its lease to another run during delivery; it stops "
                             "here and the other run delivers what is still pending")


def _mark_delivered(engine: sa.Engine, entries: list[PendingEntry], attempts_made: int,
                    keeper: LeaseKeeper | None) -> None:
    _update(engine, entries, keeper, status=DELIVERED, delivered_at=store.utcnow(), last_error=None,
            attempts=store.outbox.c.attempts + attempts_made)


def _record_failure(engine: sa.Engine, entry: PendingEntry, attempts_made: int, error: str,
                    keeper: LeaseKeeper | None) -> None:
    _update(engine, [entry], keeper, attempts=store.outbox.c.attempts + attempts_made, last_error=error)


def _drop_torn_last_line(path: Path) -> None:
    """A crash in the middle of a write can leave a last line without its newline: cut it off (its
    entry is still pending and is written again whole)."""
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
    data = path.read_bytes()
    with path.open("r+b") as handle:
        handle.truncate(data.rfind(b"\n") + 1)


def _ticket_ids_in(path: Path) -> set[str]:
    ids = set()
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            try:
                ids.add(json.loads(line)["ticket_id"])
            except (ValueError, KeyError, TypeError) as exc:
                raise TicketFileError(
                    f"{path}: line {line_number} is not a ticket written by this product ({exc}); "
                    "repair or remove that line, then run `complaints tickets redeliver`") from exc
    return ids


# JSON leaves these unescaped, but many line readers (Python's str.splitlines among them) break lines there.
# A regex, not str.translate: translate took 0.2 ms per Chinese ticket line, most of a file delivery's time.
_LINE_BREAKING = re.compile("[\x85\u2028\u2029]")


def _escape_line_breaks(text: str) -> str:
    if not any(character in text for character in "\x85\u2028\u2029"):  # a substring search: far quicker
        return text
    return _LINE_BREAKING.sub(lambda match: f"\\u{ord(match[0]):04x}", text)


def _append_lines(path: Path, lines: list[str]) -> None:
    if not lines:
        return
    with path.open("ab") as handle:  # the lines joined first: one search of the whole block, not one per line
        handle.write(_escape_line_breaks("\n".join(lines) + "\n").encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())


def _deliver_files(engine: sa.Engine, entries: list[PendingEntry], tickets_dir: Path,
                   report: DeliveryReport, keeper: LeaseKeeper | None) -> None:
    by_queue: dict[str, list[PendingEntry]] = defaultdict(list)
    for entry in entries:
        by_queue[entry.queue].append(entry)
    _update(engine, entries, keeper, attempts=store.outbox.c.attempts + 1)  # committed (fenced) before the writes
    for queue, group in by_queue.items():
        path = ticket_file(tickets_dir, queue)
        path.parent.mkdir(parents=True, exist_ok=True)
        written: set[str] = set()
        if path.exists() and path.stat().st_size:
            _drop_torn_last_line(path)
            if any(entry.attempts for entry in group):  # an earlier run may have written these lines
                written = _ticket_ids_in(path)
        fresh = [entry for entry in group if entry.ticket_id not in written]
        _append_lines(path, [entry.payload_json for entry in fresh])
        report.delivered[FILE] += len(fresh)
        report.recovered += len(group) - len(fresh)
    _mark_delivered(engine, entries, 0, keeper)


def _deliver_webhooks(engine: sa.Engine, entries: list[PendingEntry], settings: Settings,
                      report: DeliveryReport, client: httpx.Client, unavailable: set[str],
                      paces: dict[str, ReceiverPace], keeper: LeaseKeeper | None) -> None:
    """POST the entries, at most ``webhook_concurrency`` at a time; each entry is sent (with its retries)
    once per call. Successes are marked in groups (one commit for all answered since the last, not one per
    POST); if the process dies before a group is marked, its requests are resent with the same
    Idempotency-Key."""
    answered: dict[int, list[PendingEntry]] = defaultdict(list)  # attempts it took → entries
    waiting = deque(entries)
    in_flight: dict[Future, PendingEntry] = {}

    def mark_answered() -> None:
        for attempts, group in answered.items():
            _mark_delivered(engine, group, attempts, keeper)
        answered.clear()

    def settle(entry: PendingEntry, outcome: PostOutcome) -> None:
        target = webhook_for(entry.queue, settings.webhooks)
        if outcome.delivered:
            answered[outcome.attempts].append(entry)
            report.delivered[WEBHOOK] += 1
            return
        _record_failure(engine, entry, outcome.attempts, outcome.error, keeper)
        report.error(f"{target.url}: {outcome.error}")
        if outcome.receiver_down:  # leave the rest for the next run instead of waiting out every retry
            unavailable.add(target.url)

    with ThreadPoolExecutor(max_workers=settings.webhook_concurrency, thread_name_prefix="webhook") as pool:
        try:
            while waiting or in_flight:
                while waiting and len(in_flight) < settings.webhook_concurrency:
                    entry = waiting.popleft()
                    request = _webhook_request(engine, entry, settings, report, unavailable, keeper)
                    if request is not None:
                        url, headers = request
                        in_flight[pool.submit(
                            post_with_retries, client, url, entry.payload_json.encode("utf-8"), headers,
                            max_attempts=settings.webhook_max_attempts, first_delay=settings.webhook_backoff_seconds,
                            max_wait_seconds=settings.webhook_max_wait_seconds, pace=paces[url])] = entry
                if not in_flight:
                    continue
                # wake up to renew the lease even while every request in flight is slow
                done, _ = wait(in_flight, timeout=keeper and keeper.renew_every, return_when=FIRST_COMPLETED)
                for future in done:
                    settle(in_flight.pop(future), future.result())
                if keeper is not None or sum(len(group) for group in answered.values()) >= WEBHOOK_MARK_EVERY:
                    # under a lease, answers are marked before more is sent: the fenced write finds a lost lease
                    # at once (LeaseLostError), so the new holder resends at most what was in flight
                    mark_answered()
                if keeper is not None and keeper.due():
                    keeper.renew()
        except BaseException:  # the answers already in flight are marked with the rest: fewer resent next time
            for entry, outcome in answers_in_flight(in_flight):
                answered[outcome.attempts].append(entry)
            raise
        finally:
            mark_answered()


def _webhook_request(engine: sa.Engine, entry: PendingEntry, settings: Settings, report: DeliveryReport,
                     unavailable: set[str], keeper: LeaseKeeper | None) -> tuple[str, dict[str, str]] | None:
    """The URL and headers to POST the entry with, or None when it cannot be sent now (recorded why)."""
    target = webhook_for(entry.queue, settings.webhooks)
    if target is None:
        error = f"no webhook configured for queue {entry.queue!r} (settings: webhooks)"
        _record_failure(engine, entry, 0, error, keeper)
        report.error(error)
        return None
    if target.url in unavailable:
        return None
    headers = {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": entry.idempotency_key}
    if target.token_env:
        token = os.environ.get(target.token_env)
        if not token:
            error = f"environment variable {target.token_env} (bearer token for {target.url}) is not set"
            _record_failure(engine, entry, 0, error, keeper)
            report.error(error)
            unavailable.add(target.url)
            return None
        headers["Authorization"] = f"Bearer {token}"
    return target.url, headers


def pending_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(store.outbox.c.target, sa.func.count())
                            .where(store.outbox.c.status == PENDING).group_by(store.outbox.c.target))
        return {target: count for target, count in rows}


def deliver_pending(engine: sa.Engine, settings: Settings, *, queue: str | None = None,
                    client: httpx.Client | None = None, keeper: LeaseKeeper | None = None) -> DeliveryReport:
    """Deliver every pending outbox entry (of one queue, if given), oldest first: the files, then the
    webhooks. ``keeper``: the run's lease, renewed as delivery goes on; every outbox write is fenced by it
    (LeaseLostError once lost)."""
    report = DeliveryReport()
    unavailable: set[str] = set()  # webhook URLs that failed every attempt during this call
    paces: dict[str, ReceiverPace] = defaultdict(ReceiverPace)
    own_client = client is None
    try:
        for target, chunk_size in ((FILE, FILE_CHUNK), (WEBHOOK, WEBHOOK_CHUNK)):
            last_id = 0
            while entries := _pending_entries(engine, target, last_id, chunk_size, queue):
                last_id = entries[-1].outbox_id
                if keeper is not None:
                    keeper.renew_if_due()
                if target == FILE:
                    _deliver_files(engine, entries, settings.tickets_dir, report, keeper)
                else:
                    client = client or httpx.Client(timeout=settings.webhook_timeout_seconds, limits=httpx.Limits(
                        max_connections=settings.webhook_concurrency,
                        max_keepalive_connections=settings.webhook_concurrency))
                    _deliver_webhooks(engine, entries, settings, report, client, unavailable, paces, keeper)
    finally:
        if own_client and client is not None:
            client.close()
    report.pending = pending_counts(engine)
    return report


def delivery_summary(report: DeliveryReport, settings: Settings) -> dict:
    """The run summary's delivery keys."""
    return {"ticket_dir": str(settings.tickets_dir), "deliveries": report.as_dict()}


def ticket_overview(engine: sa.Engine, *, queue: str | None = None, status: str | None = None,
                    delivery: str | None = None, limit: int | None = None) -> pd.DataFrame:
    """Stored tickets, most urgent first, with their delivery states ('file:delivered webhook:pending')."""
    tickets, outbox = store.tickets, store.outbox
    statement = sa.select(tickets).order_by(tickets.c.priority, tickets.c.due_at, tickets.c.ticket_id)
    if queue is not None:
        statement = statement.where(tickets.c.queue == queue)
    if status is not None:
        statement = statement.where(tickets.c.status == status)
    if delivery is not None:
        statement = statement.where(sa.exists().where(outbox.c.ticket_id == tickets.c.ticket_id,
                                                      outbox.c.status == delivery))
    if limit is not None:
        statement = statement.limit(limit)
    states: dict[str, list[str]] = defaultdict(list)
    with engine.connect() as conn:
        frame = pd.read_sql(statement, conn)
        ids = frame["ticket_id"].tolist()
        for start in range(0, len(ids), 500):
            rows = conn.execute(sa.select(outbox.c.ticket_id, outbox.c.target, outbox.c.status)
                                .where(outbox.c.ticket_id.in_(ids[start:start + 500]))
                                .order_by(outbox.c.outbox_id))
            for ticket_id, target, state in rows:
                states[ticket_id].append(f"{target}:{state}")
    frame["deliveries"] = [" ".join(states[ticket_id]) for ticket_id in frame["ticket_id"]]
    return frame
