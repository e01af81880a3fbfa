"""One time rule: the database holds UTC (naive datetimes), a time given without a zone (an export's
dates, ``--since``) is read in ``Settings.timezone``, and people are shown the configured zone.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd


def utc_wall_times(naive_local: pd.Series, timezone: str) -> pd.Series:
    """Naive local wall times → naive UTC (a time repeated by a DST change is taken as standard time)."""
    localized = naive_local.dt.tz_localize(timezone, ambiguous=np.zeros(len(naive_local), dtype=bool),
                                           nonexistent="shift_forward")
    return localized.dt.tz_convert("UTC").dt.tz_localize(None)


def to_utc(value: datetime | pd.Timestamp | None, timezone: str) -> datetime | None:
    """A time as stored: aware times converted to UTC, naive ones read in ``timezone``."""
    if value is None or pd.isna(value):
        return None
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        return utc_wall_times(pd.Series([stamp]), timezone).iloc[0].to_pydatetime()
    return stamp.tz_convert("UTC").tz_localize(None).to_pydatetime()


def to_local(value: datetime | pd.Timestamp | None, timezone: str) -> pd.Timestamp | None:
    """A stored (naive UTC) time in ``timezone``, aware."""
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).tz_localize("UTC").tz_convert(timezone)


def local_wall_times(naive_utc: pd.Series, timezone: str) -> pd.Series:
    """Stored (naive UTC) times → naive wall times in ``timezone`` (for grouping by local day or week)."""
    return naive_utc.dt.tz_localize("UTC").dt.tz_convert(timezone).dt.tz_localize(None)


def local_iso(value: datetime | None, timezone: str) -> str | None:
    """A stored time for people and receivers: ISO 8601 in ``timezone`` with its offset."""
    if type(value) is not datetime:  # plain datetimes (three per ticket) skip the checks
        if value is None or pd.isna(value):
            return None
        if isinstance(value, pd.Timestamp):
            value = value.to_pydatetime(warn=False)
    if value.tzinfo is None:  # as stored: the zone's offset of the UTC hour, half the cost of astimezone
        hour = _hour_offset(timezone, (value - _EPOCH) // _HOUR)
        if hour is not None:
            offset, shown = hour
            return (value + offset).isoformat(timespec="seconds") + shown
    return value.replace(tzinfo=dt_timezone.utc).astimezone(_zone(timezone)).isoformat(timespec="seconds")


_EPOCH, _HOUR = datetime(1970, 1, 1), timedelta(hours=1)


@lru_cache(maxsize=65_536)
def _hour_offset(timezone: str, hour: int) -> tuple[timedelta, str] | None:
    """The zone's UTC offset through the ``hour``-th UTC hour after 1970 and its ISO text ('+08:00'); None
    when the offset changes within that hour."""
    start = _EPOCH + hour * _HOUR
    first, last = (utc.replace(tzinfo=dt_timezone.utc).astimezone(_zone(timezone))
                   for utc in (start, start + _HOUR - timedelta(microseconds=1)))
    if first.utcoffset() != last.utcoffset():
        return None
    return first.utcoffset(), first.isoformat()[len("2026-11-24T00:00:00"):]


@lru_cache(maxsize=None)
def _zone(timezone: str) -> ZoneInfo:
    return ZoneInfo(timezone)
