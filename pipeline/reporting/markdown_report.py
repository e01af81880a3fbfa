"""The report in markdown: the summary the nightly flow publishes as a Prefect artifact (and ``complaints
trends --format md``), with text bars where only text renders, and the change table as JSON for a Prefect
table artifact. Every value from the data is written as inert markdown (``markdown_text``).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from pipeline.reporting import recovery as recovery_figures
from pipeline.reporting.formatting import number, percent, signed
from pipeline.reporting.tables import (SHOWN_ALERTS, alert_quotes, alert_sentence, change_table, elapsed_note,
                                       key_figures, meta_line, method_lines, shares_table, shares_note, title,
                                       unfamiliar_text, where_text)

if TYPE_CHECKING:
    from pipeline.reporting.report import TrendReport

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
