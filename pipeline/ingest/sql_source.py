"""Read a database table or query in key order, page by page (keyset pagination).

``WHERE key > :last ORDER BY key LIMIT n``: every page is its own short statement, so no cursor stays open
for the whole run, and a reader told where the previous run stopped (``after``) starts right there instead
of reading the table from the top. Each chunk says the highest key it holds (``RawChunk.checkpoint``), which
``pipeline.ingest.intake`` keeps as the source's watermark once the run has completed.

The key need not be unique: a page never ends in the middle of rows sharing one key value (the rest of
that value's rows join the page). Rows whose key is empty (NULL) cannot be placed in key order: they are
read on every run and quarantined with that reason, until the source gives them a key.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import sqlalchemy as sa

from pipeline.config import hide_password
from pipeline.ingest.quarantine import QuarantinedRow, QuarantineReason
from pipeline.ingest.sources import SourceError


@dataclass(frozen=True)
class KeyReached:
    """How far a chunk of a database source goes: the highest key it holds."""

    key_column: str
    last_key: Any


@dataclass(frozen=True)
class SqlPage:
    records: list[dict]  # {"source_row": int, "cells": {column: value}}, as RawChunk holds them
    quarantined: list[QuarantinedRow]
    reached: KeyReached | None


def sql_label(url: str, table: str | None) -> str:
    """How rows of a database source are named in messages and the quarantine (no password)."""
    return f"{hide_password(url).split('://')[0]}:{table or 'query'}"


def read_pages(url: str, table: str | None, query: str | None, *, key_column: str, page_size: int,
               after: Any = None) -> Iterator[SqlPage]:
    """The source's rows with a key above ``after`` (all rows when None), in key order, ``page_size`` at a
    time; first a page of the rows whose key is empty, quarantined."""
    if bool(table) == bool(query):
        raise SourceError(f"{hide_password(url)}: give exactly one of --table or --query for a database source")
    label = sql_label(url, table)
    engine = sa.create_engine(url, hide_parameters=True)
    try:
        source = (_known_table(engine, url, table) if table
                  else sa.text(query.strip().rstrip(";")).columns().subquery("source_rows"))
        rows = sa.select(sa.text("*")).select_from(source)
        key = sa.column(key_column)
        with engine.connect() as connection:
            columns = list(connection.execute(rows.limit(0)).keys())
            if key_column not in columns:
                raise SourceError(
                    f"{hide_password(url)}: {'table ' + table if table else 'the query'} has no column {key_column!r} "
                    f"to read in key order (it has {columns}); name one with the setting source_key_column")
            row_number = 0
            unkeyed = [dict(row._mapping) for row in connection.execute(rows.where(key.is_(None)))]
            if unkeyed:
                yield SqlPage([], [_unkeyed_row(label, key_column, row_number + i, cells)
                                   for i, cells in enumerate(unkeyed, start=1)], None)
                row_number += len(unkeyed)
            while True:
                page_rows = rows.where(key.is_not(None)).order_by(key).limit(page_size)
                if after is not None:
                    page_rows = page_rows.where(key > sa.bindparam("after_key", after))  # an ASCII name for any driver
                page = [dict(row._mapping) for row in connection.execute(page_rows)]
                if not page:
                    return
                if len(page) == page_size:  # the boundary key's other rows come with this page, not lost after it
                    boundary = page[-1][key_column]
                    page = [cells for cells in page if cells[key_column] != boundary]
                    ties = rows.where(key == sa.bindparam("boundary_key", boundary))
                    page += [dict(row._mapping) for row in connection.execute(ties)]
                records = [{"source_row": row_number + i, "cells": cells} for i, cells in enumerate(page, start=1)]
                row_number += len(page)
                after = page[-1][key_column]
                yield SqlPage(records, [], KeyReached(key_column, after))
    except sa.exc.SQLAlchemyError as exc:
        what = f"table {table}" if table else "query"
        raise SourceError(hide_password(f"{url}: cannot read {what}: {getattr(exc, 'orig', None) or exc}")) from exc
    finally:
        engine.dispose()


def _unkeyed_row(label: str, key_column: str, row_number: int, cells: dict) -> QuarantinedRow:
    return QuarantinedRow(label, row_number, key_column, QuarantineReason.NO_KEY,
                          f"the key column {key_column!r} is empty, so the row has no place in key order",
                          {k: "" if v is None else str(v) for k, v in cells.items()})


def _known_table(engine, url: str, name: str) -> sa.Table:
    """The source table as a SQLAlchemy object (quoted by the dialect), if the database has it: the name
    is never pasted into SQL text. ``schema.table`` names a table in another schema."""
    schema, _, table = name.rpartition(".") if name.count(".") == 1 else ("", "", name)
    inspector = sa.inspect(engine)
    known = inspector.get_table_names(schema=schema or None) + inspector.get_view_names(schema=schema or None)
    if table not in known:
        raise SourceError(f"{hide_password(url)}: no table {name!r}; the database has {sorted(known) or 'none'}")
    return sa.Table(table, sa.MetaData(), schema=schema or None, autoload_with=engine)
