"""The report a quality manager acts on: one self-contained HTML file, an Excel workbook of the same tables,
and a markdown summary (also published as a Prefect artifact by the nightly flow).

It opens with what needs doing — the alerts said plainly (which cause, where, how much, since when, with
complaints to read; the statistics one click away), tickets past their deadline, the review backlog —
then recovery beside the cause trends, the cause mix (with shares corrected by the audit), and the
detail. Chinese first (``trends.language``, ``complaints trends --lang en`` for English); causes are the
service failures only, the texts that are not complaints are the review backlog, apart.

The HTML opens offline: charts are inline SVG (``report_charts``), styles are inline, there is no script,
and a Content-Security-Policy forbids every external request. Its fonts name the CJK families a server
has (Noto Sans CJK SC from Debian's fonts-noto-cjk first), so Chinese never renders as empty boxes. Every
text from the data (complaints, channels, terms) is escaped; complaint texts are the PII-masked copies.
The workbook writes strings as strings (a complaint that starts with "=" stays text, never a formula).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from pipeline.reporting import audit as audit_figures
from pipeline.reporting import recovery as recovery_figures
from pipeline.storage import store
from pipeline.reporting import trends
from pipeline.config import Settings
from pipeline.reporting.recovery import Recovery
from pipeline.reporting.charts import (ALERT_COLOUR, CAUSE_COLOURS, HEATMAP_MIN_RESIDUAL, HEATMAP_ROWS, SPEED_COLOURS,
                                    backlog_bars_svg, cause_colour, cause_panel_svg, change_bars_svg, escape,
                                    heatmap_svg, number, overall_counts, recovery_times_svg, signed,
                                    speed_bars_svg, stacked_shares_svg)
from pipeline.reporting.language import Language, language
from pipeline.labels import CAUSE_NAMES_ZH
from pipeline.delivery.spreadsheet import excel_safe, excel_writer
from pipeline.reporting.trends import OVERALL, TrendError, Trends, period_label

REPORT_FORMATS = ("html", "xlsx", "md")
EXAMPLE_CHARS = 400
ALERT_QUOTE_CHARS = 140
SHOWN_ALERTS = 8  # the rest are in the workbook
EXCEL_MAX_ROWS = 1_048_576


@dataclass(frozen=True)
class TrendReport:
    trends: Trends
    example_texts: dict[str, str]  # complaint_id → PII-masked text (examples and alert quotes)
    generated_at: datetime
    recovery: Recovery | None = None  # the window's tickets: speed, deadlines, compensation, corrections
    shares: audit_figures.AdjustedShares | None = None  # cause shares corrected by the audit sample
    audit_drawn: int = 0  # complaints drawn for audits (labelled or not)
    language: str = "zh"
    timezone: str = "Asia/Shanghai"

    @property
    def text(self) -> Language:
        return language(self.language, self.trends.period)


def build_report(engine: sa.Engine, settings: Settings, *, since: date | datetime | None = None,
                 until: date | datetime | None = None, period: str | None = None,
                 split_by: str | None = None, report_language: str | None = None) -> TrendReport | None:
    """Read the store and aggregate; None when no complaint has been classified yet."""
    rule = settings.trends
    earliest, latest = store.complaint_time_range(engine, settings.timezone)
    window = trends.default_window(earliest, latest, period or rule.period, rule.window_days, since, until)
    if window is None:
        return None
    rows = store.read_trend_rows(engine, window.start, window.end + pd.Timedelta(days=1), settings.timezone)
    result = trends.build_trends(rows, window, rule, period=period, split_by=split_by)
    quoted = result.examples["complaint_id"].tolist() + result.alert_examples["complaint_id"].tolist()
    texts = store.read_masked_texts(engine, quoted)
    tickets = recovery_figures.read_recovery_rows(engine, window.start, window.end + pd.Timedelta(days=1))
    recovery = recovery_figures.build_recovery(tickets, store.utcnow(), settings.timezone)
    latest_predictions = trends.latest_predictions(rows)
    drawn, _ = audit_figures.audit_counts(engine)
    shares = audit_figures.adjusted_shares(latest_predictions["cause"].astype(object), audit_figures.audit_labels(engine),
                                          drawn=drawn, window_versions=latest_predictions["model_version"].astype(object))
    return TrendReport(result, texts, datetime.now().replace(microsecond=0), recovery, shares, drawn,
                       report_language or rule.language, settings.timezone)


def write_report(report: TrendReport, path: Path, report_format: str) -> Path:
    if report_format not in REPORT_FORMATS:
        raise ValueError(f"report format must be one of {REPORT_FORMATS}, got {report_format!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if report_format == "xlsx":
        write_workbook(report, path)
    else:
        text = render_html(report) if report_format == "html" else render_markdown(report)
        path.write_text(text, encoding="utf-8")
    return path


def write_report_files(report: TrendReport, directory: Path, stem: str) -> dict[str, Path]:
    """All three formats side by side: STEM.html, STEM.xlsx, STEM.md."""
    return {fmt: write_report(report, directory / f"{stem}.{fmt}", fmt) for fmt in REPORT_FORMATS}


# ---------------------------------------------------------------- tables shared by every format

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


STATISTICS_HEADER = ["count / expected", "p / q (count)", "share / baseline", "p / q (share)", "passed"]


def _statistics_row(alert) -> list[str]:
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


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def percent(value, digits: int = 1) -> str:
    return "–" if value is None or pd.isna(value) else f"{value * 100:.{digits}f}%"


def probability(value) -> str:
    return "–" if value is None or pd.isna(value) else (f"{value:.3f}" if value >= 0.001 else f"{value:.1e}")


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


# ---------------------------------------------------------------- markdown (and the Prefect artifact)

# Characters that start markdown or HTML inline (emphasis, code, links, images, tags, entities, table cells)
# and the starts of the bare links GFM renderers (Prefect's UI) turn into anchors: "http://", "www.", "a@b".
_MARKDOWN_ACTIVE = re.compile(r"[\\`*_\[\]<>!|~&@]|(?<=[A-Za-z]):(?=//)|(?<=www)\.", re.IGNORECASE)
_BLOCKS = " ▏▎▍▌▋▊▉█"
SPEED_GLYPHS = {"same_day": "█", "next_day": "▓", "later": "▒", "open_late": "░", "open": "·"}


def markdown_text(value) -> str:
    """Data as inert markdown text on one line: it renders as written, never as a link, image, tag or cell."""
    return _MARKDOWN_ACTIVE.sub(lambda m: "\\" + m.group(), " ".join(str(value).split()))


def _md_table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(markdown_text(h) for h in header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(markdown_text(v) for v in row) + " |" for row in rows]


def text_bar(share, width: int = 20) -> str:
    """A share as a bar of block characters (eighths), for charts where only text renders."""
    if share is None or pd.isna(share):
        return ""
    eighths = round(max(0.0, min(1.0, float(share))) * width * 8)
    return "█" * (eighths // 8) + (_BLOCKS[eighths % 8] if eighths % 8 else "")


def stacked_text_bar(counts: dict[str, int], width: int = 20) -> str:
    """Counts by 1:10:100 bucket as one bar of differently shaded blocks (cumulative rounding: the
    segments always fill the width exactly, and an empty bucket never gets a block)."""
    total = sum(counts.values())
    if not total:
        return ""
    bar, running, drawn = "", 0, 0
    for bucket, count in counts.items():
        running += count
        end = round(width * running / total)
        bar += SPEED_GLYPHS[bucket] * (end - drawn)
        drawn = end
    return bar


def render_markdown(report: TrendReport, report_path: str | Path | None = None) -> str:
    result, text = report.trends, report.text
    lines = [f"# {markdown_text(title(report))}", "", markdown_text(meta_line(report)), ""]
    if report_path:
        lines += [markdown_text(text("report_at", path=report_path)), ""]
    if unfamiliar_text(report):
        lines += [f"> {markdown_text(unfamiliar_text(report))}", ""]
    figures = key_figures(report)
    lines += _md_table([label for label, *_ in figures], [[f"{value} ({detail})" for _, value, detail, _ in figures]])

    lines += ["", f"## {markdown_text(text('h.alerts'))} ({len(result.alerts)})", ""]
    if result.alerts.empty:
        lines.append(markdown_text(text("alerts.calm")))
    for position, alert in enumerate(result.alerts.head(SHOWN_ALERTS).itertuples()):
        quotes = alert_quotes(report, position)
        lines.append(f"- **{markdown_text(text.cause(alert.cause))} · {markdown_text(where_text(alert.scope, alert.group, text))}**"
                     f"{text.colon()}{markdown_text(alert_sentence(alert, result, text))}"
                     + (f" {markdown_text(text('alert.examples'))} " + " / ".join(f"「{markdown_text(q)}」" for q in quotes)
                        if quotes else ""))
    if len(result.alerts) > SHOWN_ALERTS:
        lines.append(markdown_text(text("alert.more", count=len(result.alerts) - SHOWN_ALERTS)))
    if len(result.alerts):
        lines += ["", f"> {markdown_text(text('alerts.what', split=text.split(result.split_by)))}"]

    lines += _recovery_markdown(report)
    lines += _mix_markdown(report)
    backlog = result.backlog
    lines += ["", f"## {markdown_text(text('h.backlog'))}", "",
              markdown_text(text("backlog_line", awaiting=f"{int(backlog['awaiting_review'].sum()):,}",
                                 not_complaints=f"{int(backlog['not_complaints'].sum()):,}")),
              "", markdown_text(text("backlog.note"))]
    latest_terms = result.terms[result.terms["period"] == result.current_period]
    if not latest_terms.empty:
        lines += ["", f"## {markdown_text(text('h.terms'))}", ""]
        for cause in result.causes:
            terms = latest_terms[latest_terms["cause"] == cause]
            if not terms.empty:
                lines.append(f"- **{markdown_text(text.cause(cause))}**: " + ", ".join(
                    f"{markdown_text(t.term)} ({t.count})" for t in terms.itertuples()))
    lines += ["", f"## {markdown_text(text('h.method'))}", ""] + [f"- {markdown_text(line)}" for line in method_lines(report)]
    return "\n".join(lines) + "\n"


def _recovery_markdown(report: TrendReport) -> list[str]:
    recovery, text = report.recovery, report.text
    lines = ["", f"## {markdown_text(text('h.recovery'))}", ""]
    if recovery is None or not recovery.tickets:
        return lines + [markdown_text(text("recovery.none"))]
    lines.append(markdown_text(text("recovery.why")))
    if not recovery.has_updates:
        lines += ["", markdown_text(text("recovery.no_updates"))]
    legend = " ".join(f"{SPEED_GLYPHS[b]} {text('speed.' + b)}" for b in recovery_figures.SPEED_BUCKETS)
    lines += ["", markdown_text(legend), ""]
    speed = recovery.speed.set_index("cause")
    rows = []
    for row in recovery.by["cause"].itertuples():
        counts = {b: int(speed.loc[row.group, b]) for b in recovery_figures.SPEED_BUCKETS} if row.group in speed.index else {}
        rows.append([text.cause(row.group), stacked_text_bar(counts), f"{row.tickets:,}",
                     f"{text.duration(row.resolve_median_h)} / {text.duration(row.resolve_p90_h)}",
                     text("in_time", share=percent(row.within_sla_share, 0), due=f"{row.due:,}"),
                     f"{row.breached_open:,}"])
    lines += _md_table([text("col.cause"), text("h.speed"), text("col.tickets"), text("col.resolve"),
                        text("col.in_time"), text("col.breached")], rows)
    if len(recovery.corrections):
        lines += ["", f"**{markdown_text(text('h.corrections'))}**{text.colon()}" + ", ".join(
            f"{markdown_text(text.cause(r.routed_cause))} → {markdown_text(text.cause(r.cause))} {r.complaints}"
            for r in recovery.corrections.itertuples())]
    return lines


def _mix_markdown(report: TrendReport) -> list[str]:
    result, text = report.trends, report.text
    lines = ["", f"## {markdown_text(text('h.mix'))}{markdown_text(elapsed_note(report))}", "",
             markdown_text(text("mix.note")), ""]
    adjusted = shares_table(report).set_index("cause") if report.shares is not None else None
    rows = []
    for row in change_table(result).itertuples():
        corrected = "–"
        if adjusted is not None and row.cause in adjusted.index:
            a = adjusted.loc[row.cause]
            corrected = f"{percent(a['adjusted_share'])} ({percent(a['ci_low'], 0)}–{percent(a['ci_high'], 0)})"
        rows.append([text.cause(row.cause), number(row.count), percent(row.share), text_bar(row.share),
                     signed(row.share_change_points, 1), corrected])
    lines += _md_table([text("col.cause"), text("col.count"), text("col.share"), "",
                        text("col.change_points"), text("col.adjusted_share")], rows)
    lines += ["", markdown_text(shares_note(report))]
    if report.shares is not None:
        lines += ["", markdown_text(text("adjusted.alerts"))]
    return lines


def artifact_table(report: TrendReport) -> list[dict]:
    """The change table as plain JSON values, for a Prefect table artifact."""
    change = change_table(report.trends)
    return [{"cause": row.cause, "name": row.name, "count": _json_number(row.count),
             "previous_count": _json_number(row.previous_count), "share": _json_number(row.share, 4),
             "share_change_points": _json_number(row.share_change_points, 2), "alert": row.alert}
            for row in change.itertuples()]


def _json_number(value, digits: int = 0):
    if pd.isna(value):
        return None
    return int(value) if digits == 0 else round(float(value), digits)


# ---------------------------------------------------------------- Excel

def _with_period_labels(frame: pd.DataFrame, period: str) -> pd.DataFrame:
    return frame.assign(period=[period_label(p, period) for p in frame["period"]])


def _recovery_sheets(recovery: Recovery | None) -> dict[str, pd.DataFrame]:
    if recovery is None:
        return {}
    return {**{f"recovery by {key}": table for key, table in recovery.by.items()},
            "1-10-100": speed_table(recovery), "compensation": recovery.compensation,
            "corrections": recovery.corrections}


def write_workbook(report: TrendReport, path: Path) -> None:
    result = report.trends
    label = lambda frame: _with_period_labels(frame, result.period)  # noqa: E731
    sheets = {
        "summary": change_table(result),
        "alerts": alerts_table(result, report.text),
        "counts": label(result.counts),
        "tests": label(result.tests),
        **{f"{column} x cause"[:31]: table.reset_index().rename(columns={"group": column})
           for column, table in result.heatmaps.items()},
        "adjusted shares": shares_table(report),
        **_recovery_sheets(report.recovery),
        "review backlog": label(result.backlog),
        "terms": label(result.terms),
        "examples": examples_table(report),
        "method": pd.DataFrame({"method": method_lines(report)}),
    }
    too_long = [name for name, frame in sheets.items() if len(frame) >= EXCEL_MAX_ROWS]
    if too_long:
        raise TrendError(f"{path}: the sheets {too_long} would pass Excel's {EXCEL_MAX_ROWS:,} rows; "
                         "choose a longer --period, a shorter window or a --by column with fewer values")
    with excel_writer(path) as writer:
        for name, frame in sheets.items():
            excel_safe(frame).to_excel(writer, sheet_name=name, index=False)
            sheet = writer.sheets[name]
            sheet.freeze_panes(1, 0)
            sheet.set_column(0, max(len(frame.columns) - 1, 0), 14)
            if name in ("examples", "method"):
                sheet.set_column(len(frame.columns) - 1, len(frame.columns) - 1, 100)
            if name == "alerts":
                sheet.set_column(2, 2, 80)


# ---------------------------------------------------------------- HTML

# CJK families first, so Chinese is drawn by a font that has it: Noto Sans CJK SC (Debian's fonts-noto-cjk,
# what a bare server gets), then the Windows and macOS families, then the generic fallbacks.
FONT_STACK = ('"Noto Sans CJK SC","Noto Sans SC","Source Han Sans SC","Source Han Sans CN","PingFang SC",'
              '"Hiragino Sans GB","Microsoft YaHei","WenQuanYi Micro Hei",system-ui,-apple-system,"Segoe UI",'
              "sans-serif")
STYLE = f"""
body{{font-family:{FONT_STACK};margin:0 auto;max-width:1040px;padding:24px;color:#1d2733;background:#fff;line-height:1.5}}
h1{{font-size:1.5rem;margin:0 0 4px}}h2{{font-size:1.2rem;margin:32px 0 8px;border-bottom:1px solid #d5dbe1;padding-bottom:4px}}
h3{{font-size:1rem;margin:18px 0 6px}}.meta,.note{{color:#5b6875;font-size:.9rem}}
table{{border-collapse:collapse;font-size:.86rem;margin:8px 0}}th,td{{border:1px solid #d5dbe1;padding:4px 8px;text-align:left;vertical-align:top}}
th{{background:#f2f4f7;font-weight:600}}td.num{{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}}
.scroll{{overflow-x:auto;max-width:100%}}
.kpis{{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}}
.kpi{{flex:1 1 150px;border:1px solid #d5dbe1;border-radius:6px;padding:8px 12px}}
.kpi .value{{font-size:1.6rem;font-weight:700;font-variant-numeric:tabular-nums}}.kpi .label{{font-size:.85rem}}
.kpi .detail{{color:#5b6875;font-size:.78rem}}.kpi.alarm{{border-color:{ALERT_COLOUR};background:#fdf1ef}}
.kpi.alarm .value{{color:{ALERT_COLOUR}}}
.alert-card{{border-left:5px solid {ALERT_COLOUR};background:#fdf1ef;padding:8px 14px;margin:10px 0}}
.alert-card .head{{font-weight:600;font-size:1.02rem}}.alert-card p{{margin:4px 0}}
.quote{{color:#3d4a57;font-size:.9rem;margin:3px 0 3px 10px}}
details{{margin:4px 0}}summary{{cursor:pointer;color:#2e5f8a;font-size:.88rem}}
.calm{{border-left:5px solid #2e8b57;background:#eff8f2;padding:8px 14px;margin:8px 0}}
.warning{{border-left:5px solid #b9770e;background:#fdf5e6;padding:8px 14px;margin:8px 0}}
.legend{{display:flex;flex-wrap:wrap;gap:14px;font-size:.86rem;margin:6px 0}}
.swatch{{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-1px;border-radius:2px}}
.panels{{display:flex;flex-wrap:wrap;gap:10px}}
svg text{{font-family:inherit;font-size:11px;fill:#1d2733}}svg .axis{{fill:#5b6875}}svg .panel-title{{font-size:12px;font-weight:600}}
svg .cell.dark{{fill:#fff}}svg .cell-box{{stroke:#e3e7eb}}svg .grid{{stroke:#e3e7eb}}svg .zero{{stroke:#5b6875}}
svg .expected{{fill:none;stroke:#7f8c8d;stroke-width:1.5;stroke-dasharray:4 3}}
.example{{border:1px solid #e3e7eb;border-radius:4px;padding:6px 10px;margin:6px 0;white-space:pre-wrap}}
.example .meta{{display:block;white-space:normal}}
"""


def _html_table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="num">{escape(v)}</td>' if j in numeric else f"<td>{escape(v)}</td>"
                                    for j, v in enumerate(row)) + "</tr>" for row in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _legend(items: list[tuple[str, str]]) -> str:
    return '<div class="legend">' + "".join(
        f'<span><span class="swatch" style="background:{colour}"></span>{escape(name)}</span>'
        for name, colour in items) + "</div>"


def _key_figures(report: TrendReport) -> str:
    return '<div class="kpis">' + "".join(
        f'<div class="kpi{" alarm" if alarming else ""}"><div class="label">{escape(label)}</div>'
        f'<div class="value">{escape(value)}</div><div class="detail">{escape(detail)}</div></div>'
        for label, value, detail, alarming in key_figures(report)) + "</div>"


def _alerts_section(report: TrendReport) -> str:
    result, text = report.trends, report.text
    if result.alerts.empty:
        return f'<div class="calm">{escape(text("alerts.calm"))}</div>'
    cards = []
    for position, alert in enumerate(result.alerts.head(SHOWN_ALERTS).itertuples()):
        quotes = "".join(f'<div class="quote">「{escape(q)}」</div>' for q in alert_quotes(report, position))
        statistics = _html_table(STATISTICS_HEADER, [_statistics_row(alert)], numeric={0, 1, 2, 3})
        cards.append(
            f'<div class="alert-card"><div class="head"><span class="swatch" style="background:'
            f'{cause_colour(alert.cause, result.causes)}"></span>{escape(text.cause(alert.cause))} · '
            f'{escape(where_text(alert.scope, alert.group, text))}</div>'
            f"<p>{escape(alert_sentence(alert, result, text))}</p>"
            + (f'<div class="note">{escape(text("alert.examples"))}</div>{quotes}' if quotes else "")
            + f"<details><summary>{escape(text('alert.stats'))}</summary>{statistics}</details></div>")
    more = (f'<p class="note">{escape(text("alert.more", count=len(result.alerts) - SHOWN_ALERTS))}</p>'
            if len(result.alerts) > SHOWN_ALERTS else "")
    what = f'<p class="note">{escape(text("alerts.what", split=text.split(result.split_by)))}</p>'
    return "".join(cards) + more + what


def _recovery_section(report: TrendReport) -> str:
    recovery, text = report.recovery, report.text
    if recovery is None or not recovery.tickets:
        return f'<p class="note">{escape(text("recovery.none"))}</p>'
    cause_name = text.cause
    parts = [f'<p class="note">{escape(text("recovery.why"))}</p>']
    if not recovery.has_updates:
        parts.append(f'<p class="warning">{escape(text("recovery.no_updates"))}</p>')
    numeric = set(range(1, 9))
    parts += [f"<h3>{escape(text('h.speed'))}</h3>",
              _legend([(text("speed." + b), SPEED_COLOURS[b]) for b in recovery_figures.SPEED_BUCKETS]),
              speed_bars_svg(recovery, text),
              f"<h3>{escape(text('h.times'))}</h3>", f'<p class="note">{escape(text("times.note"))}</p>',
              recovery_times_svg(recovery.by["cause"], cause_name, text),
              _html_table(recovery_header(text, "col.cause"), recovery_rows(recovery.by["cause"], cause_name, text),
                          numeric)]
    for key in ("queue", "channel"):
        parts.append(f"<details><summary>{escape(text('h.by_' + key))}</summary>"
                     + _html_table(recovery_header(text, "col." + key), recovery_rows(recovery.by[key], str, text),
                                   numeric) + "</details>")
    compensation = recovery.compensation
    if len(compensation):
        codes = [c for c in compensation.columns if c not in ("cause", "tickets_compensated", "total", "median")]
        rows = [[cause_name(r["cause"])] + [number(r[c]) for c in codes]
                + [number(r["tickets_compensated"]), number(r["total"]), number(r["median"])]
                for _, r in compensation.iterrows()]
        parts.append(f"<details><summary>{escape(text('h.compensation'))}</summary>"
                     + _html_table([text("col.cause")] + [text.resolution(c) for c in codes]
                                   + [text("col.compensated"), text("col.total"), text("col.median")], rows,
                                   set(range(1, len(codes) + 4))) + "</details>")
    if len(recovery.corrections):
        parts += [f"<h3>{escape(text('h.corrections'))}</h3>", f'<p class="note">{escape(text("corrections.note"))}</p>',
                  _html_table([text("col.routed"), text("col.found"), text("col.complaints"), text("col.share_routed")],
                              [[cause_name(r.routed_cause), cause_name(r.cause), f"{r.complaints:,}",
                                percent(r.share_of_routed, 0)] for r in recovery.corrections.itertuples()], {2, 3})]
    return "".join(parts)


def _mix_section(report: TrendReport) -> str:
    result, text = report.trends, report.text
    change = change_table(result)
    adjusted = shares_table(report)
    parts = [f'<p class="note">{escape(text("mix.note"))}</p>',
             _legend([(text.cause(c), cause_colour(c, result.causes)) for c in result.causes]),
             stacked_shares_svg(result, text),
             f"<h3>{escape(text('h.adjusted'))}</h3>", f'<p class="note">{escape(shares_note(report))}</p>']
    if len(adjusted):
        parts += [_html_table([text("col.cause"), text("col.raw_share"), text("col.adjusted_share"), text("col.interval")],
                              [[text.cause(r.cause), percent(r.raw_share), percent(r.adjusted_share),
                                f"{percent(r.ci_low)} – {percent(r.ci_high)}"] for r in adjusted.itertuples()],
                              {1, 2, 3}),
                  f'<p class="note">{escape(text("adjusted.alerts"))}</p>']
    parts += [f"<h3>{escape(text('h.change'))}{escape(elapsed_note(report))}</h3>",
              change_bars_svg(change, text),
              _html_table([text("col.cause"), text("col.count"), text("col.previous"),
                           text("col.change"), text("col.share"), text("col.previous_share"),
                           text("col.change_points"), text("col.alert")],
                          [[text.cause(c.cause), number(c.count), number(c.previous_count), signed(c.count_change),
                            percent(c.share), percent(c.previous_share), signed(c.share_change_points, 1),
                            text("yes") if c.alert else ""] for c in change.itertuples()], set(range(1, 7)))]
    return "".join(parts)


def _where_section(report: TrendReport) -> str:
    result, text = report.trends, report.text
    parts = [f'<p class="note">{escape(text("where.note", residual=f"{HEATMAP_MIN_RESIDUAL:g}"))}</p>']
    for column, table in sorted(result.heatmaps.items(), key=lambda item: item[0] != "channel"):
        parts.append(f"<h3>{escape(text('where.title', split=text.split(column)))}</h3>"
                     + heatmap_svg(table, column, result.causes, text))
        if len(table) > HEATMAP_ROWS:
            parts.append(f'<p class="note">{escape(text("where.more", shown=HEATMAP_ROWS, total=len(table)))}</p>')
    return "".join(parts)


def _backlog_section(report: TrendReport) -> str:
    result, text = report.trends, report.text
    backlog = result.backlog
    line = text("backlog_line", awaiting=f"{int(backlog['awaiting_review'].sum()):,}",
                not_complaints=f"{int(backlog['not_complaints'].sum()):,}")
    return (f'<p class="note">{escape(text("backlog.note"))}</p>'
            + _legend([(text("col.not_complaints"), CAUSE_COLOURS["none"]), (text("col.awaiting"), "#5b6875")])
            + backlog_bars_svg(backlog, result.period, text) + f"<p>{escape(line)}</p>")


def _terms_section(report: TrendReport) -> str:
    result, text = report.trends, report.text
    latest = result.terms[result.terms["period"] == result.current_period]
    rows = []
    for cause in result.causes:
        terms = latest[latest["cause"] == cause]
        if not terms.empty:
            rows.append([text.cause(cause), "、".join(f"{t.term} ({t.count}, {t.share:.0%})" for t in terms.itertuples())])
    if not rows:
        return f'<p class="note">{escape(text("terms.none"))}</p>'
    return (_html_table([text("col.cause"), text("col.terms")], rows)
            + f'<p class="note">{escape(text("terms.note"))}</p>')


def _examples_section(report: TrendReport) -> str:
    text = report.text
    examples = examples_table(report)
    if examples.empty:
        return f'<p class="note">{escape(text("examples.none"))}</p>'
    parts = []
    for cause in report.trends.causes:
        chosen = examples[examples["cause"] == cause]
        if chosen.empty:
            continue
        parts.append(f"<h3>{escape(text.cause(cause))}</h3>")
        parts += [f'<div class="example">{escape(row.text_masked)}<span class="meta">{escape(row.complaint_id)} · '
                  f'{escape(row.time)} · {escape(row.channel)} · {escape(text("confidence", value=row.confidence))}'
                  "</span></div>" for row in chosen.itertuples()]
    return "".join(parts)


def render_html(report: TrendReport) -> str:
    result, text = report.trends, report.text
    split = text.split(result.split_by)
    warning = unfamiliar_text(report)
    if result.complaints == 0:
        body = f'<p class="calm">{escape(text("empty"))}</p>'
    else:
        body = "".join([
            _key_figures(report),
            f'<h2 id="alerts">{escape(text("h.alerts"))}{escape(elapsed_note(report))}</h2>', _alerts_section(report),
            f'<h2 id="recovery">{escape(text("h.recovery"))}</h2>', _recovery_section(report),
            f'<h2 id="mix">{escape(text("h.mix"))}</h2>', _mix_section(report),
            f'<h2 id="causes">{escape(text("h.panels"))}</h2>',
            f'<p class="note">{escape(text("panels.note", split=split))}</p>',
            '<div class="panels">' + "".join(cause_panel_svg(result, c, text) for c in result.causes) + "</div>",
            f'<h2 id="where">{escape(text("h.where"))}</h2>', _where_section(report),
            f'<h2 id="backlog">{escape(text("h.backlog"))}</h2>', _backlog_section(report),
            f'<h2 id="terms">{escape(text("h.terms"))}</h2>', _terms_section(report),
            f'<h2 id="examples">{escape(text("h.examples"))}</h2>', _examples_section(report),
        ])
    method = "".join(f"<li>{escape(line)}</li>" for line in method_lines(report))
    return (
        f"<!DOCTYPE html>\n<html lang=\"{'zh-CN' if text.code == 'zh' else 'en'}\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(title(report))}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(title(report))}</h1><p class=\"meta\">{escape(meta_line(report))}</p>"
        + (f'<p class="warning">{escape(warning)}</p>' if warning else "") + body
        + f'<h2 id="method">{escape(text("h.method"))}</h2><details><summary>{escape(text("h.method"))}</summary>'
        f'<ul class="note">{method}</ul></details></body></html>\n'
    )
