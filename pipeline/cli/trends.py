"""``complaints trends``: the cause-trend report (HTML, Excel or markdown) from the stored predictions."""
from __future__ import annotations

from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from pipeline.cli.errors import remember
from pipeline.config import ConfigError, column_key, load_settings

console = Console()
err_console = Console(stderr=True)


class ReportFormat(str, Enum):
    html = "html"
    xlsx = "xlsx"
    md = "md"


class Language(str, Enum):
    zh = "zh"
    en = "en"


class Period(str, Enum):
    day = "day"
    week = "week"
    month = "month"


def trends(since: Optional[datetime] = typer.Option(None, "--since", help="first day (default: trends.window_days "
                                                    "back from the last complaint)"),
           until: Optional[datetime] = typer.Option(None, "--until", help="last day, included (default: the "
                                                    "day of the latest complaint)"),
           by: Optional[str] = typer.Option(None, "--by", help="split column: channel or any metadata column "
                                            "(store, product …); default from settings"),
           period: Optional[Period] = typer.Option(None, "--period", help="default from settings (week)"),
           report_format: Optional[ReportFormat] = typer.Option(None, "--format", help="default: from --output's "
                                                                "suffix, else html"),
           output: Optional[Path] = typer.Option(None, "--output", help="default: WORK_DIR/reports/trends.FORMAT"),
           lang: Optional[Language] = typer.Option(None, "--lang", help="zh (default, from settings trends.language) "
                                                   "or en"),
           config: Optional[Path] = typer.Option(None, "--config", help="settings TOML file (defaults need none)"),
           work_dir: Optional[Path] = typer.Option(None, "--work-dir", help="where the database and outputs are"),
           ) -> None:
    """Cause shares over time, changes, where, spike alerts, terms and examples — as one report file."""
    from pipeline.reporting.report import build_report, where, write_report
    from pipeline.reporting.trends import TrendError
    from pipeline.storage import store

    try:
        settings = remember(load_settings(config, work_dir=work_dir))
        if by and column_key(by) in {column_key(c) for c in [*settings.personal_columns, settings.columns.customer]}:
            raise TrendError(f"--by {by}: a personal column (settings: personal_columns); reports are not split "
                             "by customer — list one customer's complaints with `complaints customer-ref` instead")
        chosen_format = _format_for(report_format, output)
        output = output or settings.reports_dir / f"trends.{chosen_format}"
        engine = store.connect(settings.resolved_database_url)
        report = build_report(engine, settings, since=since, until=until, split_by=by,
                              period=period.value if period else None, report_language=lang.value if lang else None)
        engine.dispose()
        if report is None:
            raise TrendError("no classified complaints yet: run `complaints run SOURCE` first")
        write_report(report, output, chosen_format)
    except (ConfigError, TrendError) as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from exc
    result = report.trends
    console.print(f"{result.complaints} service-failure complaints, {result.window.start:%Y-%m-%d} – "
                  f"{result.window.end:%Y-%m-%d}, per {result.period}, split by {result.split_by}")
    for alert in result.alerts.itertuples():
        console.print(f"[red]alert:[/red] {escape(f'{alert.cause} ({where(alert.scope, alert.group)})')}: {alert.count} "
                      f"against {alert.expected:.1f} "
                      f"expected, share {alert.share:.1%} against {alert.baseline_share:.1%}, "
                      f"q = {min(alert.q_count, alert.q_share):.2g}", soft_wrap=True)
    if result.alerts.empty:
        console.print(f"no alerts this {result.period}")
    console.print(f"trend report: {output}")


def _format_for(report_format: ReportFormat | None, output: Path | None) -> str:
    from pipeline.reporting.trends import TrendError

    suffix = output.suffix.lower().lstrip(".") if output else ""
    if report_format is None:
        if output is None:
            return ReportFormat.html.value
        if suffix not in ReportFormat.__members__:
            raise TrendError(f"{output}: end the file name in .html, .xlsx or .md, or pass --format")
        return suffix
    if output is not None and suffix != report_format.value:
        raise TrendError(f"{output}: --format {report_format.value} writes a .{report_format.value} file; "
                         "make the suffix match")
    return report_format.value
