"""Generated ticket updates for the demo: what the queues' teams might have reported back about the demo
sample's tickets, so the recovery report has something to show (``complaints data demo-updates``).

Made up, and meant for the demo store only: each queue works at its own pace (lognormal hours to answer
and to fix), some tickets are never answered or never fixed, some are reopened, resolution codes fit the
cause, and nothing is dated after ``now``. No cause is corrected: the demo has no truth to correct to.
The rows are the ``complaints tickets update --file`` format, times in the configured zone.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from pipeline.storage import store
from pipeline.clock import to_local

# queue → (median hours to answer, median hours to fix)
QUEUE_PACE = {"service-quality": (1, 8), "operations": (4, 30), "technical-support": (2, 14),
              "management-office": (12, 80), "customer-care": (6, 24), "customer-communications": (1, 6),
              "manual-review": (3, 20), "triage": (6, 30)}
DEFAULT_PACE = (8, 36)
# cause → resolution codes and their weights
RESOLUTION_MIX = {
    "personnel": {"apologised": 0.45, "compensated": 0.35, "fixed": 0.2},
    "process": {"fixed": 0.5, "apologised": 0.25, "compensated": 0.25},
    "technology": {"fixed": 0.6, "compensated": 0.3, "explained": 0.1},
    "management": {"fixed": 0.4, "explained": 0.3, "compensated": 0.3},
    "customer": {"explained": 0.6, "not_our_fault": 0.3, "apologised": 0.1},
    "random": {"explained": 0.6, "compensated": 0.3, "apologised": 0.1},
}
DEFAULT_MIX = {"explained": 0.6, "not_our_fault": 0.4}
TEAM = ("王芳", "李雷", "张伟", "刘洋", "陈静")


def demo_updates(engine: sa.Engine, now: datetime, timezone: str, seed: int = 20261207) -> pd.DataFrame:
    """Update rows for every still-open ticket, in the order they happened."""
    tickets = store.tickets
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(
            sa.select(tickets.c.ticket_id, tickets.c.cause, tickets.c.queue,
                      sa.func.coalesce(tickets.c.received_at, tickets.c.created_at).label("received_at"))
            .where(tickets.c.status == "open").order_by(tickets.c.ticket_id)).mappings().all())
    rng = np.random.default_rng(seed)
    rows = []
    for ticket in frame.itertuples(index=False):
        answer_median, fix_median = QUEUE_PACE.get(ticket.queue, DEFAULT_PACE)
        received = pd.Timestamp(ticket.received_at).to_pydatetime()
        by = str(rng.choice(TEAM))
        fate = rng.random()
        steps = []
        if fate < 0.08:  # never answered
            pass
        else:
            answered = received + timedelta(hours=float(rng.lognormal(np.log(answer_median), 0.8)))
            steps.append((answered, "acknowledged", "", "", "已联系顾客，告知正在处理"))
            if fate >= 0.16:  # 8% answered but not fixed yet
                fixed = answered + timedelta(hours=float(rng.lognormal(np.log(fix_median), 0.9)))
                mix = RESOLUTION_MIX.get(ticket.cause, DEFAULT_MIX)
                code = str(rng.choice(list(mix), p=list(mix.values())))
                amount = f"{max(10, round(float(rng.lognormal(np.log(60), 0.7)), -1)):.0f}" if code == "compensated" else ""
                steps.append((fixed, "resolved", code, amount, ""))
                if rng.random() < 0.06:  # the fix did not hold
                    back = fixed + timedelta(hours=float(rng.uniform(12, 72)))
                    steps.append((back, "reopened", "", "", "顾客反馈问题仍未解决"))
                    steps.append((back + timedelta(hours=float(rng.lognormal(np.log(fix_median / 2), 0.6))),
                                  "resolved", "fixed", amount, "二次处理"))
                elif rng.random() < 0.6:
                    steps.append((steps[-1][0] + timedelta(hours=float(rng.uniform(20, 60))), "closed", "", "", ""))
        for at, status, resolution, compensation, note in steps:
            if at > now:
                break  # has not happened yet
            rows.append({"ticket_id": ticket.ticket_id, "status": status, "resolution": resolution, "cause": "",
                         "compensation": compensation, "note": note, "by": by,
                         "at": to_local(at, timezone).isoformat(timespec="minutes")})
    return pd.DataFrame(rows, columns=["ticket_id", "status", "resolution", "cause", "compensation", "note", "by",
                                       "at"])
