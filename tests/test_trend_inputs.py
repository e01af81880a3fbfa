"""The trend report's inputs counted by the database (issue 12): the same trends as from one row per
complaint, on SQLite and PostgreSQL, while the report reads a few hundred rows where the store holds
thousands of complaints."""
import sqlite3
from datetime import datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline.config import Settings, TrendSettings, load_settings
from pipeline.reporting.report import build_report
from pipeline.reporting.trend_inputs import read_trend_inputs
from pipeline.reporting.trends import Window, build_trends, trends_of
from pipeline.storage import store
from trend_data import synthetic_rows, write_to_store

RULE = TrendSettings()
TIMEZONE = Settings().timezone


def _filled(url: str) -> sa.Engine:
    """Ten weeks of synthetic complaints with a planted spike, one of them predicted again by a newer
    model, one relabelled by a person twice, a few outside the window."""
    rows = synthetic_rows(seed=5, days=70, per_day=60, start="2026-09-07",
                          spike={"channel": "web", "cause": "process", "factor": 4, "last_days": 7})
    engine = store.connect(url)
    write_to_store(engine, rows)
    first, second = rows["complaint_id"].iloc[0], rows["complaint_id"].iloc[-1]
    with engine.begin() as conn:
        conn.execute(store.predictions.insert(), [{
            "complaint_id": second, "model_version": "newer", "cause": "technology", "confidence": 0.99,
            "needs_review": False, "probabilities_json": "{}", "explanation": "死机、闪退",
            "predicted_at": datetime(2026, 11, 20)}])
        conn.execute(store.reviews.insert(), [
            {"complaint_id": first, "cause": "process", "reviewer": "li", "reviewed_at": datetime(2026, 11, 1)},
            {"complaint_id": first, "cause": "personnel", "reviewer": "wang", "reviewed_at": datetime(2026, 11, 2)}])
    return engine


@pytest.mark.parametrize("period, split_by", [("week", "channel"), ("day", "store")])
def test_the_counted_inputs_give_the_same_trends_as_one_row_per_complaint(database_url, period, split_by):
    engine = _filled(database_url)
    window = Window(pd.Timestamp("2026-09-20"), pd.Timestamp("2026-11-15"))  # leaves two weeks out
    rows = store.read_trend_rows(engine, window.start, window.end + pd.Timedelta(days=1), TIMEZONE)
    expected = build_trends(rows, window, RULE, period=period, split_by=split_by)
    inputs = read_trend_inputs(engine, window, period, TIMEZONE, split_by=split_by, examples=RULE.examples_per_cause)
    got = trends_of(inputs, window, RULE, period=period, split_by=split_by)
    engine.dispose()

    assert got.complaints == expected.complaints > 1000 and got.causes == expected.causes
    assert len(inputs.candidates) < 200 and (len(inputs.cells) < len(rows) / 3 or period == "day")  # counted
    pd.testing.assert_frame_equal(got.counts, expected.counts)
    pd.testing.assert_frame_equal(got.tests, expected.tests)
    pd.testing.assert_frame_equal(got.alerts, expected.alerts)
    assert len(got.alerts) or period == "day"  # the planted spike, by week
    for frame in ("terms", "examples", "alert_examples", "backlog"):
        pd.testing.assert_frame_equal(getattr(got, frame).astype(object), getattr(expected, frame).astype(object),
                                      check_categorical=False)
    assert got.heatmaps.keys() == expected.heatmaps.keys()
    for column in got.heatmaps:
        pd.testing.assert_frame_equal(got.heatmaps[column], expected.heatmaps[column], check_names=False)
    assert got.unfamiliar_share == expected.unfamiliar_share


class _CountingCursor(sqlite3.Cursor):
    rows_read = 0

    def fetchone(self):
        row = super().fetchone()
        _CountingCursor.rows_read += row is not None
        return row

    def fetchmany(self, size=None):
        rows = super().fetchmany(size) if size is not None else super().fetchmany()
        _CountingCursor.rows_read += len(rows)
        return rows

    def fetchall(self):
        rows = super().fetchall()
        _CountingCursor.rows_read += len(rows)
        return rows


class _CountingConnection(sqlite3.Connection):
    def cursor(self, factory=_CountingCursor):
        return super().cursor(factory)


def test_the_report_reads_counts_not_one_row_per_complaint(tmp_path):
    path = tmp_path / "complaints.db"
    _filled(f"sqlite:///{path}").dispose()
    with sqlite3.connect(path) as conn:
        stored = conn.execute("SELECT count(*) FROM predictions").fetchone()[0]
    counting = sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(path, factory=_CountingConnection))
    settings = load_settings(work_dir=tmp_path / "work", classifier="lexicon")
    _CountingCursor.rows_read = 0
    report = build_report(counting, settings, until=datetime(2026, 11, 15))
    counting.dispose()

    assert report.trends.complaints > 1000 and len(report.trends.examples) and len(report.trends.alerts)
    # per period, cause, channel and review state (~800 here); one row per complaint read > 3,400 here
    assert stored > 4000 and _CountingCursor.rows_read < stored / 4
