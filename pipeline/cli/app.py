"""The ``complaints`` command line: the commands of the modules beside this one, and ``main``, which turns
every known error into one clear line and a non-zero exit."""
from __future__ import annotations

import sys

import typer
from rich.markup import escape

from pipeline.cli.classify import classify, classify_text
from pipeline.cli.customers import customer_ref
from pipeline.cli.data import data_app
from pipeline.cli.errors import describe_failure, invocation, write_error_log
from pipeline.cli.options import UserError, err_console
from pipeline.cli.run import run, serve
from pipeline.cli.tickets import review_app, tickets_app
from pipeline.cli.train import evaluate, train
from pipeline.cli.trends import trends
from pipeline.config import ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Classify Chinese complaints by service-failure cause and route them to a remedy.")


@app.callback()
def global_options(debug: bool = typer.Option(False, "--debug", help="on an unexpected error, print its traceback "
                                              "(and Prefect's) instead of one line")) -> None:
    invocation.debug = debug


app.command()(run)
app.command()(classify)
app.command("classify-text")(classify_text)
app.command("customer-ref")(customer_ref)
app.command()(serve)
app.command()(train)
app.command()(evaluate)
app.add_typer(data_app, name="data")
app.add_typer(tickets_app, name="tickets")
app.add_typer(review_app, name="review")
app.command("trends")(trends)

RUN_LOCKED_EXIT_CODE = 75  # EX_TEMPFAIL: another run holds the database; a scheduler may retry later


def main() -> None:
    try:
        exit_code = app(standalone_mode=False)  # a command's typer.Exit(code) comes back as its return value
        if isinstance(exit_code, int) and exit_code:
            sys.exit(exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        # The error classes are imported only now: their modules (training, storage) slow every start-up
        import click

        from pipeline.delivery.spreadsheet import TableFormatError
        from pipeline.ingest.sources import SourceError
        from pipeline.ingest.validate import MostlyQuarantinedError
        from pipeline.model.registry import ModelIntegrityError
        from pipeline.storage.runlock import LeaseLostError, RunLockedError
        from pipeline.training.evaluation import TrainingDataError

        if isinstance(exc, (UserError, ConfigError, SourceError, ModelIntegrityError, TrainingDataError,
                            TableFormatError, MostlyQuarantinedError)):
            err_console.print(f"[red]error:[/red] {escape(str(exc))}")
            sys.exit(1)
        if isinstance(exc, (RunLockedError, LeaseLostError)):
            err_console.print(f"[red]error:[/red] {escape(str(exc))}")
            sys.exit(RUN_LOCKED_EXIT_CODE)
        if isinstance(exc, click.ClickException):  # usage errors
            exc.show()
            sys.exit(exc.exit_code)
        if invocation.debug:
            raise
        log = write_error_log(exc)
        details = f"the traceback is in {log}" if log else "run it again with --debug for the traceback"
        err_console.print(f"[red]error:[/red] {escape(describe_failure(exc))} ({escape(details)})")
        sys.exit(1)
