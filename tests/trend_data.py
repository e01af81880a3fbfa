"""Synthetic stored predictions for trend tests: Poisson arrivals per day, causes and channels at fixed
rates, optionally one (channel, cause) cell raised by a factor over the last days."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

CAUSE_RATES = {"personnel": 0.15, "process": 0.2, "technology": 0.2, "management": 0.1, "customer": 0.08,
               "random": 0.05, "none": 0.22}
CHANNELS = ("app", "web", "hotline", "wechat", "store", "12315")
STORES = ("北京朝阳店", "上海浦东店", "广州天河店")
TERMS = {"personnel": ("态度差", "不耐烦"), "process": ("排队", "流程"), "technology": ("死机", "闪退"),
         "management": ("价格", "收费"), "customer": ("没看说明",), "random": ("台风",), "none": ("",)}


def synthetic_rows(*, seed: int, days: int = 182, per_day: float = 300, causes: dict[str, float] | None = None,
                   spike: dict | None = None, start: str = "2026-05-25") -> pd.DataFrame:
    """Rows shaped like ``store.read_trend_rows``. ``spike``: channel, cause, factor, last_days."""
    rng = np.random.default_rng(seed)
    rates = causes or CAUSE_RATES
    day_index = np.repeat(np.arange(days), rng.poisson(per_day, days))
    cause = rng.choice(list(rates), len(day_index), p=np.array(list(rates.values())) / sum(rates.values()))
    channel = rng.choice(CHANNELS, len(day_index))
    if spike:
        cell_rate = per_day * rates[spike["cause"]] / sum(rates.values()) / len(CHANNELS)
        spike_days = np.arange(days - spike["last_days"], days)
        extra = np.repeat(spike_days, rng.poisson(cell_rate * (spike["factor"] - 1), len(spike_days)))
        day_index = np.concatenate([day_index, extra])
        cause = np.concatenate([cause, np.full(len(extra), spike["cause"])])
        channel = np.concatenate([channel, np.full(len(extra), spike["channel"])])
    count = len(day_index)
    at = (pd.Timestamp(start) + pd.to_timedelta(day_index, unit="D")
          + pd.to_timedelta(rng.integers(0, 86_400, count), unit="s"))
    shop = rng.choice(STORES, count)
    return pd.DataFrame({
        "complaint_id": [f"S{i:07d}" for i in range(count)], "at": at, "channel": channel,
        "metadata_json": [json.dumps({"store": s}, ensure_ascii=False) for s in shop],
        "cause": cause, "confidence": rng.uniform(0.3, 1.0, count).round(4),
        "needs_review": rng.random(count) < 0.2,
        "explanation": [TERMS[c][i % len(TERMS[c])] for i, c in enumerate(cause)],
        "model_version": "synthetic", "predicted_at": at, "reviewed_cause": None,
    })


def write_to_store(engine, rows: pd.DataFrame, texts: dict[str, str] | None = None) -> None:
    """Store rows made by ``synthetic_rows`` as real complaints and predictions (texts default to a stub).
    Their times are local (the default time zone); the store holds UTC."""
    from pipeline.storage import store
    from pipeline.clock import utc_wall_times
    from pipeline.config import Settings

    texts = texts or {}
    rows = rows.assign(at=utc_wall_times(rows["at"], Settings().timezone),
                       predicted_at=utc_wall_times(rows["predicted_at"], Settings().timezone))
    complaints = [{"complaint_id": r.complaint_id, "text_raw": texts.get(r.complaint_id, f"投诉{r.complaint_id}"),
                   "text_masked": texts.get(r.complaint_id, f"投诉{r.complaint_id}"),
                   "content_hash": r.complaint_id, "created_at": r.at.to_pydatetime(), "channel": r.channel,
                   "metadata_json": r.metadata_json, "ingested_at": r.predicted_at.to_pydatetime()}
                  for r in rows.itertuples()]
    predictions = [{"complaint_id": r.complaint_id, "model_version": r.model_version, "cause": r.cause,
                    "confidence": float(r.confidence), "needs_review": bool(r.needs_review),
                    "probabilities_json": "{}", "explanation": r.explanation,
                    "predicted_at": r.predicted_at.to_pydatetime()} for r in rows.itertuples()]
    with engine.begin() as conn:
        conn.execute(store.complaints.insert(), complaints)
        conn.execute(store.predictions.insert(), predictions)
