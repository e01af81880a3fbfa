"""Ticket lifecycle: open → acknowledged → resolved → closed, and reopened — who did what, and when.

The teams that fix complaints report back in the ways they work: one update on the command line, a
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

import getpass
import math
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from pipeline.storage import store
from pipeline.clock import local_iso, to_local, to_utc
from pipeline.text.normalise import mask_pii
from pipeline.labels import canonical_label

OPEN, ACKNOWLEDGED, RESOLVED, CLOSED, REOPENED = "open", "acknowledged", "resolved", "closed", "reopened"
STATUSES = (OPEN, ACKNOWLEDGED, RESOLVED, CLOSED, REOPENED)
# Resolving straight from open is the best case (put right on the spot); closing needs a resolution first.
NEXT_STATUSES = {
    OPEN: (ACKNOWLEDGED, RESOLVED),
    ACKNOWLEDGED: (RESOLVED,),
    RESOLVED: (CLOSED, REOPENED),
    CLOSED: (REOPENED,),
    REOPENED: (ACKNOWLEDGED, RESOLVED),
}
RESOLUTIONS = {"apologised": "致歉", "fixed": "已纠正/修复", "compensated": "已补偿", "explained": "已解释说明",
               "not_our_fault": "非我方责任"}
COMPENSATED = "compensated"
STATUS_NAMES_ZH = {OPEN: "待处理", ACKNOWLEDGED: "已回应", RESOLVED: "已解决", CLOSED: "已关闭", REOPENED: "重新打开"}
_ALIASES = {
    **{name: key for key, name in STATUS_NAMES_ZH.items()}, "已受理": ACKNOWLEDGED, "已确认": ACKNOWLEDGED,
    "处理完毕": RESOLVED, "重开": REOPENED,
    **{name: key for key, name in RESOLUTIONS.items()}, "apologized": "apologised", "道歉": "apologised",
    "已修复": "fixed", "已纠正": "fixed", "补偿": "compensated", "赔偿": "compensated", "解释": "explained",
    "not our fault": "not_our_fault", "非我方原因": "not_our_fault",
}
UPDATE_COLUMNS = ["ticket_id", "status", "resolution", "cause", "compensation", "note"]
OPTIONAL_COLUMNS = ["by", "at"]  # who, and when it happened (default: now)
FUTURE_TOLERANCE = timedelta(minutes=5)  # clocks of the teams' machines drift a little
MAX_LISTED_PROBLEMS = 10
_MONEY_DECORATION = re.compile(r"^\s*(?:¥|￥|RMB|CNY)?\s*|\s*(?:元|块|RMB|CNY)?\s*$", re.IGNORECASE)

# kinds of problem, so the HTTP endpoint can answer 404 / 409 / 400
UNKNOWN_TICKET, ILLEGAL_MOVE, INVALID = "unknown_ticket", "illegal_move", "invalid"


@dataclass(frozen=True)
class Problem:
    where: str  # "row 3" / "ticket TK-…" — the file or request is named by the caller
    column: str
    message: str
    kind: str = INVALID

    def __str__(self) -> str:
        return f"{self.where}, column '{self.column}': {self.message}"


class TicketUpdateError(ValueError):
    """Updates refused; nothing was changed. ``problems`` lists each with its row and column."""

    def __init__(self, source: str, problems: list[Problem]):
        self.problems = problems
        shown = "; ".join(str(p) for p in problems[:MAX_LISTED_PROBLEMS])
        more = f" (and {len(problems) - MAX_LISTED_PROBLEMS} more)" if len(problems) > MAX_LISTED_PROBLEMS else ""
        prefix = f"{source}: nothing changed, " if source else "nothing changed, "
        super().__init__(f"{prefix}{len(problems)} problem(s): {shown}{more}")


@dataclass(frozen=True)
class TicketUpdate:
    ticket_id: str
    status: str
    by: str
    source: str  # cli | http | FILE row N
    where: str  # for messages
    at: datetime | None = None  # UTC; None: when it is applied
    resolution: str | None = None
    cause: str | None = None  # the cause as the team found it (a review label)
    compensation: float | None = None
    note: str | None = None


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


# ---------------------------------------------------------------- reading updates

def _canonical(cell: str) -> str:
    text = " ".join(str(cell).split())
    return _ALIASES.get(text) or _ALIASES.get(text.lower()) or text.lower().replace(" ", "_")


def parse_update(cells: dict, *, where: str, source: str, default_by: str | None,
                 timezone: str) -> tuple[TicketUpdate | None, list[Problem]]:
    """One update from text cells (a file row, CLI options or a JSON body); problems name the column."""
    def cell(name: str) -> str:
        value = cells.get(name)
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).strip()

    problems = []
    ticket_id = cell("ticket_id")
    if not ticket_id:
        problems.append(Problem(where, "ticket_id", "empty; give the ticket id (TK-…)"))
    status = _canonical(cell("status")) if cell("status") else ""
    if status not in STATUSES:
        problems.append(Problem(where, "status", f"{cell('status')!r} is not a status; use one of "
                                                 f"{', '.join(STATUSES)}"))
    resolution = _canonical(cell("resolution")) if cell("resolution") else None
    if resolution is not None and resolution not in RESOLUTIONS:
        problems.append(Problem(where, "resolution", f"{cell('resolution')!r} is not a resolution code; use one of "
                                                     f"{', '.join(RESOLUTIONS)}"))
    cause = canonical_label(cell("cause")) if cell("cause") else None
    compensation = None
    if cell("compensation"):
        compensation = _amount(cell("compensation"))
        if compensation is None:
            problems.append(Problem(where, "compensation", f"{cell('compensation')!r} is not an amount; write a "
                                                           "number such as 50 or 12.5 (the total given)"))
    at = None
    if cell("at"):
        try:
            at = to_utc(cell("at"), timezone)
        except (ValueError, TypeError):
            problems.append(Problem(where, "at", f"{cell('at')!r} is not a time; use e.g. 2026-11-23 14:05"))
    by = cell("by") or (default_by or "").strip()
    if not by:
        problems.append(Problem(where, "by", "empty; say who made the change (a 'by' column or --by)"))
    if problems:
        return None, problems
    note = mask_pii(cell("note")) if cell("note") else None  # staff notes quote customers' numbers too
    return TicketUpdate(ticket_id=ticket_id, status=status, by=by, source=source, where=where, at=at,
                        resolution=resolution, cause=cause, compensation=compensation, note=note), []


def _amount(text: str) -> float | None:
    try:
        value = float(_MONEY_DECORATION.sub("", text).replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def default_actor() -> str:
    """Who runs the command, when --by is not given."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        return ""


def read_update_file(path: Path | str, *, default_by: str | None,
                     timezone: str) -> tuple[list[TicketUpdate], list[Problem]]:
    """A CSV/XLSX of updates (columns ticket_id,status,resolution,cause,compensation,note; optional by, at)
    and the problems of its unreadable rows (rows count data rows from 1, the header excluded), for
    ``apply_updates`` to report together with the moves it refuses."""
    from pipeline.delivery.spreadsheet import read_table

    path = Path(path)
    if not path.is_file():
        raise TicketUpdateError(str(path), [Problem("file", "-", "no such file")])
    if path.suffix.lower() not in (".csv", ".xlsx", ".xlsm"):
        raise TicketUpdateError(str(path), [Problem("file", "-", "an update file must be .csv or .xlsx")])
    frame = read_table(path)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in ("ticket_id", "status") if c not in frame.columns]
    if missing:
        raise TicketUpdateError(str(path), [Problem("header", c, "missing; the columns are "
                                                    + ",".join(UPDATE_COLUMNS + OPTIONAL_COLUMNS)) for c in missing])
    updates, problems = [], []
    for position, row in enumerate(frame.to_dict("records"), start=1):
        if not any(str(v).strip() for v in row.values()):
            continue  # a blank line in a spreadsheet
        update, found = parse_update(row, where=f"row {position}", source=f"{path.name} row {position}",
                                     default_by=default_by, timezone=timezone)
        problems += found
        if update:
            updates.append(update)
    return updates, problems


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
