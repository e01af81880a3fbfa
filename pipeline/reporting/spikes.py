"""Spike alerts over the counts of ``trends.cause_counts``: which cause rose above its own baseline, where,
and since when.

Each period is compared with its own trailing baseline: the ``baseline_periods`` periods just before it
(testing starts once ``min_baseline_periods`` of them exist). For every cause, overall and within each
group of the split column, two one-sided exact tests ask whether the period is *above* its baseline:

* count: is the cause's daily rate higher? Conditional on the combined count n = x + b (x this period,
  b in the baseline), x ~ Binomial(n, e / (e + e_b)) under equal rates, with e and e_b the days each
  covers (months and a partly elapsed current period differ in length). Expected = b · e / e_b.
* share: is the cause a larger part of the group's complaints? One-sided Fisher exact test of the 2×2
  table (cause / other × period / baseline), i.e. the hypergeometric upper tail. Expected share =
  baseline count / baseline total. This test is not fooled by a rise in all complaints.

Within one period all p-values (both tests, every cause, overall and every group) are one family,
corrected with Benjamini–Hochberg; a test passes when its q-value ≤ ``alpha`` and its ratio to the
expectation ≥ ``min_ratio``. A cell is flagged when either test passes and it holds at least
``min_count`` complaints — tiny counts never alert, however improbable. Under steady data a period
therefore alerts with a probability of about ``alpha`` or less. Alerts are the flagged cells of the
latest period; "since" is the first period of the unbroken run of flagged periods that ends there.

Both tests assume complaints arrive independently (Poisson); strongly seasonal data (weekday effects
with ``period="day"``) makes them too eager, which ``min_ratio`` and weekly periods temper.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.config import TrendSettings

TEST_COLUMNS = ["period", "scope", "group", "cause", "count", "total", "share", "expected", "count_ratio",
                "p_count", "baseline_share", "share_ratio", "p_share", "baseline_count", "baseline_total",
                "baseline_days", "q_count", "q_share", "test", "flagged"]


def _trailing_sum(values: np.ndarray, window: int) -> np.ndarray:
    """Per row of a (series × periods) array: the sum over the ``window`` periods before each period."""
    cumulative = np.concatenate([np.zeros((values.shape[0], 1)), np.cumsum(values, axis=1)], axis=1)
    ends = np.arange(values.shape[1])
    starts = np.maximum(ends - window, 0)
    return cumulative[:, ends] - cumulative[:, starts]


def spike_tests(counts: pd.DataFrame, rule: TrendSettings) -> pd.DataFrame:
    """Both tests of the module docstring for every cell with enough baseline, BH-corrected per period."""
    if counts.empty:
        return pd.DataFrame(columns=TEST_COLUMNS)
    ordered = counts.sort_values(["scope", "group", "cause", "period"], kind="stable").reset_index(drop=True)
    n_periods = ordered["period"].nunique()
    shape = (len(ordered) // n_periods, n_periods)
    count, total, days = (ordered[column].to_numpy(dtype=float).reshape(shape)
                          for column in ("count", "total", "exposure_days"))
    base_count = _trailing_sum(count, rule.baseline_periods)
    base_total = _trailing_sum(total, rule.baseline_periods)
    base_days = _trailing_sum(days, rule.baseline_periods)
    history = np.minimum(np.arange(n_periods), rule.baseline_periods)
    testable = (history >= rule.min_baseline_periods)[None, :] & (total > 0)

    expected = base_count * days / np.where(base_days > 0, base_days, np.nan)
    p_count = stats.binom.sf(count - 1, count + base_count, days / (days + base_days))
    baseline_share = base_count / np.where(base_total > 0, base_total, np.nan)
    p_share = stats.hypergeom.sf(count - 1, total + base_total, count + base_count, total)
    share = count / np.where(total > 0, total, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        count_ratio = np.where(expected > 0, count / expected, np.where(count > 0, np.inf, np.nan))
        share_ratio = np.where(baseline_share > 0, share / baseline_share, np.where(count > 0, np.inf, np.nan))

    tests = ordered[["period", "scope", "group", "cause", "count", "total"]].copy()
    grids = {"share": share, "expected": expected, "count_ratio": count_ratio, "p_count": p_count,
             "baseline_share": baseline_share, "share_ratio": share_ratio, "p_share": p_share,
             "baseline_count": base_count, "baseline_total": base_total, "baseline_days": base_days,
             "testable": testable}
    tests = tests.assign(**{column: grid.reshape(-1) for column, grid in grids.items()})
    tests = tests[tests["testable"]].drop(columns="testable").reset_index(drop=True)
    tests["q_count"], tests["q_share"] = _benjamini_hochberg_per_period(tests)
    count_passes = (tests["q_count"] <= rule.alpha) & (tests["count_ratio"] >= rule.min_ratio)
    share_passes = (tests["q_share"] <= rule.alpha) & (tests["share_ratio"] >= rule.min_ratio)
    tests["test"] = np.select([count_passes & share_passes, count_passes, share_passes],
                              ["count+share", "count", "share"], default="")
    tests["flagged"] = (count_passes | share_passes) & (tests["count"] >= rule.min_count)
    return tests


def _benjamini_hochberg_per_period(tests: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    q_count = np.ones(len(tests))
    q_share = np.ones(len(tests))
    for _, rows in tests.groupby("period").indices.items():
        family = np.concatenate([tests["p_count"].to_numpy()[rows], tests["p_share"].to_numpy()[rows]])
        adjusted = stats.false_discovery_control(np.clip(family, 0.0, 1.0), method="bh")
        q_count[rows], q_share[rows] = adjusted[:len(rows)], adjusted[len(rows):]
    return q_count, q_share


def current_alerts(tests: pd.DataFrame, current_period: pd.Period) -> pd.DataFrame:
    """The flagged cells of the current period, each with ``since``: where its unbroken flagged run began."""
    flagged = tests[tests["flagged"].astype(bool)]
    alerts = flagged[flagged["period"] == current_period].copy()
    if alerts.empty:
        return alerts.assign(since=pd.Series(dtype=object))
    flagged_periods = flagged.groupby(["scope", "group", "cause"])["period"].agg(set)
    since = []
    for alert in alerts.itertuples():
        start = alert.period
        while start - 1 in flagged_periods[(alert.scope, alert.group, alert.cause)]:
            start -= 1
        since.append(start)
    alerts["since"] = since
    return alerts.sort_values(["q_share", "q_count"]).reset_index(drop=True)
