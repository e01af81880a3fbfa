"""Ticket delivery through the transactional outbox.

``process.build_records`` queues a ticket's deliveries (outbox entries) in the same transaction that
stores the ticket, so a stored ticket always has its deliveries queued. This module works that queue:
one JSONL file per queue under ``<outputs>/tickets/`` and one webhook POST per ticket for queues that
have a webhook. An entry is marked delivered only after the receiver has it; an entry that fails stays
pending and the next run (or ``complaints tickets redeliver``) tries it again, so nothing is lost.

Nothing is delivered twice either. A webhook request carries the entry's ``Idempotency-Key``: when a
crash falls between the receiver's answer and our bookkeeping, the resent request has the same key and a
receiver that honours it ignores the copy. A file entry is counted as attempted (committed) before its
line is written, so after a crash the lines already in the file are found and not written again.
"""
from __future__ import annotations

import json
import os
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Mapping

import httpx
import pandas as pd
import sqlalchemy as sa

from pipeline.storage import store
from pipeline.config import Settings, WebhookTarget
from pipeline.storage.runlock import LeaseKeeper, LeaseLostError

FILE = "file"
WEBHOOK = "webhook"
PENDING = "pending"
DELIVERED = "delivered"
ANY_QUEUE = "*"
MAX_BACKOFF_SECONDS = 60.0
RETRYABLE_STATUS = {408, 425, 429}  # plus every 5xx
MAX_REPORTED_ERRORS = 10
WEBHOOK_MARK_EVERY = 100


class TicketFileError(ValueError):
    """A queue's ticket file holds a line this product did not write; the message names file and line."""


def webhook_for(queue: str, webhooks: Mapping[str, WebhookTarget]) -> WebhookTarget | None:
    return webhooks.get(queue) or webhooks.get(ANY_QUEUE)


def outbox_entries(ticket: dict, webhooks: Mapping[str, WebhookTarget], now: datetime) -> list[dict]:
    """A ticket's deliveries: always its queue's file; the webhook too when its queue has one."""
    targets = [FILE] + ([WEBHOOK] if webhook_for(ticket["queue"], webhooks) else [])
    return [{"ticket_id": ticket["ticket_id"], "target": target, "queue": ticket["queue"],
             "idempotency_key": f"{target}:{ticket['ticket_id']}", "status": PENDING, "attempts": 0,
             "created_at": now} for target in targets]


def ticket_file(tickets_dir: Path, queue: str) -> Path:
    return Path(tickets_dir) / (re.sub(r"[^\w.-]", "_", queue) + ".jsonl")


@dataclass(frozen=True)
class PendingEntry:
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


@dataclass(frozen=True)
class PostOutcome:
    delivered: bool
    attempts: int
    error: str | None = None
    receiver_down: bool = False  # every attempt failed on the network or with a retryable status


def post_with_retries(client: httpx.Client, url: str, body: bytes, headers: dict[str, str], *,
                      max_attempts: int, backoff_seconds: float) -> PostOutcome:
    """POST until a 2xx answer; retry network errors, timeouts, 5xx, 408, 425 and 429 with exponential
    backoff. Any other 4xx is not retried: the same request would be refused again."""
    error = None
    for attempt in range(1, max_attempts + 1):
        try:
            response = client.post(url, content=body, headers=headers)
        except httpx.TransportError as exc:
            error = f"{type(exc).__name__}: {exc}"
        else:
            if response.is_success:
                return PostOutcome(True, attempt)
            error = f"HTTP {response.status_code} {response.reason_phrase}".strip()
            if response.status_code < 500 and response.status_code not in RETRYABLE_STATUS:
                return PostOutcome(False, attempt, error)
        if attempt < max_attempts:
            time.sleep(min(backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS))
    return PostOutcome(False, max_attempts, error, receiver_down=True)


def _pending_entries(engine: sa.Engine, after_id: int, limit: int, queue: str | None) -> list[PendingEntry]:
    outbox, tickets = store.outbox, store.tickets
    statement = (sa.select(outbox.c.outbox_id, outbox.c.ticket_id, outbox.c.target, outbox.c.queue,
                           outbox.c.idempotency_key, outbox.c.attempts, tickets.c.payload_json)
                 .join(tickets, tickets.c.ticket_id == outbox.c.ticket_id)
                 .where(outbox.c.status == PENDING, outbox.c.outbox_id > after_id)
                 .order_by(outbox.c.outbox_id).limit(limit))
    if queue is not None:
        statement = statement.where(outbox.c.queue == queue)
    with engine.connect() as conn:
        return [PendingEntry(**row._mapping) for row in conn.execute(statement)]


def _update(engine: sa.Engine, entries: list[PendingEntry], keeper: LeaseKeeper | None, **values) -> None:
    """Update outbox entries; with a lease keeper, only while the lease is still this run's (fenced)."""
    statement = store.outbox.update().where(store.outbox.c.outbox_id.in_([e.outbox_id for e in entries]))
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
_LINE_BREAKING = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _append_lines(path: Path, lines: list[str]) -> None:
    with path.open("ab") as handle:
        handle.write("".join(line.translate(_LINE_BREAKING) + "\n" for line in lines).encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())


def _deliver_files(engine: sa.Engine, entries: list[PendingEntry], tickets_dir: Path,
                   report: DeliveryReport, keeper: LeaseKeeper | None) -> None:
    by_queue: dict[str, list[PendingEntry]] = defaultdict(list)
    for entry in entries:
        by_queue[entry.queue].append(entry)
    for queue, group in by_queue.items():
        path = ticket_file(tickets_dir, queue)
        path.parent.mkdir(parents=True, exist_ok=True)
        _update(engine, group, keeper, attempts=store.outbox.c.attempts + 1)  # committed (fenced) before the write
        written: set[str] = set()
        if path.exists() and path.stat().st_size:
            _drop_torn_last_line(path)
            if any(entry.attempts for entry in group):  # an earlier run may have written these lines
                written = _ticket_ids_in(path)
        fresh = [entry for entry in group if entry.ticket_id not in written]
        _append_lines(path, [entry.payload_json for entry in fresh])
        _mark_delivered(engine, group, 0, keeper)
        report.delivered[FILE] += len(fresh)
        report.recovered += len(group) - len(fresh)


def _deliver_webhooks(engine: sa.Engine, entries: list[PendingEntry], settings: Settings,
                      report: DeliveryReport, client: httpx.Client, unavailable: set[str],
                      keeper: LeaseKeeper | None) -> None:
    # Successes are marked in groups (one commit each, not one per POST); if the process dies before a
    # group is marked, its requests are resent with the same Idempotency-Key.
    answered: dict[int, list[PendingEntry]] = defaultdict(list)  # attempts it took → entries

    def mark_answered() -> None:
        for attempts, group in answered.items():
            _mark_delivered(engine, group, attempts, keeper)
        answered.clear()

    try:
        for entry in entries:
            if keeper is not None and keeper.due():
                mark_answered()  # fenced: what was sent is marked while the lease is still ours
                keeper.renew()  # LeaseLostError: stop before sending what the new holder will send
            _deliver_one_webhook(engine, entry, settings, report, client, unavailable, answered, keeper)
            if sum(len(group) for group in answered.values()) >= WEBHOOK_MARK_EVERY:
                mark_answered()
    finally:
        mark_answered()


def _deliver_one_webhook(engine: sa.Engine, entry: PendingEntry, settings: Settings, report: DeliveryReport,
                         client: httpx.Client, unavailable: set[str],
                         answered: dict[int, list[PendingEntry]], keeper: LeaseKeeper | None) -> None:
    target = webhook_for(entry.queue, settings.webhooks)
    if target is None:
        error = f"no webhook configured for queue {entry.queue!r} (settings: webhooks)"
        _record_failure(engine, entry, 0, error, keeper)
        report.error(error)
        return
    if target.url in unavailable:
        return
    headers = {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": entry.idempotency_key}
    if target.token_env:
        token = os.environ.get(target.token_env)
        if not token:
            error = f"environment variable {target.token_env} (bearer token for {target.url}) is not set"
            _record_failure(engine, entry, 0, error, keeper)
            report.error(error)
            unavailable.add(target.url)
            return
        headers["Authorization"] = f"Bearer {token}"
    outcome = post_with_retries(client, target.url, entry.payload_json.encode("utf-8"), headers,
                                max_attempts=settings.webhook_max_attempts,
                                backoff_seconds=settings.webhook_backoff_seconds)
    if outcome.delivered:
        answered[outcome.attempts].append(entry)
        report.delivered[WEBHOOK] += 1
        return
    _record_failure(engine, entry, outcome.attempts, outcome.error, keeper)
    report.error(f"{target.url}: {outcome.error}")
    if outcome.receiver_down:  # leave the rest for the next run instead of waiting out every retry
        unavailable.add(target.url)


def pending_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(store.outbox.c.target, sa.func.count())
                            .where(store.outbox.c.status == PENDING).group_by(store.outbox.c.target))
        return {target: count for target, count in rows}


def deliver_pending(engine: sa.Engine, settings: Settings, *, queue: str | None = None,
                    client: httpx.Client | None = None, chunk_size: int = 500,
                    keeper: LeaseKeeper | None = None) -> DeliveryReport:
    """Deliver every pending outbox entry (of one queue, if given), oldest first. ``keeper``: the run's
    lease, renewed as delivery goes on; every outbox write is fenced by it (LeaseLostError once lost)."""
    report = DeliveryReport()
    unavailable: set[str] = set()  # webhook URLs that failed every attempt during this call
    own_client = client is None
    client = client or httpx.Client(timeout=settings.webhook_timeout_seconds)
    try:
        last_id = 0
        while entries := _pending_entries(engine, last_id, chunk_size, queue):
            last_id = entries[-1].outbox_id
            if keeper is not None:
                keeper.renew_if_due()
            _deliver_files(engine, [e for e in entries if e.target == FILE], settings.tickets_dir, report, keeper)
            _deliver_webhooks(engine, [e for e in entries if e.target == WEBHOOK], settings, report, client,
                              unavailable, keeper)
    finally:
        if own_client:
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
