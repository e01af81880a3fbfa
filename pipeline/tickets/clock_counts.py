"""The deadline sweep's counts of the tickets on around-the-clock queues, counted by the database (issue 12).

On such a queue a clock's hours are plain time differences, so whether a ticket is past its deadline or near
it is arithmetic on its stored times: the sweep counts them in one query instead of reading every open
ticket each night (a million at 1M), and reads only the tickets it must write about (new breaches) and
those on business-hours queues, whose hours need the calendar (``sla.SlaClock``). The rules are the
ones of ``sla._clocks`` and ``sla.breach_lists``: breached when the deadline passed (``due < now``); near
breach when not breached and the hours used (now − received, at least 0) reach ``near_breach_share`` of
the hours allowed (due − received, at least 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from pipeline.storage import store
from pipeline.tickets.sla import UNACKNOWLEDGED, UNRESOLVED


@dataclass(frozen=True)
class ClockCounts:
    breached_open: int  # resolve deadline passed
    respond_breached: int  # respond deadline passed, not acknowledged
    near_breach: int  # clocks (respond and resolve) near their deadline


def _days(dialect: str, value: sa.ColumnElement) -> sa.ColumnElement:
    """A time as a number of days, to subtract (the same scale on both engines)."""
    if dialect == "postgresql":
        return sa.extract("epoch", value) / 86400.0
    return sa.func.julianday(value)


def around_the_clock_counts(engine: sa.Engine, now: datetime, near_breach_share: float,
                            business_queues: list[str]) -> ClockCounts:
    """The counts of ``sla.escalate_breaches`` over the unresolved tickets of every queue not in
    ``business_queues``."""
    tickets = store.tickets
    with engine.connect() as conn:
        dialect = conn.dialect.name
        at_now = sa.literal(now, sa.DateTime)
        received = sa.func.coalesce(tickets.c.received_at, tickets.c.created_at)

        def at_least_zero(days: sa.ColumnElement) -> sa.ColumnElement:
            return sa.case((days > 0, days), else_=0.0)

        def near(due: sa.ColumnElement) -> sa.ColumnElement:
            used = at_least_zero(_days(dialect, at_now) - _days(dialect, received))
            allowed = at_least_zero(_days(dialect, due) - _days(dialect, received))
            return sa.and_(due >= at_now, used >= near_breach_share * allowed)

        def count(condition: sa.ColumnElement) -> sa.ColumnElement:
            return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

        unacknowledged = sa.and_(tickets.c.status.in_(UNACKNOWLEDGED), tickets.c.acknowledge_due_at.is_not(None))
        statement = (sa.select(count(tickets.c.due_at < at_now),
                               count(sa.and_(unacknowledged, tickets.c.acknowledge_due_at < at_now)),
                               count(sa.and_(unacknowledged, near(tickets.c.acknowledge_due_at))),
                               count(near(tickets.c.due_at)))
                     .where(tickets.c.status.in_(UNRESOLVED), tickets.c.queue.not_in(business_queues)))
        breached, respond, near_respond, near_resolve = conn.execute(statement).one()
    return ClockCounts(int(breached), int(respond), int(near_respond) + int(near_resolve))
