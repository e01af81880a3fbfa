"""One time rule around midnight in Shanghai: the store holds UTC, times without a zone are local
(Settings.timezone), people see local times."""
import json
from datetime import datetime

import pandas as pd
import pytest

from pipeline.storage import store
from pipeline.ingest.validate import parse_timestamps
from ticket_helpers import process_file

ROWS = [("LATE", "服务员态度很差", "2026-11-23 23:30"),  # local, no zone: the 23rd in Shanghai
        ("AWARE", "空调坏了没人修", "2026-11-24T00:30:00+08:00"),  # the 24th in Shanghai, 16:30 UTC on the 23rd
        ("UTC", "排队两个小时", "2026-11-23T16:10:00Z"),  # 00:10 on the 24th in Shanghai
        ("EARLY", "收费不透明", "2026-11-24 00:05")]


def _write(path):
    path.write_text("id,text,created_at\n" + "".join(f"{i},{t},{d}\n" for i, t, d in ROWS), encoding="utf-8")
    return path


def test_times_without_a_zone_are_local_and_everything_is_stored_as_utc():
    parsed = parse_timestamps(pd.Series([d for _, _, d in ROWS]), "Asia/Shanghai")
    assert list(parsed) == [pd.Timestamp("2026-11-23 15:30"), pd.Timestamp("2026-11-23 16:30"),
                            pd.Timestamp("2026-11-23 16:10"), pd.Timestamp("2026-11-23 16:05")]


def test_report_days_follow_the_local_midnight(lexicon_settings, tmp_path):
    process_file(lexicon_settings, _write(tmp_path / "in.csv"), now=datetime(2026, 11, 24, 2, 0))
    engine = store.connect(lexicon_settings.resolved_database_url)
    rows = store.read_trend_rows(engine, datetime(2026, 11, 24), datetime(2026, 11, 25), "Asia/Shanghai")
    earliest, latest = store.complaint_time_range(engine, "Asia/Shanghai")
    engine.dispose()
    assert sorted(rows["complaint_id"]) == ["AWARE", "EARLY", "UTC"]  # LATE belongs to the 23rd
    assert rows.set_index("complaint_id").loc["AWARE", "at"] == pd.Timestamp("2026-11-24 00:30")
    assert (earliest, latest) == (datetime(2026, 11, 23, 23, 30), datetime(2026, 11, 24, 0, 30))


def test_ticket_deadlines_are_shown_in_local_time_with_their_offset(lexicon_settings, tmp_path):
    now = datetime(2026, 11, 23, 16, 0)  # UTC: midnight in Shanghai
    records = process_file(lexicon_settings, _write(tmp_path / "in.csv"), now=now)
    ticket = next(t for t in records["ticket_rows"] if t["complaint_id"] == "LATE")
    payload = json.loads(ticket["payload_json"])
    due = pd.Timestamp(payload["due_at"])
    assert payload["due_at"].endswith("+08:00")
    assert due.tz_convert("UTC").tz_localize(None) == pd.Timestamp(ticket["due_at"])  # the stored UTC moment
    assert payload["complaint_created_at"] == "2026-11-23T23:30:00+08:00"


@pytest.mark.flow
def test_since_is_a_local_time(prefect_harness, lexicon_settings, tmp_path):
    from flows.nightly import nightly_flow

    summary = nightly_flow(source=str(_write(tmp_path / "in.csv")), since=datetime(2026, 11, 24),
                           settings=lexicon_settings)
    assert summary["counts"]["skipped_before_since"] == 1  # LATE only
    assert summary["counts"]["classified"] == 3


@pytest.mark.parametrize("timezone", ["Asia/Shanghai", "Europe/Berlin", "America/St_Johns", "Australia/Lord_Howe",
                                      "Asia/Kathmandu", "Africa/Monrovia", "UTC"])
def test_local_iso_shows_each_stored_time_as_its_zone_does(timezone):
    """``local_iso`` looks each UTC hour's offset up once: the same text as converting every time, through
    DST changes (Lord Howe's by half an hour), quarter-hour zones and the odd offsets of local mean time."""
    from datetime import timedelta, timezone as dt_timezone
    from zoneinfo import ZoneInfo

    from pipeline.clock import local_iso

    zone = ZoneInfo(timezone)
    times = [datetime(year, 1, 1) + timedelta(minutes=7 * step, seconds=step % 61, microseconds=step * 997 % 10**6)
             for year in (1900, 1919, 1972, 2026) for step in range(0, 365 * 24 * 60 // 7, 17)]
    times += [datetime(1, 1, 1, 12), datetime(9999, 12, 30, 12, 59, 59, 999999), pd.Timestamp("2026-03-29 01:00")]
    assert [local_iso(t, timezone) for t in times] == [
        t.replace(tzinfo=dt_timezone.utc).astimezone(zone).isoformat(timespec="seconds") for t in times]
    assert local_iso(None, timezone) is None and local_iso(pd.NaT, timezone) is None
