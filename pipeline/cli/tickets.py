"""``complaints tickets …`` and ``complaints review …``: the routed tickets and the manual-review loop.

Errors are one line on stderr and exit code 1, like the rest of the command line.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Optional

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipeline.cli.options import ConfigOption, WorkDirOption, open_existing_store, settings_from_flags
from pipeline.clock import to_local
from pipeline.config import ConfigError
from pipeline.delivery.spreadsheet import TableFormatError, write_table

tickets_app = typer.Typer(no_args_is_help=True, help="Routed tickets: list, export, redeliver.")
review_app = typer.Typer(no_args_is_help=True,
                         help="Manual review: export items for people to label, import their labels.")
console = Console(soft_wrap=True)  # long paths stay on one line
err_console = Console(stderr=True, soft_wrap=True)

QueueOption = typer.Option(None, "--queue", help="only this queue")
StatusOption = typer.Option(None, "--status", help="only tickets with this status (open …)")
DeliveryOption = typer.Option(None, "--delivery", help="only tickets with a delivery in this state: pending | delivered")
SPREADSHEET_SUFFIXES = (".csv", ".xlsx")


@contextmanager
def _one_line_errors():
    from pipeline.reporting.audit import AuditError
    from pipeline.delivery.outbox import TicketFileError
    from pipeline.tickets.lifecycle import ConcurrentUpdateError
    from pipeline.tickets.updates import TicketUpdateError
    from pipeline.training.review import ReviewFileError

    try:
        yield
    except (ConfigError, ReviewFileError, TicketFileError, TableFormatError, TicketUpdateError,
            ConcurrentUpdateError, AuditError) as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from exc


@tickets_app.command("list")
def tickets_list(queue: Optional[str] = QueueOption, status: Optional[str] = StatusOption,
                 delivery: Optional[str] = DeliveryOption,
                 limit: int = typer.Option(50, "--limit", min=1, help="at most this many, most urgent first"),
                 config: Optional[Path] = ConfigOption, work_dir: Optional[Path] = WorkDirOption) -> None:
    """Show tickets, most urgent first."""
    from pipeline.delivery.outbox import ticket_overview

    with _one_line_errors():
        settings = settings_from_flags(config, work_dir=work_dir)
        frame = ticket_overview(open_existing_store(settings), queue=queue, status=status, delivery=delivery,
                                limit=limit)
    table = Table(title=f"{len(frame)} ticket(s), most urgent first")
    table.add_column("ticket", no_wrap=True)
    for column in ("status", "queue", "prio", f"due ({settings.timezone})", "cause", "escalated", "deliveries"):
        table.add_column(column)
    for row in frame.itertuples(index=False):
        reasons = json.loads(row.escalation_reasons or "[]")
        due = to_local(row.due_at, settings.timezone)
        table.add_row(row.ticket_id, row.status, row.queue, str(row.priority), f"{due:%m-%d %H:%M}", row.cause,
                      " ".join(reason.split(":")[0] for reason in reasons),
                      row.deliveries.replace(":delivered", ":ok"))
    console.print(table)


@tickets_app.command("export")
def tickets_export(output: Path = typer.Option(..., "--output", help=".csv, .xlsx or .jsonl"),
                   queue: Optional[str] = QueueOption, status: Optional[str] = StatusOption,
                   delivery: Optional[str] = DeliveryOption,
                   config: Optional[Path] = ConfigOption, work_dir: Optional[Path] = WorkDirOption) -> None:
    """Write tickets with their remedy steps, escalation reasons and delivery states to a file."""
    from pipeline.delivery.outbox import ticket_overview
    from pipeline.tickets.lifecycle import lifecycle_columns
    from pipeline.tickets.build import flat_ticket

    with _one_line_errors():
        settings = settings_from_flags(config, work_dir=work_dir)
        overview = ticket_overview(open_existing_store(settings), queue=queue, status=status, delivery=delivery)
        rows = [{**flat_ticket(json.loads(ticket.payload_json)), **lifecycle_columns(ticket, settings.timezone),
                 "deliveries": ticket.deliveries} for ticket in overview.itertuples(index=False)]
        write_table(pd.DataFrame(rows), output)
    console.print(f"{len(rows)} ticket(s) → {output}")


@tickets_app.command("redeliver")
def tickets_redeliver(queue: Optional[str] = QueueOption, config: Optional[Path] = ConfigOption,
                      work_dir: Optional[Path] = WorkDirOption) -> None:
    """Deliver every pending ticket delivery now (files and webhooks); exit 1 if some stay pending."""
    from pipeline.storage import runlock, store
    from pipeline.delivery.outbox import deliver_pending

    with _one_line_errors():
        settings = settings_from_flags(config, work_dir=work_dir)
        engine = open_existing_store(settings)
        with runlock.held(engine, f"redeliver-{store.utcnow():%Y%m%dT%H%M%S}") as lease:  # a nightly run delivers too
            report = deliver_pending(engine, settings, queue=queue, keeper=runlock.LeaseKeeper(engine, lease))
    delivered = ", ".join(f"{target} {count}" for target, count in sorted(report.delivered.items())) or "nothing"
    console.print(f"delivered: {delivered} (ticket files in {settings.tickets_dir})")
    if report.recovered:
        console.print(f"{report.recovered} file line(s) were already written by an interrupted run")
    still_pending = sum(report.pending.values())
    if still_pending:
        err_console.print(f"[red]error:[/red] {still_pending} delivery(ies) still pending: "
                          + escape("; ".join(report.errors or ["see `complaints tickets list --delivery pending`"])))
        raise typer.Exit(1)


@tickets_app.command("update")
def tickets_update(ticket_id: Optional[str] = typer.Argument(None, help="the ticket (TK-…); or give --file"),
                   status: Optional[str] = typer.Option(None, "--status",
                                                        help="acknowledged | resolved | closed | reopened"),
                   resolution: Optional[str] = typer.Option(
                       None, "--resolution", help="with resolved: apologised | fixed | compensated | explained | "
                                                  "not_our_fault"),
                   cause: Optional[str] = typer.Option(None, "--cause", help="the cause as the team found it "
                                                       "(becomes a review label for training)"),
                   compensation: Optional[str] = typer.Option(None, "--compensation",
                                                              help="total compensation given, e.g. 50"),
                   note: Optional[str] = typer.Option(None, "--note"),
                   at: Optional[str] = typer.Option(None, "--at", help="when it happened (default now; a time "
                                                    "without a zone is in the settings' timezone)"),
                   by: Optional[str] = typer.Option(None, "--by", help="who made the change (default: your user "
                                                    "name); a file's 'by' column wins"),
                   file: Optional[Path] = typer.Option(None, "--file", help="CSV/XLSX with columns ticket_id,status,"
                                                       "resolution,cause,compensation,note (optional by, at)"),
                   config: Optional[Path] = ConfigOption, work_dir: Optional[Path] = WorkDirOption) -> None:
    """Move tickets through open → acknowledged → resolved → closed (or reopened); illegal moves change nothing."""
    from pipeline.tickets import lifecycle, updates

    with _one_line_errors():
        settings = settings_from_flags(config, work_dir=work_dir)
        actor = by or updates.default_actor()
        if file is not None:
            if ticket_id or any(v is not None for v in (status, resolution, cause, compensation, note, at)):
                raise ConfigError("give either --file or one TICKET_ID with --status …, not both")
            changes, unreadable = updates.read_update_file(file, default_by=actor, timezone=settings.timezone)
            source = str(file)
        else:
            if not ticket_id or not status:
                raise ConfigError("give TICKET_ID --status S (or --file F); see `complaints tickets update --help`")
            cells = {"ticket_id": ticket_id, "status": status, "resolution": resolution, "cause": cause,
                     "compensation": compensation, "note": note, "at": at}
            update, problems = updates.parse_update(cells, where=f"ticket {ticket_id}", source="cli",
                                                    default_by=actor, timezone=settings.timezone)
            if problems:
                raise updates.TicketUpdateError("", [
                    updates.Problem(p.where, "--" + p.column.replace("_id", "-id"), p.message, p.kind)
                    for p in problems])
            changes, unreadable, source = [update], [], ""
        result = lifecycle.apply_updates(open_existing_store(settings), changes, source=source,
                                         unreadable=unreadable)
    if file is None and result.applied:
        state = result.applied[0]
        console.print(f"{state.ticket_id}: {escape(state.status)}"
                      + (f" ({escape(state.resolution)})" if state.resolution else "")
                      + (f", cause corrected to {escape(state.corrected_cause)}" if cause else "") + f" by {escape(actor)}")
    elif file is None:
        console.print(f"{ticket_id}: unchanged (the ticket already has this update)")
    else:
        console.print(f"{len(changes) - result.unchanged} update(s) applied to {len(result.applied)} ticket(s); "
                      f"{result.unchanged} unchanged")


@tickets_app.command("sla")
def tickets_sla(queue: Optional[str] = QueueOption,
                limit: int = typer.Option(30, "--limit", min=1, help="rows shown per list"),
                output: Optional[Path] = typer.Option(None, "--output", help="write both lists to .csv or .xlsx"),
                config: Optional[Path] = ConfigOption, work_dir: Optional[Path] = WorkDirOption) -> None:
    """Tickets past a deadline and tickets near one (respond: customer not yet answered; resolve: not fixed)."""
    from pipeline.clock import to_local
    from pipeline.routing.router import Router
    from pipeline.storage import store
    from pipeline.tickets.sla import breach_lists, open_clocks

    with _one_line_errors():
        settings = settings_from_flags(config, work_dir=work_dir)
        clock = Router.from_settings(settings).sla_clock
        clocks = open_clocks(open_existing_store(settings), clock, store.utcnow(), queue=queue)
        breached, near = breach_lists(clocks, clock.rules.near_breach_share)
        if output is not None:
            write_table(pd.concat([breached.assign(list="breached"), near.assign(list="near_breach")],
                                  ignore_index=True), output, SPREADSHEET_SUFFIXES)
    for title, frame in ((f"{len(breached)} past their deadline", breached),
                         (f"{len(near)} near their deadline ({clock.rules.near_breach_share:.0%} of the time used)",
                          near)):
        table = Table(title=title)
        for column in ("ticket", "clock", "queue", "prio", "cause", "status", f"due ({settings.timezone})",
                       "hours left"):
            table.add_column(column)
        for row in frame.head(limit).itertuples(index=False):
            table.add_row(row.ticket_id, row.clock, row.queue, str(row.priority), row.cause, row.status,
                          f"{to_local(row.due_at, settings.timezone):%m-%d %H:%M}", f"{row.hours_left:+.1f}")
        console.print(table)
    if output is not None:
        console.print(f"{len(breached) + len(near)} row(s) → {output}")


@tickets_app.command("serve-updates")
def tickets_serve_updates(host: str = typer.Option("127.0.0.1", "--host", help="interface to listen on"),
                          port: int = typer.Option(8765, "--port", min=0, max=65535, help="0: any free port"),
                          config: Optional[Path] = ConfigOption, work_dir: Optional[Path] = WorkDirOption) -> None:
    """Serve POST /tickets/{id}/updates for the queues' tools (bearer token from the environment)."""
    from pipeline.tickets.api import TicketUpdateServer, api_token

    with _one_line_errors():
        settings = settings_from_flags(config, work_dir=work_dir)
        token = api_token(settings)
        server = TicketUpdateServer(open_existing_store(settings), settings, token, host, port)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(f"[yellow]note:[/yellow] listening on {escape(host)} over plain HTTP: the token crosses "
                          "the network unencrypted; put a TLS proxy in front")
    console.print(f"listening on {server.url} — POST /tickets/{{ticket_id}}/updates, GET /tickets/{{ticket_id}}; "
                  "Ctrl-C stops", highlight=False)
    console.file.flush()  # a supervisor (or a test) reading our output learns the port now
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@review_app.command("export")
def review_export(output: Path = typer.Option(..., "--output", help=".csv or .xlsx for people to fill in"),
                  include_reviewed: bool = typer.Option(False, "--include-reviewed",
                                                        help="also items that already have a review"),
                  limit: Optional[int] = typer.Option(None, "--limit", min=1, help="at most this many, in teaching order"),
                  model: Optional[Path] = typer.Option(None, "--model", help="model whose uncertainty orders the items "
                                                                              "(default: the settings' model)"),
                  audit: Optional[int] = typer.Option(None, "--audit", min=1, metavar="N",
                                                      help="instead: N complaints drawn at random (blind) to "
                                                           "measure the classifier's errors; 300–400 recommended"),
                  seed: Optional[int] = typer.Option(None, "--seed", help="with --audit: repeatable draw"),
                  since: Optional[datetime] = typer.Option(None, "--since", help="with --audit: draw from "
                                                           "complaints since then (default: all)"),
                  config: Optional[Path] = ConfigOption, work_dir: Optional[Path] = WorkDirOption) -> None:
    """Items flagged for review or escalated, with empty cause / secondary_causes / reviewer / note columns:
    escalated first, then the items whose labels would teach the model most (see `review select`). With
    --audit: a random sample instead, to measure how often the model is wrong."""
    from pipeline.reporting.audit import draw_audit
    from pipeline.model.classify import load_model
    from pipeline.training.review import review_candidates, teaching_order

    with _one_line_errors():
        settings = settings_from_flags(config, work_dir=work_dir)
        engine = open_existing_store(settings)
        if audit is not None:
            audit_id, frame = draw_audit(engine, audit, since=since, seed=seed)
            write_table(frame, output, SPREADSHEET_SUFFIXES)
            console.print(f"{len(frame)} complaint(s) drawn at random → {output} ({audit_id}); label every row's "
                          "'cause' without guessing what the model said (it is left out on purpose), then "
                          "`complaints review import`")
            return
        frame = review_candidates(engine, include_reviewed=include_reviewed)
        frame = teaching_order(frame, load_model(settings, model), chosen=limit or 500)
        if limit is not None:
            frame = frame.head(limit)
        write_table(frame, output, SPREADSHEET_SUFFIXES)
    console.print(f"{len(frame)} item(s) to review → {output}; fill in 'cause' (and optionally "
                  "secondary_causes, reviewer, note), then `complaints review import`")


@review_app.command("select")
def review_select(input: Path = typer.Option(..., "--input", help="unlabelled complaints: id,text (any supported format)"),
                  limit: int = typer.Option(200, "--limit", min=1, help="how many to label"),
                  output: Path = typer.Option(..., "--output", help=".csv or .xlsx with an empty 'cause' column"),
                  model: Optional[Path] = typer.Option(None, "--model", help="the model to teach (default: the settings' model)"),
                  exclude: Optional[list[Path]] = typer.Option(None, "--exclude",
                                                               help="a labelled file whose ids are not chosen again "
                                                                    "(repeat for several)"),
                  seed: int = typer.Option(0, "--seed"),
                  config: Optional[Path] = ConfigOption) -> None:
    """Choose the complaints whose labels would teach the model most: the ones it is least sure of, spread over
    the kinds of text in the file. Fill in 'cause' (English or Chinese names), then `complaints train --base
    default --data FILE`."""
    from pipeline.training.review import select_file

    with _one_line_errors():
        settings = settings_from_flags(config)
        frame, pool_size = select_file(settings, input, limit, model=model, exclude=exclude, seed=seed)
        write_table(frame, output, SPREADSHEET_SUFFIXES)
    console.print(f"{len(frame)} of {pool_size} complaints chosen → {output}; fill in 'cause' "
                  "(personnel/人员, process/流程, technology/技术, management/管理, customer/顾客, random/随机因素, none/非投诉), "
                  f"then `complaints train --base default --data {output}`")


@review_app.command("import")
def review_import(file: Path = typer.Argument(..., help="a filled-in review export (.csv or .xlsx)"),
                  reviewer: Optional[str] = typer.Option(None, "--reviewer",
                                                         help="for rows whose 'reviewer' cell is empty"),
                  config: Optional[Path] = ConfigOption, work_dir: Optional[Path] = WorkDirOption) -> None:
    """Store corrected labels with reviewer and time (predictions are left as they were)."""
    from pipeline.training.review import import_reviews

    with _one_line_errors():
        engine = open_existing_store(settings_from_flags(config, work_dir=work_dir))
        result = import_reviews(engine, file, reviewer=reviewer)
    console.print(f"imported {result.imported} review(s); {result.unchanged} unchanged, "
                  f"{result.not_labelled} row(s) without a cause skipped")


@review_app.command("export-labelled")
def review_export_labelled(output: Path = typer.Option(..., "--output", help=".csv for `complaints train --data`"),
                           config: Optional[Path] = ConfigOption,
                           work_dir: Optional[Path] = WorkDirOption) -> None:
    """Reviewed complaints as id,text,cause,secondary_causes rows (latest review wins) for training."""
    from pipeline.training.review import labelled_rows

    with _one_line_errors():
        frame, reserved = labelled_rows(open_existing_store(settings_from_flags(config, work_dir=work_dir)))
        write_table(frame, output, (".csv",))
    console.print(f"{len(frame)} labelled row(s) → {output}"
                  + (f"; {reserved} left out (evaluation reserve)" if reserved else ""))
