"""Trend aggregation and spike alerts: exact numbers on a small frame read from a real SQLite store,
the documented statistics, a planted spike found, steady data and tiny counts left alone."""
import json
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline.storage import store
from pipeline.config import TrendSettings
from pipeline.reporting.trends import OVERALL, TrendError, Window, build_trends, default_window, period_label
from trend_data import CHANNELS, synthetic_rows

RULE = TrendSettings()


def _complaint(complaint_id, created_at, channel, shop, ingested_at=datetime(2026, 11, 16, 1, 0)):
    return {"complaint_id": complaint_id, "text_raw": f"投诉 {complaint_id}", "text_masked": f"投诉 {complaint_id}",
            "content_hash": complaint_id, "created_at": created_at, "channel": channel,
            "metadata_json": json.dumps({"store": shop}, ensure_ascii=False), "ingested_at": ingested_at}


def _prediction(complaint_id, cause, explanation="", model_version="m1", predicted_at=datetime(2026, 11, 16, 2)):
    return {"complaint_id": complaint_id, "model_version": model_version, "cause": cause, "confidence": 0.9,
            "needs_review": False, "probabilities_json": "{}", "explanation": explanation,
            "predicted_at": predicted_at}


@pytest.fixture
def small_store(tmp_path):
    """Two weeks (Mon 2 Nov – Sun 15 Nov 2026) of nine complaints, one more after the window."""
    engine = store.connect(f"sqlite:///{tmp_path / 'small.db'}")
    complaints = [
        _complaint("A1", datetime(2026, 11, 2, 9), "app", "S1"),
        _complaint("A2", datetime(2026, 11, 3, 9), "web", "S2"),
        _complaint("A3", datetime(2026, 11, 5, 9), "app", "S1"),
        _complaint("A4", datetime(2026, 11, 8, 23, 59), "app", "S1"),
        _complaint("B1", datetime(2026, 11, 9, 0, 0), "app", "S1"),
        _complaint("B2", datetime(2026, 11, 10, 9), "web", "S2"),
        _complaint("B3", None, "app", "S1", ingested_at=datetime(2026, 11, 12, 8)),  # no date: ingested_at counts
        _complaint("B4", datetime(2026, 11, 13, 9), "app", "S1"),
        _complaint("B5", datetime(2026, 11, 14, 9), "web", "S2"),
        _complaint("C1", datetime(2026, 11, 20, 9), "web", "S2"),
    ]
    predictions = [
        _prediction("A1", "personnel", "态度、服务员"), _prediction("A2", "personnel", "态度"),
        _prediction("A3", "process", "流程"), _prediction("A4", "technology", "死机"),
        _prediction("B1", "personnel", "态度"), _prediction("B2", "process", "流程、慢"),
        _prediction("B3", "process", "慢"),
        _prediction("B4", "technology", "死机"),  # an older model said technology …
        _prediction("B4", "process", "慢", model_version="m2", predicted_at=datetime(2026, 11, 17)),  # … the newer one process
        _prediction("B5", "customer", "没看说明"),  # a person relabelled it personnel
        _prediction("C1", "personnel", "态度"),
    ]
    with engine.begin() as conn:
        conn.execute(store.complaints.insert(), complaints)
        conn.execute(store.predictions.insert(), predictions)
        conn.execute(store.reviews.insert(), [
            {"complaint_id": "B5", "cause": "process", "reviewer": "li", "reviewed_at": datetime(2026, 11, 16)},
            {"complaint_id": "B5", "cause": "personnel", "reviewer": "wang", "reviewed_at": datetime(2026, 11, 17)}])
    yield engine
    engine.dispose()


def test_counts_shares_changes_terms_and_splits_are_exact_on_a_small_store(small_store):
    window = default_window(*store.complaint_time_range(small_store), "week", 182, until=datetime(2026, 11, 15))
    assert (window.start, window.end) == (pd.Timestamp("2026-11-02"), pd.Timestamp("2026-11-15"))
    rows = store.read_trend_rows(small_store, window.start, window.end + pd.Timedelta(days=1))
    result = build_trends(rows, window, RULE, period="week", split_by="store")

    assert result.complaints == 9  # C1 is after the window; B4 counts once
    assert result.causes == ["personnel", "process", "technology"]  # B5's 'customer' was reviewed away
    overall = result.counts[result.counts["scope"] == OVERALL]
    table = {(period_label(p, "week"), c): (n, t, s) for p, c, n, t, s in
             overall[["period", "cause", "count", "total", "share"]].itertuples(index=False)}
    assert table == {
        ("2026-11-02", "personnel"): (2, 4, 0.5), ("2026-11-02", "process"): (1, 4, 0.25),
        ("2026-11-02", "technology"): (1, 4, 0.25),
        ("2026-11-09", "personnel"): (2, 5, 0.4), ("2026-11-09", "process"): (3, 5, 0.6),
        ("2026-11-09", "technology"): (0, 5, 0.0),
    }
    week2 = overall[overall["period"] == result.current_period].set_index("cause")
    assert week2["count_change"].to_dict() == {"personnel": 0, "process": 2, "technology": -1}
    assert week2["share_change"].round(4).to_dict() == {"personnel": -0.1, "process": 0.35, "technology": -0.25}
    assert week2["exposure_days"].tolist() == [7, 7, 7]

    by_store = result.counts[(result.counts["scope"] == "store") & (result.counts["period"] == result.current_period)]
    assert {(g, c): n for g, c, n in by_store[["group", "cause", "count"]].itertuples(index=False) if n} == {
        ("S1", "personnel"): 1, ("S1", "process"): 2, ("S2", "personnel"): 1, ("S2", "process"): 1}
    assert result.heatmaps["channel"].loc["app"].to_dict() == {"personnel": 2, "process": 3, "technology": 1}
    assert result.heatmaps["store"].index.tolist() == ["S1", "S2"]  # largest first

    terms = result.terms.assign(period=[period_label(p, "week") for p in result.terms["period"]])
    personnel_week1 = terms[(terms["period"] == "2026-11-02") & (terms["cause"] == "personnel")]
    assert personnel_week1[["term", "count", "share"]].values.tolist() == [["态度", 2, 1.0], ["服务员", 1, 0.5]]
    process_week2 = terms[(terms["period"] == "2026-11-09") & (terms["cause"] == "process")]
    assert dict(zip(process_week2["term"], process_week2["count"])) == {"慢": 3, "流程": 1}

    assert result.tests.empty and result.alerts.empty  # two weeks are too little history to test
    assert set(result.examples["complaint_id"]) == {"B1", "B2", "B3", "B4", "B5"}


def test_spike_statistics_are_the_documented_exact_tests():
    """Three baseline weeks with 10 of 20 complaints personnel; the fourth week has 30 of 40."""
    start = pd.Timestamp("2026-10-05")  # a Monday
    rows, number = [], 0
    for week, (personnel, other) in enumerate([(10, 10), (10, 10), (10, 10), (30, 10)]):
        for cause, count in (("personnel", personnel), ("process", other)):
            for _ in range(count):
                rows.append({"complaint_id": f"X{number}", "at": start + pd.Timedelta(days=7 * week + number % 7),
                             "channel": "app", "metadata_json": "{}", "cause": cause, "confidence": 0.9,
                             "needs_review": False, "explanation": "", "model_version": "m",
                             "predicted_at": start})
                number += 1
    window = Window(start, start + pd.Timedelta(days=27))
    result = build_trends(pd.DataFrame(rows), window, RULE, period="week")
    cell = result.tests[(result.tests["scope"] == OVERALL) & (result.tests["cause"] == "personnel")].iloc[-1]
    assert cell["expected"] == pytest.approx(10.0)  # 30 in 21 baseline days, scaled to 7
    assert cell["p_count"] == pytest.approx(stats.binom.sf(29, 60, 7 / 28))
    assert cell["baseline_share"] == pytest.approx(0.5)
    assert cell["p_share"] == pytest.approx(stats.hypergeom.sf(29, 100, 60, 40))
    # the rate tripled (p ≈ 3e-5); the share rose from 50% to 75% of only 40 (p ≈ 0.010): not enough after BH
    assert cell["flagged"] and cell["test"] == "count"
    assert result.alerts.iloc[0]["cause"] == "personnel"


def test_a_planted_spike_is_found_with_where_and_since():
    rows = synthetic_rows(seed=7, spike={"channel": "app", "cause": "technology", "factor": 2.5, "last_days": 14})
    window = Window(rows["at"].min().normalize(), rows["at"].max().normalize())
    result = build_trends(rows, window, RULE, period="week", split_by="channel")

    app_alert = result.alerts[(result.alerts["group"] == "app") & (result.alerts["cause"] == "technology")]
    assert len(app_alert) == 1
    alert = app_alert.iloc[0]
    assert alert["count"] > 2 * alert["expected"] and alert["q_share"] < RULE.alpha
    assert period_label(alert["since"], "week") == period_label(result.current_period - 1, "week")
    assert set(result.alerts["cause"]) == {"technology"}  # nothing else alerts
    assert set(result.tests.loc[result.tests["flagged"], "cause"]) == {"technology"}


def test_steady_data_of_the_same_size_raises_no_alert():
    rows = synthetic_rows(seed=7)
    window = Window(rows["at"].min().normalize(), rows["at"].max().normalize())
    for period in ("week", "month"):
        result = build_trends(rows, window, RULE, period=period, split_by="channel")
        tested_cells = len(result.tests)
        assert tested_cells > 100 and result.tests["p_count"].between(0, 1).all()
        assert result.alerts.empty, result.alerts
        assert not result.tests["flagged"].any()  # in no period at all, not only the latest


def test_tiny_counts_raise_no_alert_however_improbable():
    """A cause unseen for months appears six times in one channel: improbable, but too few to act on."""
    rows = synthetic_rows(seed=3, causes={"personnel": 0.5, "process": 0.5})
    last_day = rows["at"].max().normalize()
    tiny = pd.DataFrame([{"complaint_id": f"T{i}", "at": last_day - pd.Timedelta(days=i), "channel": "12315",
                          "metadata_json": "{}", "cause": "random", "confidence": 0.9, "needs_review": False,
                          "explanation": "", "model_version": "m", "predicted_at": last_day} for i in range(6)])
    rows = pd.concat([rows, tiny], ignore_index=True)
    window = Window(rows["at"].min().normalize(), last_day)

    result = build_trends(rows, window, RULE, period="week", split_by="channel")
    cell = result.tests[(result.tests["group"] == "12315") & (result.tests["cause"] == "random")].iloc[-1]
    assert cell["count"] == 6 and cell["q_count"] < RULE.alpha  # significant …
    assert result.alerts.empty  # … but below min_count

    lenient = build_trends(rows, window, RULE.model_copy(update={"min_count": 5}), period="week", split_by="channel")
    assert ("12315", "random") in set(zip(lenient.alerts["group"], lenient.alerts["cause"]))


def test_a_partial_current_month_is_compared_per_day():
    """The window ends on the 10th: a steady rate must not look like a drop or a spike."""
    rows = synthetic_rows(seed=11)
    end = pd.Timestamp("2026-11-10")
    window = Window(rows["at"].min().normalize(), end)
    result = build_trends(rows, window, RULE, period="month")
    current = result.tests[(result.tests["period"] == result.current_period) & (result.tests["scope"] == OVERALL)]
    assert (current["baseline_days"] > 0).all()
    assert ((current["count"] / current["expected"]).between(0.8, 1.25)).all()
    assert result.alerts.empty


def test_split_by_an_unknown_column_names_the_ones_there_are():
    rows = synthetic_rows(seed=1, days=21)
    window = Window(rows["at"].min().normalize(), rows["at"].max().normalize())
    with pytest.raises(TrendError, match=r"cannot split by 'colour'.*\['store'\]"):
        build_trends(rows, window, RULE, split_by="colour")


def test_the_default_window_starts_at_the_first_complaint_and_rejects_an_inverted_range():
    earliest, latest = datetime(2026, 9, 30, 15), datetime(2026, 11, 22, 18)
    window = default_window(earliest, latest, "week", 182)
    assert (window.start, window.end) == (pd.Timestamp("2026-09-30"), pd.Timestamp("2026-11-22"))
    window = default_window(datetime(2025, 1, 1), latest, "week", 28)
    assert window.start == pd.Timestamp("2026-10-26")  # 28 days back, moved to that week's Monday
    assert default_window(None, None, "week", 28) is None
    with pytest.raises(TrendError, match="--since"):
        default_window(earliest, latest, "week", 28, since=datetime(2026, 12, 1))


def test_aggregation_is_deterministic_and_channels_cover_every_complaint():
    rows = synthetic_rows(seed=5, days=56)
    window = Window(rows["at"].min().normalize(), rows["at"].max().normalize())
    first = build_trends(rows, window, RULE)
    second = build_trends(rows.sample(frac=1.0, random_state=1), window, RULE)
    pd.testing.assert_frame_equal(first.counts, second.counts)
    failures = (rows["cause"] != "none").sum()
    assert int(first.heatmaps["channel"].to_numpy().sum()) == failures == first.complaints
    assert first.complaints + first.backlog["not_complaints"].sum() == len(rows)  # none is the backlog, apart
    assert set(first.heatmaps["channel"].index) == set(CHANNELS)
    assert np.isclose(first.counts[first.counts["scope"] == OVERALL].groupby("period")["share"].sum(), 1).all()


def test_not_a_complaint_is_no_cause_and_raises_no_alert_however_it_rises():
    """'none' tripled in the app for two weeks: no alert, no share, no bar; the backlog shows the rise."""
    rows = synthetic_rows(seed=7, days=126, per_day=60,
                          spike={"channel": "app", "cause": "none", "factor": 3.0, "last_days": 14})
    window = Window(rows["at"].min().normalize(), rows["at"].max().normalize())
    result = build_trends(rows, window, RULE, period="week")
    assert "none" not in result.causes and "none" not in set(result.counts["cause"])
    assert result.alerts.empty and not result.tests["flagged"].any()
    overall = result.counts[result.counts["scope"] == OVERALL]
    assert np.isclose(overall.groupby("period")["share"].sum(), 1).all()  # shares among the causes
    backlog = result.backlog.set_index("period")["not_complaints"]
    assert backlog.iloc[-2:].mean() > 1.2 * backlog.iloc[:-2].mean()  # a third more: one channel of six tripled
    waiting = (rows["needs_review"] | (rows["cause"] == "none")).sum()  # nothing was reviewed
    assert result.backlog["awaiting_review"].sum() == waiting


def test_each_alert_quotes_complaints_of_its_own_cell():
    rows = synthetic_rows(seed=7, spike={"channel": "app", "cause": "technology", "factor": 2.5, "last_days": 14})
    window = Window(rows["at"].min().normalize(), rows["at"].max().normalize())
    result = build_trends(rows, window, RULE, split_by="channel")
    assert len(result.alerts)
    quoted = result.alert_examples.merge(rows[["complaint_id", "cause", "channel", "at"]], on="complaint_id")
    for position, alert in enumerate(result.alerts.itertuples()):
        mine = quoted[quoted["alert"] == position]
        assert len(mine) == 2 and (mine["cause"] == alert.cause).all()
        if alert.scope != OVERALL:
            assert (mine["channel"] == alert.group).all()
        assert (mine["at"].dt.to_period("W-SUN") == alert.period).all()


def test_terms_counted_a_slice_of_explanations_at_a_time_are_the_same(monkeypatch):
    from pipeline.reporting import trends

    rows = synthetic_rows(seed=7, days=28)
    rows["explanation"] = [f"{a}、{b}" for a, b in zip(rows["explanation"], rows["explanation"].sample(frac=1.0, random_state=2))]
    window = Window(rows["at"].min().normalize(), rows["at"].max().normalize())
    whole = build_trends(rows, window, RULE).terms
    monkeypatch.setattr(trends, "TERM_SLICE", 7)  # memory bounded by the slice, not by the window's complaints
    pd.testing.assert_frame_equal(build_trends(rows, window, RULE).terms, whole)
    assert len(whole) and (whole["count"] <= whole["cause_complaints"] * 2).all()
