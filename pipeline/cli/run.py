"""``complaints run`` and ``complaints serve``: the nightly flow once, or on its cron schedule."""
from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from pipeline.cli.errors import console_logs_without_tracebacks, invocation
from pipeline.cli.options import (ColumnOption, ConfigOption, EncodingOption, SheetOption, WorkDirOption, console,
                                  err_console, settings_from_flags)
from pipeline.config import Settings, has_password


def run(source: str = typer.Argument(..., help="file (csv, tsv, jsonl, xlsx, parquet), folder or glob of such files "
                                                "(each taken once), or SQLAlchemy URL (read after its watermark)"),
        table: Optional[str] = typer.Option(None, help="table to read from a database source"),
        query: Optional[str] = typer.Option(None, help="SQL query to read from a database source"),
        since: Optional[datetime] = typer.Option(None, help="skip complaints created before this time"),
        encoding: Optional[str] = EncodingOption, sheet: Optional[str] = SheetOption,
        column: Optional[list[str]] = ColumnOption,
        config: Optional[Path] = ConfigOption,
        work_dir: Optional[Path] = typer.Option(None, help="where the database and outputs go")) -> None:
    """Run the nightly flow once over SOURCE."""
    from pipeline.nightly.reaper import watch_over_this_process

    watch_over_this_process()  # the temporary Prefect server and the workers end with this process, even on kill -9
    quiet_prefect_env()
    settings = settings_from_flags(config, column, work_dir=work_dir, encoding=encoding, sheet=sheet)
    check_rule_files(settings)
    from pydantic import SecretStr

    from flows.nightly import nightly_flow
    from pipeline.nightly.progress import watching

    if not invocation.debug:
        console_logs_without_tracebacks()

    flow_source = SecretStr(source) if has_password(source) else source  # Prefect records it as **********
    for attempt in (1, 2):
        try:
            with run_progress_line() as show_progress, watching(show_progress):
                summary = nightly_flow(source=flow_source, since=since, table=table, query=query, settings=settings)
            break
        except RuntimeError as exc:
            # A fresh PREFECT_HOME sometimes fails its first server start (SQLite locked during
            # migrations); runs are idempotent, so one more try is safe.
            if "ephemeral Prefect API server" not in str(exc) or attempt == 2:
                raise
            err_console.print("the temporary Prefect server did not start in time; trying once more")
    print_run_summary(summary)


@contextmanager
def run_progress_line():
    """A live line for `run`: rows done of the source's, rows/s and the time left, fed by the batch path."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
                  console=err_console, transient=True) as progress:
        task_id = progress.add_task("starting the nightly flow (a local Prefect server starts first) …", total=None,
                                    status="")
        yield lambda run: progress.update(task_id, description="classifying and storing", completed=run.done,
                                          total=run.total, status=run.describe())


def serve(source: str = typer.Argument(..., help="what the nightly run reads"),
          table: Optional[str] = typer.Option(None), query: Optional[str] = typer.Option(None),
          config: Optional[Path] = ConfigOption, work_dir: Optional[Path] = WorkDirOption) -> None:
    """Register the nightly cron schedule with Prefect and serve it (needs PREFECT_API_URL for the UI)."""
    from pipeline.nightly.reaper import watch_over_this_process

    watch_over_this_process()
    quiet_prefect_env()
    settings = settings_from_flags(config, work_dir=work_dir)
    from flows.nightly import serve_nightly

    console.print(f"serving 'nightly-complaints/nightly' on cron '{settings.nightly_cron}' ({settings.timezone}); "
                  "Ctrl-C stops it")
    if work_dir is not None:  # each scheduled run reads its settings afresh, in a child process, from the environment
        os.environ["COMPLAINTS_WORK_DIR"] = str(work_dir.resolve())
    serve_nightly(settings, source, table, query, config_path=str(config.resolve()) if config else None)


def quiet_prefect_env() -> None:
    """No telemetry, no outbound lookups, a patient start for the temporary local server."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if os.environ.get("PREFECT_HOME"):  # Prefect creates only the last folder of its home
        Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)


def check_rule_files(settings: Settings) -> None:
    """Routing, remedy and escalation files are validated before Prefect starts: a bad key fails in a second."""
    from pipeline.routing.escalation import Escalator
    from pipeline.routing.router import Router

    Router.from_settings(settings)
    Escalator.from_settings(settings)


def print_run_summary(summary: dict) -> None:
    counts = summary["counts"]
    table = Table(title=f"run {summary['run_id']} — {summary['status']}", show_header=False)
    for key in ("rows_read", "classified", "quarantined", "skipped_seen", "skipped_before_since"):
        table.add_row(key.replace("_", " "), str(counts[key]))
    table.add_row("needs review", str(summary["needs_review"]))
    table.add_row("unfamiliar", str(summary.get("unfamiliar", 0)))
    table.add_row("model", summary["model_version"])
    console.print(table)
    if summary.get("familiarity_note"):
        err_console.print(f"[yellow]note:[/yellow] {escape(summary['familiarity_note'])}")
    if summary["causes"]:
        console.print("causes: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["causes"].items())))
    if summary["queues"]:
        console.print("tickets by queue: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["queues"].items())))
    if summary.get("sla"):
        sla = summary["sla"]
        console.print(f"deadlines: {sla['breached_since_last_run']} breached since the last run "
                      f"({sla['escalated']} escalated), "
                      f"{sla['breached_open']} unresolved past due, {sla['respond_breached']} not answered in time, "
                      f"{sla['near_breach']} near breach — `complaints tickets sla` lists them")
    for label, key in (("database", "database"), ("quarantine file", "quarantine_file"),
                       ("ticket files", "ticket_dir"), ("trend report", "report")):
        if summary.get(key):
            console.print(f"{label}: {escape(str(summary[key]))}")
    if summary.get("deliveries"):
        deliveries = summary["deliveries"]
        console.print("delivered: " + (", ".join(f"{k} {v}" for k, v in sorted(deliveries["delivered"].items()))
                                       or "nothing new")
                      + "; pending: " + (", ".join(f"{k} {v}" for k, v in sorted(deliveries["pending"].items()))
                                         or "none"))
        for error in deliveries["errors"]:
            err_console.print(f"[yellow]delivery:[/yellow] {escape(error)}")
