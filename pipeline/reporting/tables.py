"""The tables and sentences every format of the report shows (HTML, workbook, markdown): the change per
cause, the alerts said plainly, the examples, the audit-adjusted shares, the key figures, recovery rows,
the method, and the title and meta line. Plain values (DataFrames, strings); each format lays them out.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from pipeline.labels import CAUSE_NAMES_ZH
from pipeline.reporting import audit as audit_figures
from pipeline.reporting import recovery as recovery_figures
from pipeline.reporting import trends
from pipeline.reporting.formatting import number, percent, probability, shorten
from pipeline.reporting.language import Language, language
from pipeline.reporting.recovery import Recovery
from pipeline.reporting.trends import OVERALL, Trends, overall_counts, period_label

if TYPE_CHECKING:
    from pipeline.reporting.report import TrendReport

EXAMPLE_CHARS = 400
ALERT_QUOTE_CHARS = 140
SHOWN_ALERTS = 8  # the rest are in the workbook
STATISTICS_HEADER = ["count / expected", "p / q (count)", "share / baseline", "p / q (share)", "passed"]


def where(scope: str, group: str) -> str:
    """Where an alert is, in the command line's English."""
    return "overall" if scope == OVERALL else f"{scope} = {group}"


def where_text(scope: str, group: str, text: Language) -> str:
    return text("overall") if scope == OVERALL else text("where", split=text.split(scope), group=group)


def change_table(result: Trends) -> pd.DataFrame:
    """The latest period against the one before, per cause, overall."""
    latest = overall_counts(result)
    latest = latest[latest["period"] == result.current_period].set_index("cause").reindex(result.causes)
    alerted = set(result.alerts["cause"])
    return pd.DataFrame({
        "cause": result.causes, "name": [CAUSE_NAMES_ZH.get(c, "") for c in result.causes],
        "count": latest["count"].to_numpy(), "previous_count": latest["prev_count"].to_numpy(),
        "count_change": latest["count_change"].to_numpy(), "share": latest["share"].to_numpy(),
        "previous_share": latest["prev_share"].to_numpy(), "share_change_points": latest["share_change"].to_numpy() * 100,
        "alert": ["yes" if c in alerted else "" for c in result.causes],
    })


def alert_sentence(alert, result: Trends, text: Language) -> str:
    """One alert said plainly: how much (by the test that passed), and since when."""
    parts = []
    if "count" in alert.test:
        parts.append(text("alert.count", count=f"{alert.count:,}", periods=text.count(result.rule.baseline_periods),
                          expected=f"{alert.expected:,.1f}", ratio=text.ratio(alert.count_ratio)))
    if "share" in alert.test:
        scope = text("alert.scope_all") if alert.scope == OVERALL else text("alert.scope_group",
                                                                            split=text.split(alert.scope))
        parts.append(text("alert.share", scope_text=scope, share=percent(alert.share),
                          baseline=percent(alert.baseline_share), ratio=text.ratio(alert.share_ratio)))
    since = (text("alert.since_new") if alert.since == alert.period
             else text("alert.since", since=period_label(alert.since, result.period)))
    separator = "；" if text.code == "zh" else "; "
    return separator.join(parts + [since]) + ("。" if text.code == "zh" else ".")


def alerts_table(result: Trends, text: Language | None = None) -> pd.DataFrame:
    alerts = result.alerts
    text = text or language("zh", result.period)
    return pd.DataFrame({
        "cause": alerts["cause"], "where": [where(s, g) for s, g in zip(alerts["scope"], alerts["group"])],
        "said": [f"{text.cause(a.cause)} · {where_text(a.scope, a.group, text)}: {alert_sentence(a, result, text)}"
                 for a in alerts.itertuples()],
        "since": [period_label(p, result.period) for p in alerts["since"]],
        "period": [period_label(p, result.period) for p in alerts["period"]],
        "observed": alerts["count"], "expected": alerts["expected"].round(1),
        "count_ratio": alerts["count_ratio"].round(2), "p_count": alerts["p_count"], "q_count": alerts["q_count"],
        "share": alerts["share"].round(4), "baseline_share": alerts["baseline_share"].round(4),
        "share_ratio": alerts["share_ratio"].round(2), "p_share": alerts["p_share"], "q_share": alerts["q_share"],
        "test": alerts["test"],
    })


def statistics_row(alert) -> list[str]:
    """The figures behind one alert, under ``STATISTICS_HEADER``."""
    return [f"{alert.count:,} / {number(alert.expected, 1)}", f"{probability(alert.p_count)} / {probability(alert.q_count)}",
            f"{percent(alert.share)} / {percent(alert.baseline_share)}",
            f"{probability(alert.p_share)} / {probability(alert.q_share)}", alert.test]


def alert_quotes(report: TrendReport, position: int) -> list[str]:
    picked = report.trends.alert_examples
    ids = picked.loc[picked["alert"] == position, "complaint_id"]
    return [shorten(report.example_texts.get(i, ""), ALERT_QUOTE_CHARS) for i in ids]


def examples_table(report: TrendReport) -> pd.DataFrame:
    examples = report.trends.examples
    return pd.DataFrame({
        "cause": examples["cause"], "complaint_id": examples["complaint_id"],
        "time": examples["at"].dt.strftime("%Y-%m-%d %H:%M"), "channel": examples["channel"],
        "confidence": examples["confidence"].round(3),
        "text_masked": [shorten(report.example_texts.get(i, ""), EXAMPLE_CHARS) for i in examples["complaint_id"]],
    })


def shares_table(report: TrendReport) -> pd.DataFrame:
    """Each cause's share of the window's service failures: the classifier's, and adjusted by the audit."""
    if report.shares is None:
        return pd.DataFrame(columns=["cause", "name", "raw_share", "adjusted_share", "ci_low", "ci_high"])
    table = report.shares.table.set_index("cause")
    table = table.reindex(trends.ordered_causes(table.index)).reset_index()
    table.insert(1, "name", [CAUSE_NAMES_ZH.get(c, "") for c in table["cause"]])
    return table


def shares_note(report: TrendReport) -> str:
    text, shares = report.text, report.shares
    if shares is None:
        return text("adjusted.none", drawn=report.audit_drawn, minimum=audit_figures.MIN_AUDIT_LABELS)
    notes = [text("adjusted.note", labels=shares.audit_labels, drawn=shares.audit_drawn)]
    if shares.unaudited_share > 0.01:
        notes.append(text("adjusted.unaudited", share=percent(shares.unaudited_share, 0)))
    if shares.window_model_share < 0.5:
        notes.append(text("adjusted.model", share=percent(shares.window_model_share, 0),
                          versions=", ".join(shares.model_versions)))
    return " ".join(notes)


def key_figures(report: TrendReport) -> list[tuple[str, str, str, bool]]:
    """(label, value, detail, alarming) for the row of figures the report opens with."""
    result, text, recovery = report.trends, report.text, report.recovery
    change = change_table(result)
    figures = [(text("kpi.failures"), number(change["count"].sum()),
                text("kpi.failures.detail", previous=number(change["previous_count"].sum())), False),
               (text("kpi.alerts"), f"{len(result.alerts)}", text("kpi.alerts.detail"), bool(len(result.alerts)))]
    if recovery is not None and recovery.tickets:
        overall = recovery.by["cause"]
        speed = recovery.speed
        resolved = int(speed[["same_day", "next_day", "later"]].to_numpy().sum())
        breached = int(overall["breached_open"].sum())
        figures += [(text("kpi.breached"), f"{breached:,}",
                     text("kpi.breached.detail", respond=f"{int(overall['respond_late'].sum()):,}"), breached > 0),
                    (text("kpi.same_day"), percent(speed["same_day"].sum() / resolved, 0) if resolved else "–",
                     text("kpi.same_day.detail", resolved=f"{resolved:,}"), False)]
    figures.append((text("kpi.backlog"), f"{int(result.backlog['awaiting_review'].sum()):,}",
                    text("kpi.backlog.detail"), False))
    return figures


def recovery_rows(table: pd.DataFrame, name, text: Language) -> list[list[str]]:
    """A ``recovery.group_figures`` table formatted for reading."""
    return [[name(r.group), f"{r.tickets:,}", f"{text.duration(r.respond_median_h)} / {text.duration(r.respond_p90_h)}",
             f"{text.duration(r.resolve_median_h)} / {text.duration(r.resolve_p90_h)}",
             text("in_time", share=percent(r.within_sla_share, 0), due=f"{r.due:,}"), f"{r.breached_open:,}",
             f"{r.respond_late:,}", percent(r.reopened_share, 0), f"{r.compensated:,} · {r.compensation_total:,.0f}"]
            for r in table.itertuples()]


def recovery_header(text: Language, first: str) -> list[str]:
    return [text(first)] + [text(key) for key in ("col.tickets", "col.respond", "col.resolve", "col.in_time",
                                                  "col.breached", "col.respond_late", "col.reopened",
                                                  "col.compensated")]


def speed_table(recovery: Recovery) -> pd.DataFrame:
    """The 1:10:100 view with shares of each cause's tickets."""
    speed = recovery.speed.copy()
    total = speed[list(recovery_figures.SPEED_BUCKETS)].sum(axis=1)
    for bucket in recovery_figures.SPEED_BUCKETS:
        speed[f"{bucket}_share"] = speed[bucket] / total.where(total > 0)
    return speed


def method_lines(report: TrendReport) -> list[str]:
    result, text, rule = report.trends, report.text, report.trends.rule
    return text.lines("method", baseline=text.count(rule.baseline_periods), minimum=text.count(rule.min_baseline_periods),
                      split=text.split(result.split_by), alpha=f"{rule.alpha:g}",
                      ratio=f"{rule.min_ratio:g}", minimum_count=rule.min_count, timezone=report.timezone)


def elapsed_note(report: TrendReport) -> str:
    """While the latest period is unfinished its counts are not yet comparable: say how far it is."""
    result, text = report.trends, report.text
    current = result.current_period
    length = (current.end_time.normalize() - current.start_time).days + 1
    elapsed = (result.window.end - max(current.start_time, result.window.start)).days + 1
    return text("so_far", elapsed=elapsed, length=length) if elapsed < length else ""


def title(report: TrendReport) -> str:
    result, text = report.trends, report.text
    name = text(f"period_name.{result.period}", start=period_label(result.current_period, result.period))
    return text("title", period_name=name)


def meta_line(report: TrendReport) -> str:
    result, text = report.trends, report.text
    return text("meta", start=f"{result.window.start:%Y-%m-%d}", end=f"{result.window.end:%Y-%m-%d}",
                complaints=f"{result.complaints:,}", not_complaints=f"{int(result.backlog['not_complaints'].sum()):,}",
                split=text.split(result.split_by),
                generated=f"{report.generated_at:%Y-%m-%d %H:%M}")


def unfamiliar_text(report: TrendReport) -> str | None:
    if not trends.unfamiliar_warning(report.trends):
        return None
    return report.text("unfamiliar", share=percent(report.trends.unfamiliar_share, 0))
