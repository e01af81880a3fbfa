"""How the command line reports an unexpected failure: one line saying what failed and what to do; the
traceback goes to a log file in the work directory (masked like everything the product writes), and on
the console only with ``--debug``."""
from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline.config import hide_password
from pipeline.text.normalise import mask_pii

MAX_MESSAGE_CHARS = 300


@dataclass
class Invocation:
    debug: bool = False
    work_dir: Path | None = None  # of the settings the command loaded: where the error log goes


invocation = Invocation()


def remember_work_dir(settings):
    """Note the command's work directory for the error log; returns ``settings``."""
    invocation.work_dir = settings.work_dir
    return settings


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def describe_failure(exc: BaseException) -> str:
    """What failed and what to do, in one line (SQLAlchemy's SQL and parameters never included)."""
    import sqlalchemy as sa

    if isinstance(exc, sa.exc.DBAPIError):
        what = (f"the database refused or could not be reached: {_first_line(exc.orig or exc)} — check that it "
                "is running and reachable, and database_url in the settings (or COMPLAINTS_DATABASE_URL)")
    elif isinstance(exc, sa.exc.SQLAlchemyError):
        what = f"database error: {_first_line(exc)} — check database_url in the settings (or COMPLAINTS_DATABASE_URL)"
    elif isinstance(exc, ModuleNotFoundError):
        what = (f"the Python module {exc.name!r} is not installed (a database driver?) — install it into this "
                f"environment, e.g. .venv/bin/pip install {exc.name}")
    elif isinstance(exc, OSError) and exc.filename:
        what = f"{exc.filename}: {exc.strerror} — check the path and its permissions"
    else:
        what = f"unexpected {type(exc).__name__}: {_first_line(exc)}"
    what = hide_password(mask_pii(what))
    return what if len(what) <= MAX_MESSAGE_CHARS else what[: MAX_MESSAGE_CHARS - 1] + "…"


def write_error_log(exc: BaseException) -> Path | None:
    """The full traceback, PII-masked, in WORK_DIR/logs/; None when no work directory is known or writable."""
    if invocation.work_dir is None:
        return None
    path = invocation.work_dir / "logs" / f"error-{datetime.now():%Y%m%dT%H%M%S-%f}.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(hide_password(mask_pii("".join(traceback.format_exception(exc)))), encoding="utf-8")
    except OSError:
        return None
    return path


class _WithoutTraceback(logging.Formatter):
    """Formats a record as the wrapped formatter does, leaving out its traceback."""

    def __init__(self, inner: logging.Formatter | None):
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        copy = logging.makeLogRecord(record.__dict__)
        copy.exc_info = copy.exc_text = copy.stack_info = None
        return self.inner.format(copy)


def console_logs_without_tracebacks() -> None:
    """Prefect prints every failed task's and flow's traceback on the console (hundreds of lines when the
    database is down, once per retry). The console keeps the one-line messages; the tracebacks stay in
    Prefect's own run logs (UI) and, for the command's failure, in the error log."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not isinstance(handler.formatter, _WithoutTraceback):
            handler.setFormatter(_WithoutTraceback(handler.formatter))
