"""Cause trends over stored predictions: counts and shares per period, splits, changes, terms, examples,
and the spike alerts of ``spikes``. Pure functions over ``TrendInputs`` (``trend_inputs``): complaints
counted per period and kind, the explanations counted per period and cause, and the latest period's
candidate examples — aggregated by the database for the report (``read_trend_inputs``), or from the
per-complaint rows of ``store.read_trend_rows`` (``build_trends``).

A complaint counts once, in the period of its time (``created_at``, or ``ingested_at`` when the source
gave no date), under its cause: the latest review's label when a person reviewed it, otherwise the
latest model prediction. ``none`` (not a service-failure complaint: praise, questions, noise) is not a
cause: counts, shares, tests, terms and examples cover the service failures only, so the shares of a
period add up to 1 over the causes, and the texts labelled ``none`` — with those the model was unsure
about — are the review backlog, counted apart (``backlog``).

How an alert is decided (tests, baseline, multiple-testing correction) is said in ``spikes``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from itertools import chain

import numpy as np
import pandas as pd

from pipeline.config import TrendSettings
from pipeline.labels import CAUSES, NONE_LABEL, UNFAMILIAR_NOTE_SHARE
from pipeline.reporting.spikes import current_alerts, spike_tests

PERIOD_FREQUENCIES = {"day": "D", "week": "W-SUN", "month": "M"}  # weeks run Monday to Sunday
OVERALL = "all"  # scope and group of the rows that are not split
MISSING_GROUP = "(missing)"
TERM_SEPARATOR = "、"  # how classify.py joins explanation terms
TERM_SLICE = 50_000  # distinct explanations split at a time
ALERT_EXAMPLES = 2  # complaints quoted under each alert
TREND_COLUMNS = ("complaint_id", "at", "channel", "metadata_json", "cause", "confidence", "needs_review",
                 "explanation", "predicted_at")


class TrendError(ValueError):
    """The trend request cannot be answered; the message says which option to change."""


@dataclass(frozen=True)
class Window:
    """Whole days from ``start`` to ``end`` inclusive."""

    start: pd.Timestamp
    end: pd.Timestamp


@dataclass(frozen=True)
class Trends:
    period: str
    split_by: str
    window: Window
    causes: list[str]
    complaints: int  # service failures in the window
    counts: pd.DataFrame  # period, scope, group, cause, count, total, share, exposure_days, changes
    tests: pd.DataFrame  # every tested cell with its statistics and whether it is flagged
    alerts: pd.DataFrame  # flagged cells of the latest period, with since
    terms: pd.DataFrame  # period, cause, term, count, cause_complaints, share
    examples: pd.DataFrame  # complaint_id, cause, at, channel, confidence (latest period)
    alert_examples: pd.DataFrame  # alert (position in alerts), complaint_id: complaints of each alert's cell
    backlog: pd.DataFrame  # period, not_complaints, awaiting_review (texts of the review backlog)
    heatmaps: dict[str, pd.DataFrame]  # split column → group × cause counts over the window
    rule: TrendSettings
    unfamiliar_share: float = 0.0  # complaints the model judged unlike its training data, share of the window

    @property
    def current_period(self) -> pd.Period:
        return self.window.end.to_period(PERIOD_FREQUENCIES[self.period])


def overall_counts(result: Trends) -> pd.DataFrame:
    """The counts that are not split by a group."""
    return result.counts[result.counts["scope"] == OVERALL]


def latest_predictions(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per complaint: its latest prediction (several model versions may have predicted it)."""
    if not rows["complaint_id"].duplicated().any():
        return rows
    return rows.sort_values("predicted_at", kind="stable").drop_duplicates("complaint_id", keep="last")


def prepare_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per complaint: its latest prediction, with a reviewed label taking precedence."""
    missing = [c for c in TREND_COLUMNS if c not in rows.columns]
    if missing:
        raise TrendError(f"trend rows lack the columns {missing}; read them with store.read_trend_rows")
    frame = latest_predictions(rows)
    cause, was_reviewed = frame["cause"].astype(object), False
    if "reviewed_cause" in frame.columns:
        reviewed = frame["reviewed_cause"].astype(object)
        cause, was_reviewed = reviewed.where(reviewed.notna(), cause), reviewed.notna()
    channel = frame["channel"].astype(object)
    channel = channel.where(channel.notna() & (channel != ""), MISSING_GROUP)
    return frame.assign(at=pd.to_datetime(frame["at"]), cause=cause.astype("category"),
                        channel=channel.astype("category"), reviewed=was_reviewed,
                        explanation=frame["explanation"].fillna("")).reset_index(drop=True)


def ordered_causes(labels) -> list[str]:
    """The six causes in their usual order, then other labels alphabetically, then ``none``."""
    present = set(labels)
    extra = sorted(present - set(CAUSES) - {NONE_LABEL})
    return [c for c in CAUSES if c in present] + extra + ([NONE_LABEL] if NONE_LABEL in present else [])


def default_window(earliest: datetime | date | None, latest: datetime | date | None, period: str,
                   window_days: int, since: datetime | date | None = None,
                   until: datetime | date | None = None) -> Window | None:
    """The days a report covers: up to ``until`` (default: the latest complaint's day), from ``since``
    (default: ``window_days`` back from there, moved to the start of its period) — but never from before
    the first complaint's day: empty days before the data began would understate every baseline."""
    if until is None and latest is None:
        return None
    end = pd.Timestamp(until if until is not None else latest).normalize()
    if since is not None:
        start = pd.Timestamp(since).normalize()
    else:
        start = (end - pd.Timedelta(days=window_days - 1)).to_period(PERIOD_FREQUENCIES[period]).start_time
    if earliest is not None:
        start = max(start, pd.Timestamp(earliest).normalize())
    if start > end:
        raise TrendError(f"the window starts ({start:%Y-%m-%d}) after it ends ({end:%Y-%m-%d}): "
                         "check --since and --until")
    return Window(start, end)


def split_values(frame: pd.DataFrame, column: str, *, known: bool = False) -> pd.Series:
    """The group of each complaint for a split column: ``channel`` or any key of the complaints' metadata
    (``known``: checked already on the whole window, so these rows may all lack it)."""
    if column == "channel":
        return frame["channel"].astype(object)
    parsed = {text: json.loads(text) if text else {} for text in frame["metadata_json"].dropna().unique()}
    keys = sorted({key for metadata in parsed.values() for key in metadata})
    if column not in keys and len(frame) and not known:
        raise TrendError(f"cannot split by {column!r}: the complaints have channel and the metadata columns "
                         f"{keys or '(none)'}; pass one of them to --by")
    group_of = {text: _group_name(metadata.get(column)) for text, metadata in parsed.items()}
    return frame["metadata_json"].astype(object).map(group_of).fillna(MISSING_GROUP)


def _group_name(value) -> str:
    missing = value is None or value != value or str(value).strip() == ""  # value != value: NaN
    return MISSING_GROUP if missing else str(value)


def in_window(frame: pd.DataFrame, window: Window) -> pd.DataFrame:
    return frame[(frame["at"] >= window.start) & (frame["at"] < window.end + pd.Timedelta(days=1))]


def periods_of(window: Window, period: str) -> pd.PeriodIndex:
    frequency = PERIOD_FREQUENCIES[period]
    return pd.period_range(window.start.to_period(frequency), window.end.to_period(frequency), freq=frequency)


def exposure_days(periods: pd.PeriodIndex, window: Window) -> np.ndarray:
    """Days of each period inside the window (a month has 28–31; the first and last may be partial)."""
    starts = np.maximum(periods.start_time.normalize().values, window.start.to_datetime64())
    ends = np.minimum(periods.end_time.normalize().values, window.end.to_datetime64())
    return ((ends - starts) / np.timedelta64(1, "D")).astype(int) + 1


def cause_counts(cells: pd.DataFrame, window: Window, period: str, causes: list[str],
                 groups: pd.Series | None = None, scope: str = OVERALL) -> pd.DataFrame:
    """Count, total and share of every cause in every period of the window (zeros included) per group,
    with the change against the previous period: ``count_change`` and ``share_change`` (share points).
    ``cells``: complaints counted (``n``) per period, cause and kind."""
    periods = periods_of(window, period)
    group = groups if groups is not None else pd.Series(OVERALL, index=cells.index)
    keyed = pd.DataFrame({"period": cells["period"], "group": group.reindex(cells.index), "cause": cells["cause"],
                          "n": cells["n"]})
    group_names = sorted(keyed["group"].unique()) or [OVERALL]
    grid = pd.MultiIndex.from_product([group_names, causes, periods], names=["group", "cause", "period"])
    counts = (keyed.groupby(["group", "cause", "period"], observed=True)["n"].sum().reindex(grid, fill_value=0)
              .rename("count").reset_index())
    totals = counts.groupby(["group", "period"])["count"].transform("sum")
    counts["total"] = totals
    counts["share"] = counts["count"] / totals.where(totals > 0)
    counts["exposure_days"] = np.tile(exposure_days(periods, window), len(group_names) * len(causes))
    by_series = counts.groupby(["group", "cause"])
    counts["prev_count"] = by_series["count"].shift(1)
    counts["prev_share"] = by_series["share"].shift(1)
    counts["count_change"] = counts["count"] - counts["prev_count"]
    counts["share_change"] = counts["share"] - counts["prev_share"]
    counts.insert(0, "scope", scope)
    return counts[["period", "scope", "group", "cause", "count", "total", "share", "exposure_days",
                   "prev_count", "count_change", "prev_share", "share_change"]]


def cause_terms(explained: pd.DataFrame, cells: pd.DataFrame, top_n: int) -> pd.DataFrame:
    """Per period and cause, the explanation terms (the words that decided the cause) most often given,
    with the share of the cause's complaints that had each. ``explained``: period, cause, explanation and
    how many complaints gave it (``n``); ``cells``: the service failures counted per period and cause."""
    # each distinct explanation split once, weighted by how often it occurs, split and counted a slice at a
    # time: memory stays flat
    distinct = explained.rename(columns={"n": "weight"})
    counted = pd.concat([_term_counts(distinct.iloc[start:start + TERM_SLICE])
                         for start in range(0, max(len(distinct), 1), TERM_SLICE)])
    counted = counted.groupby(["period", "cause", "term"], observed=True)["count"].sum().reset_index()
    counted = counted.sort_values(["period", "cause", "count", "term"], ascending=[True, True, False, True])
    top = counted.groupby(["period", "cause"], observed=True).head(top_n)
    cause_complaints = cells.groupby(["period", "cause"], observed=True)["n"].sum()
    top = top.join(cause_complaints.rename("cause_complaints"), on=["period", "cause"])
    return top.assign(share=top["count"] / top["cause_complaints"]).reset_index(drop=True)


def _term_counts(distinct: pd.DataFrame) -> pd.DataFrame:
    """period, cause, term, count over a slice of weighted distinct explanations."""
    pieces = [explanation.split(TERM_SEPARATOR) for explanation in distinct["explanation"].astype(object)]
    lengths = np.fromiter(map(len, pieces), dtype=int, count=len(pieces))
    terms = pd.DataFrame({"period": distinct["period"].repeat(lengths).array,
                          "cause": distinct["cause"].repeat(lengths).array,
                          "term": pd.array(list(chain.from_iterable(pieces)), dtype=distinct["explanation"].dtype),
                          "count": np.repeat(distinct["weight"].to_numpy(), lengths)})
    terms = terms[terms["term"].str.strip() != ""]
    return terms.groupby(["period", "cause", "term"], observed=True)["count"].sum().reset_index()


def pick_examples(candidates: pd.DataFrame, period_value: pd.Period, period: str, per_cause: int) -> pd.DataFrame:
    """A few complaints of each cause in one period: confident, not awaiting review, newest first."""
    chosen = candidates[candidates["at"].dt.to_period(PERIOD_FREQUENCIES[period]) == period_value]
    chosen = chosen.sort_values(["needs_review", "confidence", "at", "complaint_id"],
                                ascending=[True, False, False, True])
    return (chosen.groupby("cause", sort=False).head(per_cause)
            [["complaint_id", "cause", "at", "channel", "confidence", "needs_review"]].reset_index(drop=True))


def pick_alert_examples(frame: pd.DataFrame, alerts: pd.DataFrame, groups: pd.Series, period: str,
                        per_alert: int) -> pd.DataFrame:
    """For each alert, a few complaints of its cell (cause, group, latest period): confident first."""
    periods = frame["at"].dt.to_period(PERIOD_FREQUENCIES[period])
    picked = []
    for position, alert in enumerate(alerts.itertuples()):
        cell = (frame["cause"] == alert.cause) & (periods == alert.period)
        if alert.scope != OVERALL:
            cell &= groups.reindex(frame.index).astype(object) == alert.group
        chosen = frame[cell].sort_values(["needs_review", "confidence", "at", "complaint_id"],
                                         ascending=[True, False, False, True]).head(per_alert)
        picked += [(position, complaint_id) for complaint_id in chosen["complaint_id"]]
    return pd.DataFrame(picked, columns=["alert", "complaint_id"])


def backlog_counts(cells: pd.DataFrame, window: Window, period: str) -> pd.DataFrame:
    """Per period: texts labelled not-a-complaint (by the model or a person), and texts still waiting for a
    person (flagged for review or predicted none, not reviewed yet)."""
    periods = periods_of(window, period)
    none = cells["cause"].astype(object) == NONE_LABEL
    waiting = (cells["needs_review"].astype(bool) | none) & ~cells["reviewed"].astype(bool)

    def per_period(selected: pd.Series) -> np.ndarray:
        return (cells["n"] * selected).groupby(cells["period"]).sum().reindex(periods, fill_value=0).to_numpy()

    return pd.DataFrame({"period": periods, "not_complaints": per_period(none), "awaiting_review": per_period(waiting)})


def heatmap(cells: pd.DataFrame, groups: pd.Series, causes: list[str]) -> pd.DataFrame:
    """group × cause complaint counts, groups by volume (largest first)."""
    table = (pd.crosstab(groups.rename("group"), cells["cause"], values=cells["n"], aggfunc="sum")
             .reindex(columns=causes).fillna(0).astype(int))
    return table.loc[table.sum(axis=1).sort_values(ascending=False, kind="stable").index]


def checked_period(period: str | None, rule: TrendSettings) -> str:
    period = period or rule.period
    if period not in PERIOD_FREQUENCIES:
        raise TrendError(f"period must be one of {sorted(PERIOD_FREQUENCIES)}, got {period!r}")
    return period


def build_trends(rows: pd.DataFrame, window: Window, rule: TrendSettings, *, period: str | None = None,
                 split_by: str | None = None) -> Trends:
    """Everything the report shows, from the per-complaint rows of ``store.read_trend_rows``."""
    from pipeline.reporting.trend_inputs import inputs_from_rows

    period = checked_period(period, rule)
    return trends_of(inputs_from_rows(rows, window, period), window, rule, period=period, split_by=split_by)


def trends_of(inputs, window: Window, rule: TrendSettings, *, period: str | None = None,
              split_by: str | None = None) -> Trends:
    """Everything the report shows, from ``TrendInputs`` (read aggregated, or made from rows)."""
    period = checked_period(period, rule)
    split_by = split_by or rule.split_by
    texts = inputs.cells
    frame = texts[texts["cause"] != NONE_LABEL]
    frame = frame.assign(cause=frame["cause"].cat.remove_unused_categories())
    causes = ordered_causes(frame["cause"])
    split_columns = list(dict.fromkeys([split_by, "channel"]))
    groups = {column: split_values(frame, column) for column in split_columns}
    counts = pd.concat([cause_counts(frame, window, period, causes),
                        cause_counts(frame, window, period, causes, groups[split_by], scope=split_by)],
                       ignore_index=True)
    tests = spike_tests(counts, rule)
    current = window.end.to_period(PERIOD_FREQUENCIES[period])
    alerts = current_alerts(tests, current)
    candidates = inputs.candidates
    return Trends(period=period, split_by=split_by, window=window, causes=causes, complaints=int(frame["n"].sum()),
                  counts=counts, tests=tests, alerts=alerts,
                  terms=cause_terms(inputs.explained, frame, rule.top_terms),
                  examples=pick_examples(candidates, current, period, rule.examples_per_cause),
                  alert_examples=pick_alert_examples(candidates, alerts, split_values(candidates, split_by, known=True),
                                                     period,
                                                     ALERT_EXAMPLES),
                  backlog=backlog_counts(texts, window, period),
                  heatmaps={column: heatmap(frame, values, causes) for column, values in groups.items()},
                  rule=rule, unfamiliar_share=unfamiliar_share(texts))


def unfamiliar_share(cells: pd.DataFrame) -> float:
    """Share of the window's texts the model judged unlike its training data."""
    total = cells["n"].sum()
    return float((cells["n"] * cells["unfamiliar"].astype(bool)).sum() / total) if total else 0.0


def unfamiliar_warning(result: Trends) -> str | None:
    """Said at the top of every report format when many complaints look unlike the model's training data."""
    if result.unfamiliar_share <= UNFAMILIAR_NOTE_SHARE:
        return None
    return (f"{result.unfamiliar_share:.0%} of the complaints in this window look unlike the model's training data "
            "(another industry, channel or wording). Their causes are less certain: fewer were routed without "
            "review, and the cause shares below lean on the model's guesses for them until people review them.")


def period_label(value: pd.Period, period: str) -> str:
    """Day and week: their first day (weeks start on Monday); month: 2026-11."""
    return f"{value.start_time:%Y-%m}" if period == "month" else f"{value.start_time:%Y-%m-%d}"
