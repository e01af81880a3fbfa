"""Service recovery in numbers: how fast each cause's complaints are answered and put right, how many meet
their deadlines, come back, cost compensation, and were corrected to another cause.

Speed is what decides whether a complaining customer stays: put right quickly, nine in ten stay; dragged
out, about six in ten — and by the 1:10:100 rule a recovery on the day of the complaint costs about 1,
the next day about 10 and later about 100. So every figure runs from the moment the customer complained
(the ticket's clock start, ``received_at``), and the 1:10:100 view counts recoveries by local calendar day
(``Settings.timezone``): same day, next day, later.

Pure functions over the frame ``read_recovery_rows`` returns: one row per ticket of a complaint in the
report window. Its cause is the complaint's latest review label (a cause corrected on the ticket is one),
else the routed cause; tickets of non-complaints (``none``) are the review backlog, not recoveries.
Medians and 90th percentiles are over the tickets that reached the step; the ones still waiting are
counted beside them (a median of the finished alone would flatter a queue that leaves the hard ones).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone as dt_timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import sqlalchemy as sa

from pipeline.storage import store
from pipeline.labels import NONE_LABEL

RESOLVED_STATUSES = ("resolved", "closed")
SPEED_BUCKETS = ("same_day", "next_day", "later", "open_late", "open")  # 1 : 10 : 100, then still open
GROUPINGS = ("cause", "queue", "channel")
ROW_COLUMNS = ["ticket_id", "complaint_id", "cause", "routed_cause", "queue", "channel", "priority", "status",
               "received_at", "acknowledged_at", "resolved_at", "acknowledge_due_at", "due_at", "resolution",
               "compensation", "reopened_count", "corrected", "tickets"]


def read_recovery_rows(engine: sa.Engine, since: datetime | None = None, until: datetime | None = None, *,
                       now: datetime | None = None, timezone: str = "UTC") -> pd.DataFrame:
    """Tickets of the complaints with since ≤ complaint time < until (the trend window's rule), with the
    complaint's channel and latest review label; ``tickets``: how many tickets a row stands for.

    With ``now`` (and the ``timezone`` of the report's local days), the tickets nobody has touched yet — open,
    never answered, resolved, compensated or reopened: on a night of a million complaints nearly all of them —
    are counted in the database, one row per group that every figure treats alike (cause, queue, channel,
    priority, and whether each deadline and the next local day have passed by ``now``), its times those of
    one of the group. Every other ticket is a row of its own: their hours make the medians."""
    tickets, complaints, reviews = store.tickets, store.complaints, store.reviews
    newest_review = (sa.select(sa.func.max(reviews.c.review_id)).group_by(reviews.c.complaint_id).scalar_subquery())
    at = store.complaint_time()
    received = sa.func.coalesce(tickets.c.received_at, tickets.c.created_at)
    joined = (tickets.join(complaints, complaints.c.complaint_id == tickets.c.complaint_id)
              .outerjoin(reviews, sa.and_(reviews.c.complaint_id == tickets.c.complaint_id,
                                          reviews.c.review_id.in_(newest_review))))
    window = [at >= since] if since is not None else []
    window += [at < until] if until is not None else []
    untouched = sa.and_(tickets.c.status == "open", tickets.c.acknowledged_at.is_(None),
                        tickets.c.resolved_at.is_(None), tickets.c.resolution.is_(None),
                        tickets.c.compensation.is_(None), sa.func.coalesce(tickets.c.reopened_count, 0) == 0)
    each = (sa.select(tickets.c.ticket_id, tickets.c.complaint_id, reviews.c.cause.label("reviewed_cause"),
                      tickets.c.cause.label("routed_cause"), tickets.c.queue, complaints.c.channel, tickets.c.priority,
                      tickets.c.status, received.label("received_at"), tickets.c.acknowledged_at,
                      tickets.c.resolved_at, tickets.c.acknowledge_due_at, tickets.c.due_at, tickets.c.resolution,
                      tickets.c.compensation, tickets.c.reopened_count, sa.literal(1).label("tickets"))
            .select_from(joined).where(*window, *([sa.not_(untouched)] if now is not None else [])))
    with engine.connect() as conn:
        parts = [pd.read_sql(each, conn)]
        if now is not None:
            passed = [sa.case((condition, 1), else_=0) for condition in (
                tickets.c.due_at < now, tickets.c.acknowledge_due_at < now, received < _start_of_yesterday(now, timezone))]
            grouped = [reviews.c.cause, tickets.c.cause, tickets.c.queue, complaints.c.channel, tickets.c.priority]
            counted = (sa.select(sa.null().label("ticket_id"), sa.null().label("complaint_id"),
                                 reviews.c.cause.label("reviewed_cause"), tickets.c.cause.label("routed_cause"),
                                 tickets.c.queue, complaints.c.channel, tickets.c.priority,
                                 sa.literal("open").label("status"), sa.func.min(received).label("received_at"),
                                 sa.null().label("acknowledged_at"), sa.null().label("resolved_at"),
                                 sa.func.min(tickets.c.acknowledge_due_at).label("acknowledge_due_at"),
                                 sa.func.min(tickets.c.due_at).label("due_at"), sa.null().label("resolution"),
                                 sa.null().label("compensation"), sa.literal(0).label("reopened_count"),
                                 sa.func.count().label("tickets"))
                       .select_from(joined).where(*window, untouched).group_by(*grouped, *passed))
            parts.append(pd.DataFrame(conn.execute(counted).mappings().all(),
                                      columns=[c.name for c in counted.selected_columns]))
    frame = pd.concat([part for part in parts if len(part)] or parts[:1], ignore_index=True)
    for column in ("received_at", "acknowledged_at", "resolved_at", "acknowledge_due_at", "due_at"):
        frame[column] = pd.to_datetime(frame[column])
    reviewed = frame["reviewed_cause"].astype(object)
    frame["cause"] = reviewed.where(reviewed.notna(), frame["routed_cause"])
    frame["corrected"] = reviewed.notna() & (reviewed != frame["routed_cause"])
    frame["channel"] = frame["channel"].fillna("(missing)").replace("", "(missing)")
    frame["compensation"] = pd.to_numeric(frame["compensation"], errors="coerce")
    frame["reopened_count"] = pd.to_numeric(frame["reopened_count"], errors="coerce").fillna(0).astype(int)
    frame["tickets"] = frame["tickets"].astype(int)
    return frame[ROW_COLUMNS]


def _start_of_yesterday(now: datetime, timezone: str) -> datetime:
    """Naive UTC start of the local day before ``now``'s: a ticket received earlier has waited two local days."""
    zone = ZoneInfo(timezone)
    today = now.replace(tzinfo=dt_timezone.utc).astimezone(zone).date()
    yesterday = datetime.combine(today - timedelta(days=1), time(), tzinfo=zone)
    return yesterday.astimezone(dt_timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class Recovery:
    """Everything the report shows about recovery (``None`` tables are empty frames)."""

    now: datetime
    tickets: int  # tickets of service failures in the window
    by: dict[str, pd.DataFrame]  # cause / queue / channel → speed and deadline figures per group
    speed: pd.DataFrame  # per cause: same day / next day / later / still open (1:10:100)
    compensation: pd.DataFrame  # per cause: compensated tickets, total, median; resolution codes
    corrections: pd.DataFrame  # routed cause × cause found by people
    backlog: int  # tickets of non-complaints (none) in the window

    @property
    def has_updates(self) -> bool:
        """Whether any ticket was moved at all: before that, every figure is 'still open'."""
        overall = self.by["cause"]
        return bool(len(overall)) and bool((overall["acknowledged"] + overall["resolved"]).sum())


def _hours(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (later - earlier) / pd.Timedelta(hours=1)


def _quantile(values: pd.Series, q: float) -> float:
    values = values.dropna()
    return float(np.quantile(values, q)) if len(values) else np.nan


def group_figures(frame: pd.DataFrame, key: str, now: datetime) -> pd.DataFrame:
    """Per group: tickets; answered and resolved; median and 90th percentile hours to respond and to
    resolve; share resolved within the deadline among those due by now; still open past the deadline;
    reopened share among those ever resolved; compensation."""
    resolved = frame["status"].isin(RESOLVED_STATUSES)
    work = frame.assign(
        respond_hours=_hours(frame["acknowledged_at"], frame["received_at"]),
        resolve_hours=_hours(frame["resolved_at"], frame["received_at"]).where(resolved),
        is_resolved=resolved, acknowledged=frame["acknowledged_at"].notna(),
        due=resolved | (frame["due_at"] < now),  # its deadline has come, or it is done
        in_time=resolved & (frame["resolved_at"] <= frame["due_at"]),
        breached_open=~resolved & (frame["due_at"] < now),
        respond_late=(frame["acknowledged_at"].isna() & (frame["acknowledge_due_at"] < now))
        | (frame["acknowledged_at"] > frame["acknowledge_due_at"]),
        ever_resolved=resolved | (frame["reopened_count"] > 0),
        reopened=frame["reopened_count"] > 0,
        compensated=frame["compensation"].fillna(0) > 0)
    counted = ["acknowledged", "respond_late", "is_resolved", "due", "in_time", "breached_open", "reopened",
               "ever_resolved", "compensated"]
    work[counted] = work[counted].mul(work["tickets"], axis=0)  # a row may stand for many untouched tickets
    grouped = work.groupby(key, observed=True, sort=False)
    table = pd.DataFrame({
        "tickets": grouped["tickets"].sum(),
        "acknowledged": grouped["acknowledged"].sum(),
        "respond_median_h": grouped["respond_hours"].median(),
        "respond_p90_h": grouped["respond_hours"].agg(lambda v: _quantile(v, 0.9)),
        "respond_late": grouped["respond_late"].sum(),
        "resolved": grouped["is_resolved"].sum(),
        "resolve_median_h": grouped["resolve_hours"].median(),
        "resolve_p90_h": grouped["resolve_hours"].agg(lambda v: _quantile(v, 0.9)),
        "due": grouped["due"].sum(),
        "within_sla": grouped["in_time"].sum(),
        "breached_open": grouped["breached_open"].sum(),
        "reopened": grouped["reopened"].sum(),
        "ever_resolved": grouped["ever_resolved"].sum(),
        "compensated": grouped["compensated"].sum(),
        "compensation_total": grouped["compensation"].sum(min_count=1).fillna(0.0),
    })
    table["within_sla_share"] = table["within_sla"] / table["due"].where(table["due"] > 0)
    table["reopened_share"] = table["reopened"] / table["ever_resolved"].where(table["ever_resolved"] > 0)
    table = table.sort_values("tickets", ascending=False, kind="stable")
    return table.reset_index().rename(columns={key: "group"})


def speed_buckets(frame: pd.DataFrame, now: datetime, timezone: str) -> pd.DataFrame:
    """Per cause, recoveries by local calendar day after the complaint: same day (≈1), next day (≈10),
    later (≈100); and tickets still open — already past the next day, or not yet."""
    zone = ZoneInfo(timezone)

    def local_day(times: pd.Series) -> pd.Series:
        return times.dt.tz_localize("UTC").dt.tz_convert(zone).dt.normalize()

    received = local_day(frame["received_at"])
    resolved = frame["status"].isin(RESOLVED_STATUSES)
    days = (local_day(frame["resolved_at"]) - received).dt.days
    today = pd.Timestamp(now).tz_localize("UTC").tz_convert(zone).normalize()
    waited = (today - received).dt.days
    bucket = np.select([resolved & (days <= 0), resolved & (days == 1), resolved, waited >= 2],
                       ["same_day", "next_day", "later", "open_late"], default="open")
    table = (pd.crosstab(frame["cause"], pd.Categorical(bucket, categories=SPEED_BUCKETS), values=frame["tickets"],
                         aggfunc="sum", dropna=False)
             .reindex(columns=list(SPEED_BUCKETS)).fillna(0).astype(int))
    table.columns = list(SPEED_BUCKETS)
    return table.loc[table.sum(axis=1).sort_values(ascending=False, kind="stable").index].reset_index()


def compensation_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per cause: resolutions by code (one column each), tickets compensated, the total and median amount."""
    resolved = frame[frame["resolution"].notna()]
    codes = pd.crosstab(resolved["cause"], resolved["resolution"]) if len(resolved) else pd.DataFrame()
    paid = frame[frame["compensation"].fillna(0) > 0].groupby("cause")["compensation"]
    amounts = pd.DataFrame({"tickets_compensated": paid.size(), "total": paid.sum(), "median": paid.median()})
    table = codes.join(amounts, how="outer").fillna({"tickets_compensated": 0, "total": 0.0})
    table.index.name = "cause"
    return table.reset_index() if len(table) else pd.DataFrame(columns=["cause", "tickets_compensated", "total",
                                                                        "median"])


def correction_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Routed cause → the cause people found, for the complaints they relabelled, with how often."""
    corrected = frame[frame["corrected"]]
    if corrected.empty:
        return pd.DataFrame(columns=["routed_cause", "cause", "complaints", "share_of_routed"])
    pairs = corrected.groupby(["routed_cause", "cause"])["tickets"].sum().rename("complaints").reset_index()
    routed = frame.groupby("routed_cause")["tickets"].sum()
    pairs["share_of_routed"] = pairs["complaints"] / pairs["routed_cause"].map(routed)
    return pairs.sort_values(["complaints", "routed_cause"], ascending=[False, True]).reset_index(drop=True)


def build_recovery(rows: pd.DataFrame, now: datetime, timezone: str) -> Recovery:
    if "tickets" not in rows.columns:  # one row per ticket
        rows = rows.assign(tickets=1)
    failures = rows[rows["cause"] != NONE_LABEL]
    return Recovery(now=now, tickets=int(failures["tickets"].sum()),
                    by={key: group_figures(failures, key, now) for key in GROUPINGS},
                    speed=speed_buckets(failures, now, timezone), compensation=compensation_table(failures),
                    corrections=correction_table(rows),
                    backlog=int(rows.loc[rows["cause"] == NONE_LABEL, "tickets"].sum()))
