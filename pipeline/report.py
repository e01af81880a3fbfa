"""The cause-trend report for quality managers: one self-contained HTML file, an Excel workbook of the same
tables, and a markdown summary (also published as a Prefect artifact by the nightly flow).

The HTML opens offline: charts are inline SVG drawn here, styles are inline, there is no script, and a
Content-Security-Policy forbids every external request. Every text from the data (complaints, channels,
terms) is HTML-escaped; complaint texts are the PII-masked copies. The workbook writes strings as
strings (a complaint that starts with "=" stays text, never a formula).
"""
from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from pipeline import audit as audit_figures
from pipeline import recovery as recovery_figures
from pipeline import store, trends
from pipeline.config import Settings
from pipeline.recovery import Recovery
from pipeline.schemas import CAUSE_NAMES_ZH, NONE_LABEL
from pipeline.spreadsheet import excel_safe, excel_writer
from pipeline.trends import OVERALL, TrendError, Trends, period_label

REPORT_FORMATS = ("html", "xlsx", "md")
# Okabe–Ito colours (distinguishable with colour-vision deficiencies); `none` is grey.
CAUSE_COLOURS = {"personnel": "#e69f00", "process": "#56b4e9", "technology": "#009e73", "management": "#0072b2",
                 "customer": "#cc79a7", "random": "#d55e00", NONE_LABEL: "#b0b0b0"}
EXTRA_COLOURS = ("#f0e442", "#000000", "#8c564b", "#7f7f7f", "#17becf")
ALERT_COLOUR = "#c0392b"
DECREASE_COLOUR = "#2e86c1"
EXAMPLE_CHARS = 400
HEATMAP_ROWS = 25
HEATMAP_MIN_RESIDUAL = 2.0  # |observed − expected| / √expected a heatmap cell needs to be coloured
EXCEL_MAX_ROWS = 1_048_576


@dataclass(frozen=True)
class TrendReport:
    trends: Trends
    example_texts: dict[str, str]  # complaint_id → PII-masked text
    generated_at: datetime
    recovery: Recovery | None = None  # the window's tickets: speed, deadlines, compensation, corrections
    shares: audit_figures.AdjustedShares | None = None  # cause shares corrected by the audit sample
    audit_drawn: int = 0  # complaints drawn for audits (labelled or not)


def build_report(engine: sa.Engine, settings: Settings, *, since: date | datetime | None = None,
                 until: date | datetime | None = None, period: str | None = None,
                 split_by: str | None = None) -> TrendReport | None:
    """Read the store and aggregate; None when no complaint has been classified yet."""
    rule = settings.trends
    earliest, latest = store.complaint_time_range(engine)
    window = trends.default_window(earliest, latest, period or rule.period, rule.window_days, since, until)
    if window is None:
        return None
    rows = store.read_trend_rows(engine, window.start, window.end + pd.Timedelta(days=1))
    result = trends.build_trends(rows, window, rule, period=period, split_by=split_by)
    texts = store.read_masked_texts(engine, result.examples["complaint_id"].tolist())
    tickets = recovery_figures.read_recovery_rows(engine, window.start, window.end + pd.Timedelta(days=1))
    recovery = recovery_figures.build_recovery(tickets, store.utcnow(), settings.timezone)
    latest = trends.latest_predictions(rows)
    drawn, _ = audit_figures.audit_counts(engine)
    shares = audit_figures.adjusted_shares(latest["cause"].astype(object), audit_figures.audit_labels(engine),
                                          drawn=drawn, window_versions=latest["model_version"].astype(object))
    return TrendReport(result, texts, datetime.now().replace(microsecond=0), recovery, shares, drawn)


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

def cause_name(cause: str) -> str:
    return f"{cause} {CAUSE_NAMES_ZH[cause]}" if cause in CAUSE_NAMES_ZH else cause


def cause_colour(cause: str, causes: list[str]) -> str:
    if cause in CAUSE_COLOURS:
        return CAUSE_COLOURS[cause]
    extra = [c for c in causes if c not in CAUSE_COLOURS]
    return EXTRA_COLOURS[extra.index(cause) % len(EXTRA_COLOURS)]


def where(scope: str, group: str) -> str:
    return "overall" if scope == OVERALL else f"{scope} = {group}"


def _overall(result: Trends) -> pd.DataFrame:
    return result.counts[result.counts["scope"] == OVERALL]


def change_table(result: Trends) -> pd.DataFrame:
    """The latest period against the one before, per cause, overall."""
    latest = _overall(result)
    latest = latest[latest["period"] == result.current_period].set_index("cause").reindex(result.causes)
    alerted = set(result.alerts["cause"])
    return pd.DataFrame({
        "cause": result.causes, "name": [CAUSE_NAMES_ZH.get(c, "") for c in result.causes],
        "count": latest["count"].to_numpy(), "previous_count": latest["prev_count"].to_numpy(),
        "count_change": latest["count_change"].to_numpy(), "share": latest["share"].to_numpy(),
        "previous_share": latest["prev_share"].to_numpy(), "share_change_points": latest["share_change"].to_numpy() * 100,
        "alert": ["yes" if c in alerted else "" for c in result.causes],
    })


def alerts_table(result: Trends) -> pd.DataFrame:
    alerts = result.alerts
    return pd.DataFrame({
        "cause": alerts["cause"], "where": [where(s, g) for s, g in zip(alerts["scope"], alerts["group"])],
        "since": [period_label(p, result.period) for p in alerts["since"]],
        "period": [period_label(p, result.period) for p in alerts["period"]],
        "observed": alerts["count"], "expected": alerts["expected"].round(1),
        "count_ratio": alerts["count_ratio"].round(2), "p_count": alerts["p_count"], "q_count": alerts["q_count"],
        "share": alerts["share"].round(4), "baseline_share": alerts["baseline_share"].round(4),
        "share_ratio": alerts["share_ratio"].round(2), "p_share": alerts["p_share"], "q_share": alerts["q_share"],
        "test": alerts["test"],
    })


ALERT_HEADER = ["cause", "where", "since", "count / expected", "p / q (count)", "share / baseline",
                "p / q (share)", "passed"]


def _alert_rows(alerts: pd.DataFrame) -> list[list[str]]:
    """The alerts table (``alerts_table``) formatted for reading: HTML and markdown."""
    return [[cause_name(a.cause), a.where, a.since, f"{a.observed:,} / {_number(a.expected, 1)} ({_ratio(a.count_ratio)})",
             f"{_probability(a.p_count)} / {_probability(a.q_count)}",
             f"{_percent(a.share)} / {_percent(a.baseline_share)} ({_ratio(a.share_ratio)})",
             f"{_probability(a.p_share)} / {_probability(a.q_share)}", a.test] for a in alerts.itertuples()]


def _with_period_labels(frame: pd.DataFrame, period: str) -> pd.DataFrame:
    return frame.assign(period=[period_label(p, period) for p in frame["period"]])


def examples_table(report: TrendReport) -> pd.DataFrame:
    examples = report.trends.examples
    return pd.DataFrame({
        "cause": examples["cause"], "complaint_id": examples["complaint_id"],
        "time": examples["at"].dt.strftime("%Y-%m-%d %H:%M"), "channel": examples["channel"],
        "confidence": examples["confidence"].round(3),
        "text_masked": [_shorten(report.example_texts.get(i, "")) for i in examples["complaint_id"]],
    })


RECOVERY_HEADER = ["", "tickets", "answered", "to answer: median / p90", "answered late", "resolved",
                   "to resolve: median / p90", "resolved in time", "open past deadline", "reopened", "compensated"]
SPEED_LABELS = {"same_day": "same day (≈1)", "next_day": "next day (≈10)", "later": "later (≈100)",
                "open_late": "still open, past the next day", "open": "still open"}
SPEED_COLOURS = {"same_day": "#2e8b57", "next_day": "#e6b800", "later": ALERT_COLOUR, "open_late": "#7b241c",
                 "open": "#c8ced4"}


def _duration(hours) -> str:
    if hours is None or pd.isna(hours):
        return "–"
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


def recovery_rows(table: pd.DataFrame, name=lambda group: group) -> list[list[str]]:
    """A ``recovery.group_figures`` table formatted for reading (HTML and markdown)."""
    return [[name(r.group), f"{r.tickets:,}", f"{r.acknowledged:,}",
             f"{_duration(r.respond_median_h)} / {_duration(r.respond_p90_h)}", f"{r.respond_late:,}", f"{r.resolved:,}",
             f"{_duration(r.resolve_median_h)} / {_duration(r.resolve_p90_h)}",
             f"{_percent(r.within_sla_share, 0)} of {r.due:,}", f"{r.breached_open:,}",
             f"{_percent(r.reopened_share, 0)}", f"{r.compensated:,} · {r.compensation_total:,.0f}"]
            for r in table.itertuples()]


def speed_table(recovery: Recovery) -> pd.DataFrame:
    """The 1:10:100 view with shares of each cause's tickets."""
    speed = recovery.speed.copy()
    total = speed[list(recovery_figures.SPEED_BUCKETS)].sum(axis=1)
    for bucket in recovery_figures.SPEED_BUCKETS:
        speed[f"{bucket}_share"] = speed[bucket] / total.where(total > 0)
    return speed


ALERTS_USE_RAW = ("The alerts test the classifier's own counts, not the adjusted shares: the audit's correction is the "
                  "same for every period, so a change the classifier sees is a change in the complaints, and the "
                  "raw counts carry none of the audit's sampling uncertainty. The adjusted shares answer another "
                  "question: how large each cause really is.")


def shares_table(report: TrendReport) -> pd.DataFrame:
    """Each cause's share of the window's service failures: the classifier's, and adjusted by the audit."""
    if report.shares is None:
        return pd.DataFrame(columns=["cause", "name", "raw_share", "adjusted_share", "ci_low", "ci_high"])
    table = report.shares.table.set_index("cause")
    order = trends.ordered_causes(table.index)
    table = table.reindex(order).reset_index()
    table.insert(1, "name", [CAUSE_NAMES_ZH.get(c, "") for c in table["cause"]])
    return table


def shares_note(report: TrendReport) -> str:
    shares = report.shares
    if shares is None:
        return (f"No adjusted shares yet: {report.audit_drawn} complaint(s) drawn for an audit, fewer than "
                f"{audit_figures.MIN_AUDIT_LABELS} labelled. Draw a random sample with `complaints review export "
                "--audit 400`, label it, and `complaints review import` it; the shares below are the classifier's.")
    note = (f"Adjusted by {shares.audit_labels} randomly drawn complaints that people labelled (of "
            f"{shares.audit_drawn} drawn); 95% bootstrap intervals.")
    if shares.unaudited_share > 0.01:
        note += f" {shares.unaudited_share:.0%} of the window was predicted as a cause no audited complaint had: kept as predicted."
    if shares.window_model_share < 0.5:
        note += (f" Only {shares.window_model_share:.0%} of the window was classified by the model the audit measured "
                 f"({', '.join(shares.model_versions)}): draw a new audit.")
    return note


def method_lines(result: Trends) -> list[str]:
    rule = result.rule
    return [
        f"Each {result.period} is compared with its own baseline: the {rule.baseline_periods} {result.period}s "
        f"before it (tests start once {rule.min_baseline_periods} exist).",
        "Count test: one-sided exact test of the daily rate — given the combined count n of the period and "
        "its baseline, the period's count is Binomial(n, e / (e + e_baseline)) when the rate has not changed "
        "(e = days covered, so months and the unfinished current period are fair).",
        "Share test: one-sided Fisher exact test (hypergeometric tail) of the cause's share of the group's "
        "complaints against the baseline share; a general rise in complaints does not trigger it.",
        f"All p-values of a period (both tests, every cause, overall and per {result.split_by}) are corrected "
        f"together with Benjamini–Hochberg; a test passes at q ≤ {rule.alpha:g} with a ratio to the "
        f"expectation of at least {rule.min_ratio:g}. No alert below {rule.min_count} complaints.",
        f"Under steady data a {result.period} raises a false alert with a probability of about {rule.alpha:g} "
        f"or less. “Since” is the first {result.period} of the unbroken run of flagged {result.period}s that "
        "ends in the latest one.",
        "A complaint's time is its created_at, or ingested_at when the source had no date; its cause is the "
        "latest review's label when reviewed, else the latest prediction; 'none' (not a complaint) is counted "
        "like a cause, so shares add up to 100%.",
    ]


def _shorten(text: str) -> str:
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS] + "…"


def _percent(value, digits: int = 1) -> str:
    return "–" if value is None or pd.isna(value) else f"{value * 100:.{digits}f}%"


def _signed(value, suffix: str = "", digits: int = 0) -> str:
    if value is None or pd.isna(value):
        return "–"
    return f"{0.0:.{digits}f}{suffix}" if round(value, digits) == 0 else f"{value:+.{digits}f}{suffix}"


def _number(value, digits: int = 0) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:,.{digits}f}"


def _probability(value) -> str:
    return "–" if value is None or pd.isna(value) else (f"{value:.3f}" if value >= 0.001 else f"{value:.1e}")


def _ratio(value) -> str:
    return "new" if value == math.inf else ("–" if pd.isna(value) else f"×{value:.2f}")


def elapsed_note(result: Trends) -> str:
    """' (3 of 7 days so far)' while the latest period is unfinished: its counts are not yet comparable."""
    current = result.current_period
    length = (current.end_time.normalize() - current.start_time).days + 1
    elapsed = (result.window.end - max(current.start_time, result.window.start)).days + 1
    return f" ({elapsed} of {length} days so far)" if elapsed < length else ""


def title(result: Trends) -> str:
    return f"Complaint cause trends · 投诉原因趋势 — {result.period} of {period_label(result.current_period, result.period)}"


# ---------------------------------------------------------------- markdown

# Characters that start markdown or HTML inline (emphasis, code, links, images, tags, entities, table cells)
# and the starts of the bare links GFM renderers (Prefect's UI) turn into anchors: "http://", "www.", "a@b".
_MARKDOWN_ACTIVE = re.compile(r"[\\`*_\[\]<>!|~&@]|(?<=[A-Za-z]):(?=//)|(?<=www)\.", re.IGNORECASE)


def markdown_text(value) -> str:
    """Data as inert markdown text on one line: it renders as written, never as a link, image, tag or cell."""
    return _MARKDOWN_ACTIVE.sub(lambda m: "\\" + m.group(), " ".join(str(value).split()))


def _md_table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(markdown_text(v) for v in row) + " |" for row in rows]


def render_markdown(report: TrendReport, report_link: str | None = None) -> str:
    result = report.trends
    lines = [f"# {title(result)}", "",
             f"{result.window.start:%Y-%m-%d} – {result.window.end:%Y-%m-%d} · {result.complaints:,} complaints · "
             f"per {result.period}, split by {markdown_text(result.split_by)} · "
             f"generated {report.generated_at:%Y-%m-%d %H:%M}", ""]
    if report_link:
        lines += [f"Full report: {report_link}", ""]
    if trends.unfamiliar_warning(result):
        lines += [f"> **Note:** {trends.unfamiliar_warning(result)}", ""]
    alerts = alerts_table(result)
    lines.append(f"## Alerts ({len(alerts)})")
    if alerts.empty:
        lines += ["", f"No cause is significantly above its baseline this {result.period}."]
    else:
        lines += [""] + _md_table(ALERT_HEADER, _alert_rows(alerts))
    change = change_table(result)
    lines += ["", f"## This {result.period}{elapsed_note(result)} against the previous one", ""] + _md_table(
        ["cause", "count", "previous", "change", "share", "previous share", "change (points)"],
        [[cause_name(c.cause), _number(c.count), _number(c.previous_count), _signed(c.count_change),
          _percent(c.share), _percent(c.previous_share), _signed(c.share_change_points, digits=1)]
         for c in change.itertuples()])
    lines += _shares_markdown(report)
    lines += _recovery_markdown(report.recovery)
    latest_terms = result.terms[result.terms["period"] == result.current_period]
    if not latest_terms.empty:
        lines += ["", f"## Terms behind each cause this {result.period}", ""]
        for cause in result.causes:
            terms = latest_terms[latest_terms["cause"] == cause]
            if not terms.empty:
                lines.append(f"- **{markdown_text(cause_name(cause))}**: " + ", ".join(
                    f"{markdown_text(t.term)} ({t.count})" for t in terms.itertuples()))
    lines += ["", "## Method", ""] + [f"- {line}" for line in method_lines(result)]
    return "\n".join(lines) + "\n"


def _shares_markdown(report: TrendReport) -> list[str]:
    lines = ["", "## Cause shares: the classifier's and adjusted by the audit", "", markdown_text(shares_note(report)), ""]
    table = shares_table(report)
    if len(table):
        lines += _md_table(["cause", "classifier", "adjusted", "95% interval"],
                           [[cause_name(r.cause), _percent(r.raw_share), _percent(r.adjusted_share),
                             f"{_percent(r.ci_low)} – {_percent(r.ci_high)}"] for r in table.itertuples()])
        lines += ["", ALERTS_USE_RAW]
    return lines


def _recovery_markdown(recovery: Recovery | None) -> list[str]:
    if recovery is None or not recovery.tickets:
        return []
    lines = ["", "## Recovery by cause · 补救", ""]
    lines += _md_table(RECOVERY_HEADER[:1] + ["cause"] + RECOVERY_HEADER[1:],
                       [[""] + row for row in recovery_rows(recovery.by["cause"], cause_name)])
    speed = speed_table(recovery)
    lines += ["", "1:10:100 — recoveries the same day / the next day / later, and still open:", ""]
    for row in speed.itertuples():
        lines.append(f"- {markdown_text(cause_name(row.cause))}: " + " · ".join(
            f"{SPEED_LABELS[b]} {getattr(row, b)}" for b in recovery_figures.SPEED_BUCKETS))
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
        "alerts": alerts_table(result),
        "counts": label(result.counts),
        "tests": label(result.tests),
        **{f"{column} x cause"[:31]: table.reset_index().rename(columns={"group": column})
           for column, table in result.heatmaps.items()},
        "adjusted shares": shares_table(report),
        **_recovery_sheets(report.recovery),
        "terms": label(result.terms),
        "examples": examples_table(report),
        "method": pd.DataFrame({"method": method_lines(result)}),
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


# ---------------------------------------------------------------- HTML and SVG

def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _svg(width: float, height: float, body: list[str], label: str) -> str:
    return (f'<svg viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
            f'role="img" aria-label="{_e(label)}">' + "".join(body) + "</svg>")


def _tick_label(value: pd.Period, period: str) -> str:
    return f"{value.start_time:%Y-%m}" if period == "month" else f"{value.start_time:%m-%d}"


def _tick_every(count: int, wanted: int = 12) -> int:
    return max(1, math.ceil(count / wanted))


def stacked_shares_svg(result: Trends) -> str:
    """100% bars: each period's complaints split by cause."""
    overall = _overall(result)
    periods = list(dict.fromkeys(overall["period"]))
    width, height, left, right, top, bottom = 960, 300, 48, 12, 12, 40
    plot_width, plot_height = width - left - right, height - top - bottom
    slot = plot_width / max(len(periods), 1)
    bar = max(slot * 0.82, 1.0)
    body = []
    for share in (0, 0.25, 0.5, 0.75, 1):
        y = top + plot_height * (1 - share)
        body.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
                    f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{share:.0%}</text>')
    cells = overall.set_index(["period", "cause"])
    for i, value in enumerate(periods):
        x = left + i * slot + (slot - bar) / 2
        label = period_label(value, result.period)
        bottom_y = top + plot_height
        for cause in result.causes:
            count, total, share = cells.loc[(value, cause), ["count", "total", "share"]]
            if not total or not count:
                continue
            bar_height = share * plot_height
            bottom_y -= bar_height
            body.append(f'<rect x="{x:.1f}" y="{bottom_y:.1f}" width="{bar:.1f}" height="{bar_height:.1f}" '
                        f'fill="{cause_colour(cause, result.causes)}"><title>{_e(label)} · {_e(cause_name(cause))}: '
                        f'{count:,.0f} of {total:,.0f} ({share:.1%})</title></rect>')
        if i % _tick_every(len(periods)) == 0:
            body.append(f'<text class="axis" x="{x + bar / 2:.1f}" y="{height - bottom + 16}" '
                        f'text-anchor="middle">{_e(_tick_label(value, result.period))}</text>')
    return _svg(width, height, body, f"share of each cause per {result.period}")


def cause_panel_svg(result: Trends, cause: str) -> str:
    """One cause over time: its count, the count its baseline expected, and the flagged periods
    (filled: overall; ring: only within a split group)."""
    overall = _overall(result)
    series = overall[overall["cause"] == cause].set_index("period")["count"]
    periods = list(series.index)
    tests = result.tests[result.tests["cause"] == cause]
    overall_tests = tests[tests["scope"] == OVERALL].set_index("period")
    expected = overall_tests["expected"].reindex(periods)
    flagged_overall = set(overall_tests.index[overall_tests["flagged"].astype(bool)])
    flagged_split = set(tests.loc[(tests["scope"] != OVERALL) & tests["flagged"].astype(bool), "period"])
    width, height, left, right, top, bottom = 300, 150, 40, 10, 26, 24
    plot_width, plot_height = width - left - right, height - top - bottom
    # the axis spans the data (not from zero), so a rise shows; its two labels give the scale
    values = pd.concat([series, expected.dropna()])
    low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    low, high = max(0.0, low - 0.1 * (high - low)), high + max(0.05 * (high - low), 1.0)
    x_of = lambda i: left + (plot_width * i / max(len(periods) - 1, 1))  # noqa: E731
    y_of = lambda v: top + plot_height * (high - v) / (high - low)  # noqa: E731
    colour = cause_colour(cause, result.causes)
    body = [f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y_of(low):.1f}" y2="{y_of(low):.1f}"/>',
            f'<text class="axis" x="{left - 5}" y="{y_of(high) + 4:.1f}" text-anchor="end">{high:,.0f}</text>',
            f'<text class="axis" x="{left - 5}" y="{y_of(low) + 4:.1f}" text-anchor="end">{low:,.0f}</text>']
    known = [(x_of(i), y_of(v)) for i, v in enumerate(expected) if pd.notna(v)]
    if len(known) > 1:
        body.append('<polyline class="expected" points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in known) + '"/>')
    body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                + " ".join(f"{x_of(i):.1f},{y_of(v):.1f}" for i, v in enumerate(series)) + '"/>')
    for i, value in enumerate(periods):
        label = f"{period_label(value, result.period)}: {series[value]:,.0f}"
        if pd.notna(expected.iloc[i]):
            label += f" (expected {expected.iloc[i]:,.1f})"
        if value in flagged_overall:
            body.append(f'<circle cx="{x_of(i):.1f}" cy="{y_of(series[value]):.1f}" r="4.5" fill="{ALERT_COLOUR}">'
                        f'<title>{_e(label)} — alert</title></circle>')
        elif value in flagged_split:
            body.append(f'<circle cx="{x_of(i):.1f}" cy="{y_of(series[value]):.1f}" r="4.5" fill="none" '
                        f'stroke="{ALERT_COLOUR}" stroke-width="2"><title>{_e(label)} — alert within a '
                        f'{_e(result.split_by)}</title></circle>')
        else:
            body.append(f'<circle cx="{x_of(i):.1f}" cy="{y_of(series[value]):.1f}" r="2" fill="{colour}">'
                        f'<title>{_e(label)}</title></circle>')
    if periods:
        body.append(f'<text class="axis" x="{left}" y="{height - 6}">{_e(_tick_label(periods[0], result.period))}</text>'
                    f'<text class="axis" x="{width - right}" y="{height - 6}" text-anchor="end">'
                    f'{_e(_tick_label(periods[-1], result.period))}</text>')
    latest = series.iloc[-1] if len(series) else 0
    body.append(f'<text class="panel-title" x="{left}" y="16">{_e(cause_name(cause))} · {latest:,.0f} this '
                f'{_e(result.period)}</text>')
    return _svg(width, height, body, f"{cause} per {result.period}")


def change_bars_svg(change: pd.DataFrame) -> str:
    """Horizontal bars: each cause's change in share (points) against the previous period."""
    width, row, label_width, value_width = 720, 28, 170, 150
    height = row * len(change) + 10
    half = (width - label_width - value_width) / 2
    centre = label_width + half
    largest = max(float(change["share_change_points"].abs().max()) if change["share_change_points"].notna().any()
                  else 0, 0.5)
    body = [f'<line class="zero" x1="{centre:.1f}" x2="{centre:.1f}" y1="0" y2="{height}"/>']
    for i, item in enumerate(change.itertuples()):
        y = 5 + i * row
        body.append(f'<text class="label" x="{label_width - 8}" y="{y + 18}" text-anchor="end">'
                    f'{_e(cause_name(item.cause))}</text>')
        if pd.notna(item.share_change_points):
            length = half * abs(item.share_change_points) / largest
            x = centre if item.share_change_points >= 0 else centre - length
            fill = ALERT_COLOUR if item.share_change_points > 0 else DECREASE_COLOUR
            body.append(f'<rect x="{x:.1f}" y="{y + 5}" width="{max(length, 1):.1f}" height="{row - 10}" fill="{fill}">'
                        f'<title>{_e(cause_name(item.cause))}: {_e(_signed(item.share_change_points, " points", 1))}'
                        f'</title></rect>')
        text = (f"{_signed(item.share_change_points, ' pts', 1)} ({_number(item.previous_count)} → "
                f"{_number(item.count)})")
        body.append(f'<text class="value" x="{width - value_width + 6}" y="{y + 18}">{_e(text)}</text>')
    return _svg(width, height, body, "change in share against the previous period")


def _diverging(lift: float) -> str:
    """Colour for how a group's share compares with everywhere: white when equal, red up to twice as
    large, blue down to half (log scale, clipped)."""
    position = max(-1.0, min(1.0, math.log2(lift))) if lift > 0 else -1.0
    white, end = (255, 255, 255), ((192, 57, 43) if position > 0 else (46, 134, 193))
    return "#" + "".join(f"{round(a + (b - a) * abs(position)):02x}" for a, b in zip(white, end))


def heatmap_svg(table: pd.DataFrame, column: str, causes: list[str]) -> str:
    """group × cause: number = complaints; colour = the cause's share of the group's complaints against
    its share across all groups (where a cause gathers, not merely where complaints are many), for the
    cells whose Pearson residual says the difference is beyond chance."""
    shown = table.head(HEATMAP_ROWS)
    cell_width, cell_height, label_width, header = 96, 26, 150, 30
    width = label_width + cell_width * (len(causes) + 1)
    height = header + cell_height * len(shown) + 4
    shares = shown.div(shown.sum(axis=1).where(lambda s: s > 0), axis=0).fillna(0)
    everywhere = table.sum(axis=0) / max(int(table.to_numpy().sum()), 1)
    body = []
    for j, cause in enumerate(causes):
        body.append(f'<text class="label" x="{label_width + cell_width * (j + 0.5):.1f}" y="{header - 10}" '
                    f'text-anchor="middle">{_e(cause)}</text>')
    body.append(f'<text class="label" x="{label_width + cell_width * (len(causes) + 0.5):.1f}" y="{header - 10}" '
                f'text-anchor="middle">total</text>')
    for i, (group, counts) in enumerate(shown.iterrows()):
        y = header + i * cell_height
        body.append(f'<text class="label" x="{label_width - 8}" y="{y + 17}" text-anchor="end">{_e(group)}</text>')
        for j, cause in enumerate(causes):
            share, overall_share = shares.loc[group, cause], everywhere[cause]
            expected = counts.sum() * overall_share
            # only differences beyond chance get a colour, so a handful of complaints cannot paint a cell
            beyond_chance = expected > 0 and abs(counts[cause] - expected) / math.sqrt(expected) >= HEATMAP_MIN_RESIDUAL
            lift = share / overall_share if beyond_chance else 1.0
            strong = lift <= 0 or abs(math.log2(lift)) > 0.6  # white text on the darker cells
            x = label_width + j * cell_width
            body.append(f'<rect class="cell-box" x="{x}" y="{y}" width="{cell_width - 2}" height="{cell_height - 2}" '
                        f'fill="{_diverging(lift)}"><title>{_e(column)} {_e(group)} · {_e(cause_name(cause))}: '
                        f'{counts[cause]:,} complaints, {share:.1%} of the {_e(column)} against {overall_share:.1%} '
                        f'overall</title></rect>'
                        f'<text class="cell{" dark" if strong else ""}" '
                        f'x="{x + (cell_width - 2) / 2:.1f}" y="{y + 17}" text-anchor="middle">{counts[cause]:,}</text>')
        body.append(f'<text class="cell" x="{label_width + cell_width * (len(causes) + 0.5):.1f}" y="{y + 17}" '
                    f'text-anchor="middle">{int(counts.sum()):,}</text>')
    return _svg(width, height, body, f"{column} by cause")


def speed_bars_svg(recovery: Recovery) -> str:
    """Per cause, a 100% bar of its tickets: recovered the same day, the next day, later, still open."""
    speed = recovery.speed
    width, row, label_width, value_width = 720, 26, 170, 90
    plot = width - label_width - value_width
    body = []
    for i, item in enumerate(speed.itertuples()):
        y = 4 + i * row
        total = sum(getattr(item, b) for b in recovery_figures.SPEED_BUCKETS)
        body.append(f'<text class="label" x="{label_width - 8}" y="{y + 16}" text-anchor="end">'
                    f'{_e(cause_name(item.cause))}</text>')
        x = float(label_width)
        for bucket in recovery_figures.SPEED_BUCKETS:
            count = getattr(item, bucket)
            if not count:
                continue
            length = plot * count / total
            body.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{length:.1f}" height="{row - 8}" '
                        f'fill="{SPEED_COLOURS[bucket]}"><title>{_e(cause_name(item.cause))} · '
                        f'{_e(SPEED_LABELS[bucket])}: {count:,} of {total:,}</title></rect>')
            x += length
        body.append(f'<text class="value" x="{width - value_width + 6}" y="{y + 16}">{total:,}</text>')
    return _svg(width, row * len(speed) + 8, body, "recoveries by day: same day, next day, later, open")


def recovery_times_svg(table: pd.DataFrame, name=cause_name) -> str:
    """Per group: hours to answer (light) and to resolve (dark), median dot and a line to the 90th percentile."""
    width, row, label_width, right = 720, 30, 170, 20
    plot = width - label_width - right
    longest = float(pd.concat([table["respond_p90_h"], table["resolve_p90_h"]]).max()) if len(table) else 1.0
    longest = longest if longest and not pd.isna(longest) and longest > 0 else 1.0
    x_of = lambda hours: label_width + plot * min(hours, longest) / longest  # noqa: E731
    body = [f'<text class="axis" x="{label_width}" y="{row * len(table) + 18}">0</text>',
            f'<text class="axis" x="{width - right}" y="{row * len(table) + 18}" text-anchor="end">'
            f'{_e(_duration(longest))}</text>']
    for i, item in enumerate(table.itertuples()):
        y = 6 + i * row
        body.append(f'<text class="label" x="{label_width - 8}" y="{y + 14}" text-anchor="end">{_e(name(item.group))}</text>')
        for offset, median, p90, colour, what in ((4, item.respond_median_h, item.respond_p90_h, "#8fb8de", "answer"),
                                                   (14, item.resolve_median_h, item.resolve_p90_h, "#1f4e79", "resolve")):
            if pd.isna(median):
                continue
            body.append(f'<line x1="{x_of(median):.1f}" x2="{x_of(p90):.1f}" y1="{y + offset}" y2="{y + offset}" '
                        f'stroke="{colour}" stroke-width="3"/>'
                        f'<circle cx="{x_of(median):.1f}" cy="{y + offset}" r="4" fill="{colour}"><title>'
                        f'{_e(name(item.group))} · hours to {what}: median {_e(_duration(median))}, 90% within '
                        f'{_e(_duration(p90))}</title></circle>')
    return _svg(width, row * len(table) + 24, body, "hours to answer and to resolve")


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif;
 margin:0 auto;max-width:1000px;padding:24px;color:#1d2733;background:#fff;line-height:1.45}
h1{font-size:1.5rem;margin:0 0 4px}h2{font-size:1.2rem;margin:32px 0 8px;border-bottom:1px solid #d5dbe1;padding-bottom:4px}
h3{font-size:1rem;margin:16px 0 6px}.meta,.note{color:#5b6875;font-size:.9rem}
table{border-collapse:collapse;font-size:.88rem;margin:8px 0}th,td{border:1px solid #d5dbe1;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f2f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.alert-box{border-left:5px solid #c0392b;background:#fdf1ef;padding:8px 14px;margin:8px 0}
.calm{border-left:5px solid #2e8b57;background:#eff8f2;padding:8px 14px;margin:8px 0}
.warning{border-left:5px solid #b9770e;background:#fdf5e6;padding:8px 14px;margin:8px 0}
.legend{display:flex;flex-wrap:wrap;gap:14px;font-size:.88rem;margin:6px 0}
.swatch{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-1px;border-radius:2px}
.panels{display:flex;flex-wrap:wrap;gap:10px}
svg text{font-size:11px;fill:#1d2733}svg .axis{fill:#5b6875}svg .panel-title{font-size:12px;font-weight:600}
svg .cell.dark{fill:#fff}svg .cell-box{stroke:#e3e7eb}svg .grid{stroke:#e3e7eb}svg .zero{stroke:#5b6875}
svg .expected{fill:none;stroke:#7f8c8d;stroke-width:1.5;stroke-dasharray:4 3}
.example{border:1px solid #e3e7eb;border-radius:4px;padding:6px 10px;margin:6px 0;white-space:pre-wrap}
.example .meta{display:block;white-space:normal}
"""


def _html_table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f'<td class="num">{_e(v)}</td>' if j in numeric else f"<td>{_e(v)}</td>"
                                    for j, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _legend(causes: list[str]) -> str:
    return '<div class="legend">' + "".join(
        f'<span><span class="swatch" style="background:{cause_colour(c, causes)}"></span>{_e(cause_name(c))}</span>'
        for c in causes) + "</div>"


def _alerts_section(result: Trends) -> str:
    alerts = alerts_table(result)
    if alerts.empty:
        return (f'<div class="calm">No cause is significantly above its baseline this {_e(result.period)} '
                f'({_e(period_label(result.current_period, result.period))}).</div>')
    items = "".join(
        f"<li><strong>{_e(cause_name(a.cause))}</strong> — {_e(a.where)}: {a.observed:,} complaints, "
        f"{_e(_number(a.expected, 1))} expected ({_e(_ratio(a.count_ratio))}); share {_e(_percent(a.share))} "
        f"against {_e(_percent(a.baseline_share))}; since {_e(a.since)}</li>" for a in alerts.itertuples())
    table = _html_table(ALERT_HEADER, _alert_rows(alerts), numeric={3, 4, 5, 6})
    return f'<div class="alert-box"><ul>{items}</ul></div>{table}'


def _terms_section(result: Trends) -> str:
    latest = result.terms[result.terms["period"] == result.current_period]
    rows = []
    for cause in result.causes:
        terms = latest[latest["cause"] == cause]
        if not terms.empty:
            rows.append([cause_name(cause), "、".join(f"{t.term} ({t.count}, {t.share:.0%})" for t in terms.itertuples())])
    if not rows:
        return f'<p class="note">No explanation terms were stored for this {_e(result.period)}.</p>'
    return (_html_table(["cause", "terms (complaints, share of the cause's complaints)"], rows)
            + '<p class="note">Terms are the words the classifier gave as the reason for each cause.</p>')


def _examples_section(report: TrendReport) -> str:
    examples = examples_table(report)
    if examples.empty:
        return f'<p class="note">No complaints in this {_e(report.trends.period)}.</p>'
    parts = []
    for cause in report.trends.causes:
        chosen = examples[examples["cause"] == cause]
        if chosen.empty:
            continue
        parts.append(f"<h3>{_e(cause_name(cause))}</h3>")
        parts += [f'<div class="example">{_e(row.text_masked)}<span class="meta">{_e(row.complaint_id)} · '
                  f'{_e(row.time)} · {_e(row.channel)} · confidence {row.confidence:.2f}</span></div>'
                  for row in chosen.itertuples()]
    return "".join(parts)


def _unfamiliar_note(result: Trends) -> str:
    warning = trends.unfamiliar_warning(result)
    return f'<p class="warning">{_e(warning)}</p>' if warning else ""


def _shares_section(report: TrendReport) -> str:
    table = shares_table(report)
    parts = [f'<p class="note">{_e(shares_note(report))}</p>']
    if len(table):
        parts.append(_html_table(["cause", "classifier's share", "adjusted share", "95% interval"],
                                 [[cause_name(r.cause), _percent(r.raw_share), _percent(r.adjusted_share),
                                   f"{_percent(r.ci_low)} – {_percent(r.ci_high)}"] for r in table.itertuples()],
                                 numeric={1, 2, 3}))
        parts.append(f'<p class="note">{_e(ALERTS_USE_RAW)}</p>')
    return "".join(parts)


def _recovery_section(recovery: Recovery | None) -> str:
    if recovery is None or not recovery.tickets:
        return '<p class="note">No tickets of service failures in this window.</p>'
    parts = []
    if not recovery.has_updates:
        parts.append('<p class="warning">No ticket has been answered or resolved yet: report updates with '
                     '`complaints tickets update` or the HTTP endpoint, and this section fills in.</p>')
    legend = '<div class="legend">' + "".join(
        f'<span><span class="swatch" style="background:{SPEED_COLOURS[b]}"></span>{_e(SPEED_LABELS[b])}</span>'
        for b in recovery_figures.SPEED_BUCKETS) + "</div>"
    parts += ['<h3>1:10:100 — when complaints were put right</h3>', legend, speed_bars_svg(recovery),
              '<h3>Hours to answer and to resolve (median · 90th percentile)</h3>',
              recovery_times_svg(recovery.by["cause"]),
              _html_table(["cause"] + RECOVERY_HEADER[1:], recovery_rows(recovery.by["cause"], cause_name),
                          numeric=set(range(1, len(RECOVERY_HEADER))))]
    for key in ("queue", "channel"):
        parts += [f"<h3>By {_e(key)}</h3>",
                  _html_table([key] + RECOVERY_HEADER[1:], recovery_rows(recovery.by[key]),
                              numeric=set(range(1, len(RECOVERY_HEADER))))]
    if len(recovery.corrections):
        parts += ["<h3>Causes corrected by the people who handled them</h3>",
                  _html_table(["routed as", "found to be", "complaints", "share of routed"],
                              [[cause_name(r.routed_cause), cause_name(r.cause), f"{r.complaints:,}",
                                _percent(r.share_of_routed, 0)] for r in recovery.corrections.itertuples()],
                              numeric={2, 3})]
    return "".join(parts)


def render_html(report: TrendReport) -> str:
    result = report.trends
    label = period_label(result.current_period, result.period)
    meta = (f"{result.window.start:%Y-%m-%d} – {result.window.end:%Y-%m-%d} · {result.complaints:,} complaints · "
            f"per {result.period} · split by {result.split_by} · generated {report.generated_at:%Y-%m-%d %H:%M}")
    if result.complaints == 0:
        body = '<p class="calm">No classified complaints in this window.</p>'
    else:
        change = change_table(result)
        heatmaps = "".join(
            f"<h3>{_e(column)} × cause</h3>" + heatmap_svg(table, column, result.causes)
            + (f'<p class="note">The {HEATMAP_ROWS} largest of {len(table)} groups.</p>' if len(table) > HEATMAP_ROWS else "")
            for column, table in sorted(result.heatmaps.items(), key=lambda item: item[0] != "channel"))
        body = "".join([
            f"<h2 id=\"alerts\">Alerts — {_e(result.period)} of {_e(label)}{_e(elapsed_note(result))}</h2>",
            _alerts_section(result),
            f"<h2 id=\"shares\">Cause shares per {_e(result.period)}</h2>", _legend(result.causes),
            stacked_shares_svg(result),
            '<h2 id="causes">Each cause over time</h2>'
            '<p class="note">Line: complaints per period. Dashed: what the trailing baseline expected. '
            f"Red dot: alert overall; red ring: alert within one {_e(result.split_by)}.</p>",
            '<div class="panels">' + "".join(cause_panel_svg(result, c) for c in result.causes) + "</div>",
            f"<h2 id=\"change\">This {_e(result.period)}{_e(elapsed_note(result))} against the previous one</h2>",
            change_bars_svg(change),
            _html_table(["cause", "count", "previous", "change", "share", "previous share", "change (points)", "alert"],
                        [[cause_name(c.cause), _number(c.count), _number(c.previous_count), _signed(c.count_change),
                          _percent(c.share), _percent(c.previous_share), _signed(c.share_change_points, digits=1),
                          c.alert] for c in change.itertuples()], numeric={1, 2, 3, 4, 5, 6}),
            '<h2 id="where">Where: complaints by cause over the whole window</h2>'
            '<p class="note">Numbers: complaints. Colour: the cause\'s share of the row\'s complaints against '
            "its share over all rows — red where it is larger (full red: twice), blue where smaller (full blue: "
            "half). Cells stay white unless the difference is beyond chance (|observed − expected| / √expected "
            f"≥ {HEATMAP_MIN_RESIDUAL:g}).</p>", heatmaps,
            '<h2 id="adjusted">Cause shares adjusted for the classifier\'s errors</h2>', _shares_section(report),
            '<h2 id="recovery">Recovery · 补救</h2>', _recovery_section(report.recovery),
            f"<h2 id=\"terms\">Terms behind each cause this {_e(result.period)}</h2>", _terms_section(result),
            f"<h2 id=\"examples\">Example complaints this {_e(result.period)} (PII masked)</h2>",
            _examples_section(report),
        ])
    method = "".join(f"<li>{_e(line)}</li>" for line in method_lines(result))
    return (
        "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{_e(title(result))}</title><style>{STYLE}</style></head><body>"
        f"<h1>{_e(title(result))}</h1><p class=\"meta\">{_e(meta)}</p>{_unfamiliar_note(result)}{body}"
        f"<h2 id=\"method\">Method</h2><ul class=\"note\">{method}</ul></body></html>\n"
    )
