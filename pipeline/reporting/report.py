"""The report a quality manager acts on: one self-contained HTML file, an Excel workbook of the same tables,
and a markdown summary (also published as a Prefect artifact by the nightly flow).

It opens with what needs doing — the alerts said plainly (which cause, where, how much, since when, with
complaints to read; the statistics one click away), tickets past their deadline, the review backlog —
then recovery beside the cause trends, the cause mix (with shares corrected by the audit), and the
detail. Chinese first (``language``, ``complaints trends --lang en`` for English); causes are the
service failures only, the texts that are not complaints are the review backlog, apart.

Here: what a report holds (``TrendReport``), reading it from the store, and writing it in each format.
The formats: ``html_report`` (Jinja2 templates in ``templates/``, charts from ``charts``; opens offline,
no script, a Content-Security-Policy forbids every external request, every value autoescaped),
``workbook`` (strings stay strings: a complaint that starts with "=" is text, never a formula) and
``markdown_report``; the tables and sentences they share are in ``tables``. Complaint texts are the
PII-masked copies.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from pipeline.config import Settings
from pipeline.reporting import audit as audit_figures
from pipeline.reporting import recovery as recovery_figures
from pipeline.reporting import trends
from pipeline.reporting.html_report import render_html
from pipeline.reporting.language import Language, language
from pipeline.reporting.markdown_report import artifact_table, markdown_text, render_markdown
from pipeline.reporting.recovery import Recovery
from pipeline.reporting.tables import where
from pipeline.reporting.trend_inputs import read_trend_inputs
from pipeline.reporting.trends import Trends
from pipeline.reporting.workbook import write_workbook
from pipeline.storage import store

# what the flow, the CLI and the ticket deadlines use
__all__ = ["REPORT_FORMATS", "TrendReport", "artifact_table", "build_report", "markdown_text", "render_html",
           "render_markdown", "where", "write_report", "write_report_files"]

REPORT_FORMATS = ("html", "xlsx", "md")


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
    """Read the store, aggregated by the database, and finish the figures; None when no complaint has been
    classified yet."""
    rule = settings.trends
    earliest, latest = store.complaint_time_range(engine, settings.timezone)
    window = trends.default_window(earliest, latest, period or rule.period, rule.window_days, since, until)
    if window is None:
        return None
    period = trends.checked_period(period, rule)
    now = store.utcnow()
    # the tickets' scans beside the complaints' (independent reads): the database works on both cores
    with ThreadPoolExecutor(1, thread_name_prefix="report-tickets") as aside:
        tickets = aside.submit(recovery_figures.read_recovery_rows, engine, window.start,
                               window.end + pd.Timedelta(days=1), now=now, timezone=settings.timezone)
        inputs = read_trend_inputs(engine, window, period, settings.timezone, split_by=split_by or rule.split_by,
                                   examples=rule.examples_per_cause)
        result = trends.trends_of(inputs, window, rule, period=period, split_by=split_by)
        quoted = result.examples["complaint_id"].tolist() + result.alert_examples["complaint_id"].tolist()
        texts = store.read_masked_texts(engine, quoted)
        recovery = recovery_figures.build_recovery(tickets.result(), now, settings.timezone)
    drawn, _ = audit_figures.audit_counts(engine)
    by_model = inputs.cells.rename(columns={"cause": "effective_cause", "model_cause": "cause"})
    shares = audit_figures.adjusted_shares_of_counts(by_model, audit_figures.audit_labels(engine), drawn=drawn)
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
