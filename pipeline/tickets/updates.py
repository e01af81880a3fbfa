"""What the teams report back about a ticket: the words they may use (statuses and resolution codes, in
English or Chinese), one update read from a file row, CLI options or a JSON body, and the problems that
name the row and column of what cannot be read. ``lifecycle.apply_updates`` checks them against the
tickets and writes them."""
from __future__ import annotations

import getpass
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pipeline.clock import to_utc
from pipeline.labels import canonical_label
from pipeline.text.normalise import mask_pii

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


def _canonical(cell: str) -> str:
    text = " ".join(str(cell).split())
    return _ALIASES.get(text) or _ALIASES.get(text.lower()) or text.lower().replace(" ", "_")


def parse_update(cells: dict, *, where: str, source: str, default_by: str | None,
                 timezone: str) -> tuple[TicketUpdate | None, list[Problem]]:
    """One update from text cells (a file row, CLI options or a JSON body); problems name the column."""
    def cell(name: str) -> str:
        value = cells.get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        return str(value).replace("\x00", "").strip()  # a NUL means nothing here, and PostgreSQL refuses it

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
