"""Ticket lifecycle: open → acknowledged → resolved → closed, and reopened — who did what, and when.

The teams that fix complaints report back in the ways they work (read by ``updates.py``): one update on
the command line, a
CSV/XLSX batch, or their queue tool calling the HTTP endpoint (``pipeline/tickets/api.py``). Every update
goes through ``apply_updates``: it is checked against the ticket's current state, and an unknown ticket,
an illegal move or a bad value is an error naming the row and column that changes nothing — a batch is
all or nothing, like ``review import``. Each accepted update is an event in ``ticket_events``; the ticket
row keeps the current state for listing and for the recovery report. An update that repeats what the
ticket's latest event already says is counted as unchanged, so a batch file can be imported twice.

A cause given with an update is what the team found while fixing the complaint: it is stored as a review
label too (the ``reviews`` table ``review import`` writes), so ``review export-labelled`` and training
pick it up, and the trend report counts it as the complaint's cause.

Times are stored in UTC; a time written without a zone is read in ``Settings.timezone``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from pipeline.storage import store
from pipeline.clock import local_iso, to_local
from pipeline.tickets.updates import (ACKNOWLEDGED, CLOSED, COMPENSATED, FUTURE_TOLERANCE, ILLEGAL_MOVE,
                                      NEXT_STATUSES, REOPENED, RESOLUTIONS, RESOLVED, UNKNOWN_TICKET, Problem,
                                      TicketUpdate, TicketUpdateError)


@dataclass(frozen=True)
class TicketState:
    ticket_id: str
    complaint_id: str
    cause: str
    status: str
    received_at: datetime
    last_change_at: datetime | None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    resolution: str | None = None
    compensation: float | None = None
    corrected_cause: str | None = None
    reopened_count: int = 0
    updated_by: str | None = None
    history: tuple[dict, ...] = ()  # what each earlier event said (``_event_summary``), oldest first

    def after(self, update: TicketUpdate, at: datetime) -> "TicketState":
        """The state once ``update`` (happening at ``at``) is applied."""
        status = update.status
        return replace(
            self, status=status, last_change_at=at,
            acknowledged_at=self.acknowledged_at or (at if status in (ACKNOWLEDGED, RESOLVED) else None),
            resolved_at=at if status == RESOLVED else (None if status == REOPENED else self.resolved_at),
            closed_at=at if status == CLOSED else (None if status == REOPENED else self.closed_at),
            resolution=update.resolution or (None if status == REOPENED else self.resolution),
            compensation=update.compensation if update.compensation is not None else self.compensation,
            corrected_cause=update.cause or self.corrected_cause,
            reopened_count=self.reopened_count + (status == REOPENED), updated_by=update.by,
            history=self.history + (_event_summary(update, at),))


@dataclass(frozen=True)
class UpdateResult:
    applied: list[TicketState]
    unchanged: int


def _event_summary(update: TicketUpdate, at: datetime) -> dict:
    return {"to_status": update.status, "by": update.by, "resolution": update.resolution,
            "corrected_cause": update.cause, "compensation": update.compensation, "note": update.note, "at": at}


# ---------------------------------------------------------------- checking and applying

def _load_states(conn, ticket_ids: list[str]) -> dict[str, TicketState]:
    tickets, events = store.tickets, store.ticket_events
    states: dict[str, TicketState] = {}
    for start in range(0, len(ticket_ids), 500):
        part = ticket_ids[start:start + 500]
        for row in conn.execute(sa.select(tickets).where(tickets.c.ticket_id.in_(part))).mappings():
            states[row["ticket_id"]] = TicketState(
                ticket_id=row["ticket_id"], complaint_id=row["complaint_id"], cause=row["cause"],
                status=row["status"], received_at=row["received_at"] or row["created_at"],
                last_change_at=row["updated_at"], acknowledged_at=row["acknowledged_at"],
                resolved_at=row["resolved_at"], closed_at=row["closed_at"], resolution=row["resolution"],
                compensation=row["compensation"], corrected_cause=row["corrected_cause"],
                reopened_count=row["reopened_count"] or 0, updated_by=row["updated_by"])
        history: dict[str, list[dict]] = {}
        for row in conn.execute(sa.select(events).where(events.c.ticket_id.in_(part))
                                .order_by(events.c.event_id)).mappings():
            history.setdefault(row["ticket_id"], []).append(
                {"to_status": row["to_status"], "by": row["by"], "resolution": row["resolution"],
                 "corrected_cause": row["corrected_cause"], "compensation": row["compensation"],
                 "note": row["note"], "at": row["at"]})
        for ticket_id, events_of in history.items():
            states[ticket_id] = replace(states[ticket_id], history=tuple(events_of))
    return states


def _is_repeat(state: TicketState, update: TicketUpdate) -> bool:
    """An earlier event of the ticket already says this: the same move with the same fields (and the same
    time, when the update gives one). So importing a file again, or resending a request, changes nothing."""
    wanted = _event_summary(update, update.at)
    compared = [key for key in wanted if key != "at" or update.at is not None]
    return any(all(event[key] == wanted[key] for key in compared) for event in state.history)


def move_problems(state: TicketState, update: TicketUpdate, at: datetime, now: datetime,
                  known_labels: set[str]) -> list[Problem]:
    """Why ``update`` cannot be applied to a ticket in ``state`` (empty when it can)."""
    where, problems = update.where, []
    allowed = NEXT_STATUSES[state.status]
    if update.status not in allowed:
        problems.append(Problem(where, "status", f"ticket {state.ticket_id} is {state.status}: it cannot become "
                                                 f"{update.status} (from {state.status} it can become "
                                                 f"{' or '.join(allowed)})", ILLEGAL_MOVE))
    if update.status == RESOLVED and not update.resolution:
        problems.append(Problem(where, "resolution", "a ticket is resolved with a resolution code: "
                                                     + ", ".join(RESOLUTIONS)))
    if update.resolution and update.status not in (RESOLVED, CLOSED):
        problems.append(Problem(where, "resolution", f"a resolution goes with status resolved or closed, not "
                                                     f"{update.status}"))
    compensation = update.compensation if update.compensation is not None else state.compensation
    if (update.resolution or state.resolution) == COMPENSATED and update.status in (RESOLVED, CLOSED) \
            and not compensation:
        problems.append(Problem(where, "compensation", "resolution 'compensated' needs the amount given "
                                                       "(e.g. 50) in 'compensation'"))
    if update.cause is not None and update.cause not in known_labels:
        problems.append(Problem(where, "cause", f"{update.cause!r} is not a known label "
                                                f"({', '.join(sorted(known_labels))})"))
    if at > now + FUTURE_TOLERANCE:
        problems.append(Problem(where, "at", f"{at:%Y-%m-%d %H:%M} UTC is in the future"))
    elif at < state.received_at:
        problems.append(Problem(where, "at", f"{at:%Y-%m-%d %H:%M} UTC is before the complaint was received "
                                             f"({state.received_at:%Y-%m-%d %H:%M} UTC)"))
    elif state.last_change_at is not None and at < state.last_change_at:
        problems.append(Problem(where, "at", f"{at:%Y-%m-%d %H:%M} UTC is before the ticket's last change "
                                             f"({state.last_change_at:%Y-%m-%d %H:%M} UTC); give updates in the "
                                             "order they happened", ILLEGAL_MOVE))
    return problems


def apply_updates(engine: sa.Engine, updates: list[TicketUpdate], *, source: str = "",
                  unreadable: list[Problem] = (), now: datetime | None = None) -> UpdateResult:
    """Check every update against its ticket (in order: a file may move one ticket several times), then
    write them all in one transaction — or raise TicketUpdateError listing these problems and the
    ``unreadable`` rows' and write nothing."""
    from pipeline.training.review import known_labels

    now = now or store.utcnow()
    labels = known_labels(engine)
    with engine.begin() as conn:
        states = _load_states(conn, sorted({u.ticket_id for u in updates}))
        before = dict(states)
        problems, accepted, unchanged = list(unreadable), [], 0
        for update in updates:
            state = states.get(update.ticket_id)
            if state is None:
                problems.append(Problem(update.where, "ticket_id", f"{update.ticket_id!r} is not a stored ticket; "
                                        "see `complaints tickets list`", UNKNOWN_TICKET))
                continue
            if _is_repeat(state, update):
                unchanged += 1
                continue
            at = update.at or now
            found = move_problems(state, update, at, now, labels)
            if found:
                problems += found
                continue
            states[update.ticket_id] = state.after(update, at)
            accepted.append((update, state, at))
        if problems:
            raise TicketUpdateError(source, sorted(problems, key=_row_order))
        for update, state, at in accepted:
            _write(conn, update, state, at, now)
        changed = [states[tid] for tid in dict.fromkeys(u.ticket_id for u, _, _ in accepted)]
        for final in changed:
            _store_state(conn, before[final.ticket_id], final, now)
    return UpdateResult(applied=changed, unchanged=unchanged)


def _row_order(problem: Problem) -> tuple:
    number = re.search(r"\d+", problem.where)
    return (int(number.group()) if number else 0, problem.where)


def _write(conn, update: TicketUpdate, state: TicketState, at: datetime, now: datetime) -> None:
    conn.execute(store.ticket_events.insert().values(
        ticket_id=update.ticket_id, from_status=state.status, to_status=update.status, at=at, by=update.by,
        resolution=update.resolution, compensation=update.compensation, corrected_cause=update.cause,
        note=update.note, source=update.source[:255], recorded_at=now))
    if update.cause:  # the team that fixed it knows the cause: a review label like `review import`'s
        note = f"ticket {update.ticket_id}" + (f": {update.note}" if update.note else "")
        conn.execute(store.reviews.insert().values(complaint_id=state.complaint_id, cause=update.cause,
                                                   secondary_causes="", reviewer=update.by, reviewed_at=at,
                                                   note=note))


class ConcurrentUpdateError(RuntimeError):
    """Another update changed the ticket between our read and our write; nothing was changed."""


def _store_state(conn, before: TicketState, after: TicketState, now: datetime) -> None:
    tickets = store.tickets
    # guarded by the status read: a concurrent update of the same ticket makes this one fail, not both win
    result = conn.execute(
        tickets.update()
        .where(tickets.c.ticket_id == after.ticket_id, tickets.c.status == before.status,
               tickets.c.updated_at.is_(None) if before.last_change_at is None
               else tickets.c.updated_at == before.last_change_at)
        .values(status=after.status, acknowledged_at=after.acknowledged_at, resolved_at=after.resolved_at,
                closed_at=after.closed_at, resolution=after.resolution, compensation=after.compensation,
                corrected_cause=after.corrected_cause, reopened_count=after.reopened_count,
                updated_at=after.last_change_at, updated_by=after.updated_by))
    if result.rowcount != 1:
        raise ConcurrentUpdateError(f"ticket {after.ticket_id} was changed by someone else meanwhile; nothing was "
                                    "changed — read it again and resend the update")


def ticket_state(engine: sa.Engine, ticket_id: str) -> TicketState | None:
    with engine.connect() as conn:
        return _load_states(conn, [ticket_id]).get(ticket_id)


def state_as_json(state: TicketState, timezone: str) -> dict:
    """A ticket's lifecycle for people and tools: times in ``timezone`` with their offset."""
    def local(value):
        return local_iso(value, timezone)

    return {"ticket_id": state.ticket_id, "complaint_id": state.complaint_id, "status": state.status,
            "cause": state.cause, "corrected_cause": state.corrected_cause, "resolution": state.resolution,
            "compensation": state.compensation, "reopened_count": state.reopened_count,
            "received_at": local(state.received_at), "acknowledged_at": local(state.acknowledged_at),
            "resolved_at": local(state.resolved_at), "closed_at": local(state.closed_at),
            "last_change_at": local(state.last_change_at)}


def lifecycle_columns(ticket, timezone: str) -> dict:
    """A stored ticket row's current lifecycle for exports (the payload keeps what was first delivered)."""
    def local(value):
        converted = to_local(value, timezone)
        return converted.strftime("%Y-%m-%d %H:%M") if converted else ""

    return {"status": ticket.status, "acknowledged_at": local(ticket.acknowledged_at),
            "resolved_at": local(ticket.resolved_at), "closed_at": local(ticket.closed_at),
            "resolution": ticket.resolution or "",
            "compensation": None if pd.isna(ticket.compensation) else ticket.compensation,
            "corrected_cause": ticket.corrected_cause or "",
            "reopened_count": 0 if pd.isna(ticket.reopened_count) else int(ticket.reopened_count)}
