"""Deadlines that mean something: each ticket's two clocks, breaches and near-breaches, and escalation.

Both clocks start when the complaint was made (its ``created_at``; without one, when the product first
read it), because that is when the customer started waiting — not when the nightly run got to it:

* respond: the customer hears from us (``acknowledged``, or ``resolved`` on the spot) within the
  ``[sla] acknowledge_hours`` of the ticket's priority (a queue may set its own);
* resolve: ``resolved`` within the route's ``sla_hours`` (``routing.toml``; overrides and escalation rules
  shorten it).

A queue with ``business_hours = true`` under ``[sla.queues]`` counts only the working hours of
``[sla.business_hours]`` in ``Settings.timezone``; the others run around the clock. A clock is breached
when its deadline passed before the step was done, near breach once ``near_breach_share`` of its time is
used. The nightly run escalates tickets that passed their resolve deadline unresolved, once each, per
the ``[breach]`` rule of ``escalation.toml``, and reports those that breached since the last run: a
ticket built past its deadline already (a complaint older than its deadline) by the batch that builds it
(``late_when_built``), the others by the sweep after the batches (``escalate_breaches``).

About 450 lines: the clock rules and the two places that apply them (the batch's breach rule and the sweep)
are kept together so they cannot drift apart; what the sweep has the database count is in ``clock_counts``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone as dt_timezone
from typing import TYPE_CHECKING, Iterator, Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:  # only for annotations: the CLI's start-up stays free of SQLAlchemy
    import sqlalchemy as sa


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RESPOND, RESOLVE = "respond", "resolve"
UNRESOLVED = ("open", "acknowledged", "reopened")
UNACKNOWLEDGED = ("open",)
MAX_CALENDAR_DAYS = 3700  # ten years of searching for working hours means the calendar has none
CHUNK = 5000  # tickets per statement: under SQLite's limit of bound parameters (32,766)


class BusinessHours(BaseModel):
    model_config = ConfigDict(extra="forbid")
    days: list[Weekday] = Field(default=["mon", "tue", "wed", "thu", "fri"], min_length=1)
    start: time = time(9, 0)
    end: time = time(18, 0)
    holidays: list[date] = []

    @model_validator(mode="after")
    def _ends_after_start(self) -> "BusinessHours":
        if self.end <= self.start:
            raise ValueError(f"end {self.end:%H:%M} must be after start {self.start:%H:%M}")
        return self


def _priority_hours(hours: dict[int, float]) -> dict[int, float]:
    bad = [p for p in hours if not 1 <= p <= 4]
    if bad:
        raise ValueError(f"priorities are 1 … 4, not {bad}")
    if any(h <= 0 for h in hours.values()):
        raise ValueError("hours must be greater than 0")
    return hours


class QueueClock(BaseModel):
    model_config = ConfigDict(extra="forbid")
    business_hours: bool = False
    acknowledge_hours: dict[int, float] = {}

    @model_validator(mode="after")
    def _valid_priorities(self) -> "QueueClock":
        _priority_hours(self.acknowledge_hours)
        return self


_AROUND_THE_CLOCK = QueueClock()  # a queue without rules of its own; built per ticket, it was ~15% of record building


class SlaRules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    acknowledge_hours: dict[int, float] = {1: 1, 2: 4, 3: 8, 4: 24}
    near_breach_share: float = Field(default=0.8, gt=0, lt=1)
    business_hours: BusinessHours = BusinessHours()
    queues: dict[str, QueueClock] = {}

    @model_validator(mode="after")
    def _every_priority(self) -> "SlaRules":
        _priority_hours(self.acknowledge_hours)
        missing = [p for p in (1, 2, 3, 4) if p not in self.acknowledge_hours]
        if missing:
            raise ValueError(f"acknowledge_hours needs every priority 1 … 4; missing {missing}")
        return self


class SlaClock:
    """Deadlines and elapsed clock time for a queue. Times in and out are naive UTC, as stored."""

    def __init__(self, rules: SlaRules, timezone: str):
        self.rules = rules
        self.zone = ZoneInfo(timezone)
        hours = rules.business_hours
        self._working_days = {WEEKDAYS.index(day) for day in hours.days}
        self._holidays = set(hours.holidays)

    def business_hours(self, queue: str) -> bool:
        return self.rules.queues.get(queue, _AROUND_THE_CLOCK).business_hours

    def acknowledge_hours(self, queue: str, priority: int) -> float:
        own = self.rules.queues.get(queue, _AROUND_THE_CLOCK).acknowledge_hours
        return own.get(priority, self.rules.acknowledge_hours[priority])

    def _spans(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The working hours (UTC, naive) of each working day from the local day of ``start`` on."""
        hours = self.rules.business_hours
        day = start.replace(tzinfo=dt_timezone.utc).astimezone(self.zone).date()
        for _ in range(MAX_CALENDAR_DAYS):
            if day.weekday() in self._working_days and day not in self._holidays:
                yield (self._utc(datetime.combine(day, hours.start)), self._utc(datetime.combine(day, hours.end)))
            day += timedelta(days=1)
        raise ValueError("the business-hours calendar has no working hours in ten years: check [sla.business_hours]")

    def _utc(self, local: datetime) -> datetime:
        return local.replace(tzinfo=self.zone).astimezone(dt_timezone.utc).replace(tzinfo=None)

    def due(self, start: datetime, hours: float, queue: str) -> datetime:
        """When ``hours`` of the queue's clock have passed after ``start``."""
        if not self.business_hours(queue):
            return start + timedelta(hours=hours)
        remaining = timedelta(hours=hours)
        for span_start, span_end in self._spans(start):
            begin = max(span_start, start)
            if span_end <= begin:
                continue
            if span_end - begin >= remaining:
                return begin + remaining
            remaining -= span_end - begin
        raise AssertionError("unreachable: _spans raises first")

    def elapsed_hours(self, start: datetime, end: datetime, queue: str) -> float:
        """Hours of the queue's clock between ``start`` and ``end``."""
        if end <= start:
            return 0.0
        if not self.business_hours(queue):
            return (end - start) / timedelta(hours=1)
        total = timedelta()
        for span_start, span_end in self._spans(start):
            if span_start >= end:
                break
            total += max(timedelta(), min(span_end, end) - max(span_start, start))
        return total / timedelta(hours=1)

    def deadlines(self, received_at: datetime, queue: str, priority: int, resolve_hours: float) -> dict:
        return {"acknowledge_due_at": self.due(received_at, self.acknowledge_hours(queue, priority), queue),
                "due_at": self.due(received_at, resolve_hours, queue)}


def clock_start(complaint_time: datetime | None, now: datetime) -> datetime:
    """When a ticket's clocks start: the complaint's own time, or ``now`` without one (or a future one)."""
    if complaint_time is None or pd.isna(complaint_time):
        return now
    return min(pd.Timestamp(complaint_time).to_pydatetime(), now)


# ---------------------------------------------------------------- breach and near-breach lists

LIST_COLUMNS = ["ticket_id", "complaint_id", "queue", "priority", "cause", "status", "clock", "received_at",
                "due_at", "hours_allowed", "hours_used", "hours_left"]


BREACH_COLUMNS = ["ticket_id", "queue", "cause", "priority", "due_at", "hours_left"]  # kept of a new breach's clocks
CLOCK_READ_CHUNK = 20_000  # tickets per read: the sweep's memory stays flat however many are open


def open_clocks(engine: sa.Engine, clock: SlaClock, now: datetime, queue: str | None = None) -> pd.DataFrame:
    """Every clock still running on an unfinished ticket (respond: not yet acknowledged; resolve: not yet
    resolved), with the hours it allows, has used and has left (negative: overdue), most overdue first."""
    chunks = [chunk[LIST_COLUMNS] for chunk in open_clock_chunks(engine, clock, now, queue) if len(chunk)]
    clocks = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=LIST_COLUMNS)
    return clocks.sort_values(["hours_left", "priority", "ticket_id"]).reset_index(drop=True)


def open_clock_chunks(engine: sa.Engine, clock: SlaClock, now: datetime, queue: str | None = None, *,
                      business_hours: bool | None = None, new_breaches_only: bool = False) -> Iterator[pd.DataFrame]:
    """The clocks of ``open_clocks``, ``CLOCK_READ_CHUNK`` tickets at a time, unsorted, each with
    ``recorded``: whether ``sla_breaches`` already holds the ticket (found by an earlier sweep).
    ``business_hours``: only the tickets of queues that count working hours (True) or of the others (False);
    ``new_breaches_only``: only tickets past their resolve deadline that no sweep recorded yet."""
    import sqlalchemy as sa  # here, not at the top: the router needs this module's clocks, not the database

    from pipeline.storage import store

    tickets = store.tickets

    def as_text(column):  # times read as text and parsed by pandas in one go
        return sa.type_coerce(column, sa.String)

    recorded = sa.exists().where(store.sla_breaches.c.ticket_id == tickets.c.ticket_id)
    statement = (sa.select(tickets.c.ticket_id, tickets.c.complaint_id, tickets.c.queue, tickets.c.priority,
                           sa.func.coalesce(tickets.c.corrected_cause, tickets.c.cause).label("cause"),
                           tickets.c.status, as_text(sa.func.coalesce(tickets.c.received_at, tickets.c.created_at))
                           .label("received_at"), as_text(tickets.c.acknowledge_due_at).label("acknowledge_due_at"),
                           as_text(tickets.c.due_at).label("due_at"), recorded.label("recorded"))
                 .where(tickets.c.status.in_(UNRESOLVED)))
    if queue is not None:
        statement = statement.where(tickets.c.queue == queue)
    if business_hours is not None:
        business = tickets.c.queue.in_(business_queues(clock))
        statement = statement.where(business if business_hours else sa.not_(business))
    if new_breaches_only:
        statement = statement.where(tickets.c.due_at < now, sa.not_(recorded))
    with engine.connect() as conn:  # streamed: psycopg would otherwise fetch every row at once
        for frame in pd.read_sql(statement, conn.execution_options(stream_results=True), chunksize=CLOCK_READ_CHUNK):
            yield _clocks(frame, clock, now)


def business_queues(clock: SlaClock) -> list[str]:
    return [name for name, rules in clock.rules.queues.items() if rules.business_hours]


def _clocks(frame: pd.DataFrame, clock: SlaClock, now: datetime) -> pd.DataFrame:
    """The respond and resolve clocks of a chunk of unfinished tickets."""
    for column in ("received_at", "acknowledge_due_at", "due_at"):
        frame[column] = pd.to_datetime(frame[column], format="ISO8601")
    frame["recorded"] = frame["recorded"].astype(bool)
    respond = frame[frame["status"].isin(UNACKNOWLEDGED) & frame["acknowledge_due_at"].notna()]
    parts = [respond.assign(clock=RESPOND, due_at=respond["acknowledge_due_at"]), frame.assign(clock=RESOLVE)]
    clocks = pd.concat(parts, ignore_index=True).drop(columns="acknowledge_due_at")
    received, due, queues = clocks["received_at"], clocks["due_at"], clocks["queue"]
    now_column = pd.Series(pd.Timestamp(now), index=clocks.index)
    clocks["hours_allowed"] = elapsed_hours_of(clock, received, due, queues)
    clocks["hours_used"] = elapsed_hours_of(clock, received, now_column, queues)
    clocks["hours_left"] = np.where(  # minus the clock's hours since the deadline once it passed
        due > now_column, elapsed_hours_of(clock, now_column, due, queues), -elapsed_hours_of(clock, due, now_column, queues))
    return clocks


def elapsed_hours_of(clock: SlaClock, starts: pd.Series, ends: pd.Series, queues: pd.Series) -> np.ndarray:
    """``clock.elapsed_hours`` of each row: a subtraction, or the calendar walk for business-hours queues."""
    hours = ((ends - starts) / pd.Timedelta(hours=1)).clip(lower=0).to_numpy(dtype=float, copy=True)
    business = queues.isin([q for q in queues.unique() if clock.business_hours(q)]).to_numpy()
    for i in np.flatnonzero(business):
        hours[i] = clock.elapsed_hours(starts.iloc[i], ends.iloc[i], queues.iloc[i])
    return hours


def breach_lists(clocks: pd.DataFrame, near_breach_share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(breached: past the deadline, not done; near breach: ≥ near_breach_share of the time used)."""
    breached = clocks[clocks["hours_left"] < 0]
    near = clocks[(clocks["hours_left"] >= 0) & (clocks["hours_used"] >= near_breach_share * clocks["hours_allowed"])]
    return breached.reset_index(drop=True), near.reset_index(drop=True)


# ---------------------------------------------------------------- escalation of breached tickets

def breach_reason(rule, hours_late: float) -> str:
    return f"{rule.code}: {rule.reason}（已超时 {hours_late:.0f} 小时）"


@dataclass(frozen=True)
class BuiltLate:
    """A ticket already past its resolve deadline when it is built (a complaint older than its deadline):
    recorded and escalated by the batch that builds it, as the sweep would record and escalate it that night."""

    due_at: datetime
    hours_late: float
    escalated: bool
    priority_before: int
    priority_after: int
    reason: str  # added to the ticket's escalation reasons when escalated
    steps: tuple[str, ...]

    def record(self, *, ticket_id: str, queue: str, cause: str, run_id: str, now: datetime) -> dict:
        """Its ``sla_breaches`` row."""
        return {"ticket_id": ticket_id, "queue": queue, "cause": cause, "due_at": self.due_at, "detected_at": now,
                "run_id": run_id, "priority_before": self.priority_before, "priority_after": self.priority_after,
                "hours_late": self.hours_late, "escalated": self.escalated}


def late_when_built(rule, clock: SlaClock, *, due_at: datetime, queue: str, priority: int,
                    now: datetime) -> BuiltLate | None:
    """The breach of a ticket built at ``now`` whose resolve deadline ``due_at`` passed already — the sweep's
    rule (``escalate_breaches``) applied at once; None when the deadline is still ahead or there is no rule."""
    if rule is None or due_at >= now:
        return None
    hours_late = float(np.round(clock.elapsed_hours(due_at, now, queue), 1))  # as the sweep's pandas rounds
    escalated = now - due_at <= timedelta(days=rule.max_days_late)
    return BuiltLate(due_at=due_at, hours_late=hours_late, escalated=escalated, priority_before=priority,
                     priority_after=max(1, priority - rule.raise_priority_by) if escalated else priority,
                     reason=breach_reason(rule, hours_late), steps=tuple(rule.steps))


RUN_BREACH_COLUMNS = ["cause", "queue", "escalated", "tickets", "hours_late"]


@dataclass(frozen=True)
class BreachSweep:
    found: pd.DataFrame  # tickets this sweep found past their resolve deadline for the first time (escalated or not)
    breached_open: int  # unresolved tickets past their resolve deadline, all told
    respond_breached: int  # unacknowledged tickets past their respond deadline
    near_breach: int
    # every breach the run recorded — its batches' (tickets built late) and this sweep's — counted per cause,
    # queue and escalated: tickets, hours late in all
    this_run: pd.DataFrame

    def summary(self) -> dict:
        def counts(column: str) -> dict[str, int]:
            totals = self.this_run.groupby(column)["tickets"].sum().sort_values(ascending=False, kind="stable")
            return {str(value): int(count) for value, count in totals.items() if count}

        run = self.this_run
        return {"breached_since_last_run": int(run["tickets"].sum()),
                "escalated": int(run.loc[run["escalated"], "tickets"].sum()),
                "by_queue": counts("queue"), "by_cause": counts("cause"), "breached_open": self.breached_open,
                "respond_breached": self.respond_breached, "near_breach": self.near_breach}


def breaches_of_run(conn, run_id: str) -> pd.DataFrame:
    """The run's recorded breaches counted per cause, queue and whether escalated (``RUN_BREACH_COLUMNS``)."""
    import sqlalchemy as sa

    from pipeline.storage import store

    breaches = store.sla_breaches
    keys = [breaches.c.cause, breaches.c.queue, breaches.c.escalated]
    rows = conn.execute(sa.select(*keys, sa.func.count(), sa.func.sum(breaches.c.hours_late))
                        .where(breaches.c.run_id == run_id).group_by(*keys)).all()
    frame = pd.DataFrame([tuple(row) for row in rows], columns=RUN_BREACH_COLUMNS)
    return frame.astype({"cause": object, "queue": object, "escalated": bool, "tickets": int, "hours_late": float})


def escalate_breaches(engine: sa.Engine, clock: SlaClock, rule, *, now: datetime, run_id: str,
                      webhooks: dict | None = None) -> BreachSweep:
    """Record each unresolved ticket found past its resolve deadline for the first time (one ``sla_breaches``
    row each) and escalate it: priority raised by ``rule.raise_priority_by``, the rule's reason (with how
    late) and steps added to the ticket, the ticket delivered again to ``rule.notify_queue``. Not escalated:
    tickets more than ``rule.max_days_late`` late when found (loaded history), and all when ``rule`` is
    None (no [breach] rule in escalation.toml). The sweep's summary counts the run's batches' breaches too
    (tickets built late, recorded with the run's id)."""
    import sqlalchemy as sa

    from pipeline.storage import store
    from pipeline.tickets.clock_counts import around_the_clock_counts

    # around-the-clock queues: counted by the database, only their new breaches read
    counted = around_the_clock_counts(engine, now, clock.rules.near_breach_share, business_queues(clock))
    breached_open, respond_breached, near_breach = counted.breached_open, counted.respond_breached, counted.near_breach
    first_seen = [clocks.loc[clocks["clock"] == RESOLVE, BREACH_COLUMNS] for clocks in
                  open_clock_chunks(engine, clock, now, business_hours=False, new_breaches_only=True)]
    # business-hours queues: their clocks need the calendar, counted chunk by chunk; only the breaches no
    # earlier sweep recorded are kept (and offered to the insert)
    for clocks in open_clock_chunks(engine, clock, now, business_hours=True) if business_queues(clock) else ():
        breached, near = breach_lists(clocks, clock.rules.near_breach_share)
        resolve = breached[breached["clock"] == RESOLVE]
        breached_open, near_breach = breached_open + len(resolve), near_breach + len(near)
        respond_breached += int((breached["clock"] == RESPOND).sum())
        first_seen.append(resolve.loc[~resolve["recorded"], BREACH_COLUMNS])
    resolve_breached = (pd.concat(first_seen, ignore_index=True)  # read_sql yields a chunk even for no rows
                        .sort_values(["hours_left", "priority", "ticket_id"]).reset_index(drop=True))
    late = now - resolve_breached["due_at"]
    escalate = ((late <= pd.Timedelta(days=rule.max_days_late)) if rule
                else pd.Series(False, index=resolve_breached.index))
    raised = (resolve_breached["priority"] - rule.raise_priority_by).clip(lower=1).where(
        escalate, resolve_breached["priority"]) if rule else resolve_breached["priority"]
    candidates = pd.DataFrame({
        "ticket_id": resolve_breached["ticket_id"], "queue": resolve_breached["queue"],
        "cause": resolve_breached["cause"], "due_at": resolve_breached["due_at"].dt.to_pydatetime(),
        "detected_at": now, "run_id": run_id, "priority_before": resolve_breached["priority"].astype(int),
        "priority_after": raised.astype(int), "hours_late": (-resolve_breached["hours_left"]).round(1),
        "escalated": escalate.astype(bool)}).reset_index(drop=True)
    with engine.begin() as conn:
        # found for the first time = the rows that went in (this run's, stamped now); a breach recorded by an
        # earlier run stays as it was. A plain executemany, a chunk's records at a time: RETURNING made
        # SQLAlchemy compile a multi-row insert per thousand breaches (~10 s at 1M)
        breaches = store.sla_breaches
        for start in range(0, len(candidates), CHUNK):
            conn.execute(store.insert_or_ignore(conn, breaches), _records(candidates.iloc[start:start + CHUNK]))
        first_found = set(conn.execute(sa.select(breaches.c.ticket_id).where(
            breaches.c.run_id == run_id, breaches.c.detected_at == now)).scalars()) if len(candidates) else set()
        found = candidates[candidates["ticket_id"].isin(first_found)].reset_index(drop=True)
        to_escalate = found[found["escalated"]]
        for start in range(0, len(to_escalate), CHUNK):
            _escalate_tickets(conn, to_escalate.iloc[start:start + CHUNK], rule, now, webhooks or {})
        this_run = breaches_of_run(conn, run_id)
    return BreachSweep(found=found, breached_open=breached_open, respond_breached=respond_breached,
                       near_breach=near_breach, this_run=this_run)


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain Python values (``to_dict("records")`` boxed every cell: ~30 µs a breach)."""
    columns = {name: frame[name].tolist() for name in frame.columns}
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


def _escalate_tickets(conn, found: pd.DataFrame, rule, now: datetime, webhooks: dict) -> None:
    """Raise the priority of a chunk of breached tickets, add the rule's reason and steps to each (row and
    payload), and queue their delivery to the rule's notify queue — a few statements per chunk."""
    import sqlalchemy as sa

    from pipeline.delivery.outbox import queue_again
    from pipeline.storage import store

    tickets = store.tickets
    ids = found["ticket_id"].tolist()
    current = {row.ticket_id: row for row in conn.execute(
        sa.select(tickets.c.ticket_id, tickets.c.payload_json, tickets.c.escalation_reasons, tickets.c.status)
        .where(tickets.c.ticket_id.in_(ids)))}
    changes = []
    for ticket_id, priority, hours_late in zip(ids, found["priority_after"].tolist(), found["hours_late"].tolist()):
        row = current[ticket_id]
        reason = breach_reason(rule, hours_late)
        payload = json.loads(row.payload_json)
        payload.update(priority=int(priority), status=row.status,
                       escalation_reasons=payload["escalation_reasons"] + [reason],
                       escalation_steps=payload.get("escalation_steps", []) + list(rule.steps))
        changes.append({"id": ticket_id, "new_priority": int(priority),
                        "reasons": json.dumps(json.loads(row.escalation_reasons or "[]") + [reason], ensure_ascii=False),
                        "payload": json.dumps(payload, ensure_ascii=False)})
    conn.execute(tickets.update().where(tickets.c.ticket_id == sa.bindparam("id")).values(
        priority=sa.bindparam("new_priority"), escalation_reasons=sa.bindparam("reasons"),
        payload_json=sa.bindparam("payload")), changes)
    if rule.notify_queue:
        queue_again(conn, ids, rule.notify_queue, webhooks, now, key_suffix=f":{rule.code}")


def breach_markdown(sweep: BreachSweep) -> str:
    """What the nightly run found, for its Prefect artifact and log: said plainly, then the counts."""
    from pipeline.reporting.report import markdown_text
    from pipeline.labels import CAUSE_NAMES_ZH

    counted = sweep.summary()
    new, escalated = counted["breached_since_last_run"], counted["escalated"]
    lines = ["# 处理时限 · Ticket deadlines", "",
             f"**自上次运行以来新超时 {new} 件**（其中 {escalated} 件已升级并通知主管）；仍未解决且已超时共 "
             f"{sweep.breached_open} 件，超时未回应顾客 {sweep.respond_breached} 件，即将超时 {sweep.near_breach} 件。",
             "", f"{new} ticket(s) passed their resolve deadline since the last run ({escalated} escalated); "
             f"{sweep.breached_open} unresolved past the deadline in all, {sweep.respond_breached} customers not yet "
             f"answered in time, {sweep.near_breach} near breach.", ""]
    if new:
        lines += ["| 原因 cause | 队列 queue | 件数 tickets | 平均超时 mean hours late |", "|---|---|---|---|"]
        grouped = sweep.this_run.groupby(["cause", "queue"])[["tickets", "hours_late"]].sum().reset_index()
        grouped = grouped.assign(count=grouped["tickets"], mean=grouped["hours_late"] / grouped["tickets"])
        for row in grouped.sort_values("count", ascending=False, kind="stable").itertuples(index=False):
            name = f"{CAUSE_NAMES_ZH.get(row.cause, row.cause)} {row.cause}"
            lines.append(f"| {markdown_text(name)} | {markdown_text(row.queue)} | {row.count} | {row.mean:.0f} |")
    return "\n".join(lines) + "\n"
