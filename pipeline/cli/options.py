"""What every command shares: the consoles, the common options, reading the settings with the command's
flags on top, and opening the store only where one exists."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from pipeline.cli.errors import remember_work_dir
from pipeline.config import ConfigError, Settings, load_settings

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # an error stays one line, whatever the terminal width

ConfigOption = typer.Option(None, "--config", help="settings TOML file (defaults need none)")
WorkDirOption = typer.Option(None, "--work-dir", help="where the database and outputs are (default: settings "
                                                      "work_dir, COMPLAINTS_WORK_DIR)")
EncodingOption = typer.Option(None, "--encoding", help="of a CSV/TSV/TXT/JSONL source, e.g. big5 (default: detected)")
SheetOption = typer.Option(None, "--sheet", help="read only this sheet of an Excel source (default: every sheet)")
ColumnOption = typer.Option(None, "--column", metavar="FIELD=NAME",
                            help="the source's column for id, text, created_at, channel or customer, e.g. "
                                 "--column text=投诉内容 (repeatable; overrides [columns] of the settings)")


class UserError(Exception):
    """Shown as one line, exit code 1."""


class NoDatabaseError(ConfigError):
    """A command that only reads the store was pointed at a work directory without a database."""


def settings_from_flags(config: Optional[Path], column_flags: Optional[list[str]] = None, **flags) -> Settings:
    """The settings (file < environment < these flags; a flag left out is None) for this command."""
    if column_flags:
        flags["columns"] = _column_mapping(column_flags)
    return remember_work_dir(load_settings(config, **flags))


def _column_mapping(column_flags: list[str]) -> dict[str, str]:
    """``--column text=投诉内容`` flags as the part of [columns] they set."""
    from pipeline.config import ColumnMapping

    fields = list(ColumnMapping.model_fields)
    mapping = {}
    for pair in column_flags:
        field, _, column = pair.partition("=")
        if field.strip() not in fields or not column.strip():
            raise UserError(f"--column {pair}: give FIELD=NAME with FIELD one of {', '.join(fields)}")
        mapping[field.strip()] = column.strip()
    return mapping


def open_existing_store(settings: Settings):
    """The store of a command that reads what runs wrote. A SQLite database missing from the work directory
    is refused, instead of created empty (which reported 0 of everything from the wrong folder)."""
    from sqlalchemy.engine import make_url

    from pipeline.storage import store

    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        if not Path(url.database).expanduser().exists():
            raise NoDatabaseError(
                f"no database at {url.database}: run `complaints run SOURCE` with this work directory first, or "
                "point --work-dir (or COMPLAINTS_WORK_DIR, or work_dir in the settings) at the folder of your runs")
    return store.connect(settings.resolved_database_url)
