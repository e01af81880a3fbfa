"""Read complaint sources in chunks: CSV, TSV, JSONL, Excel (.xlsx, every sheet), Parquet, or a SQL table/query.

Text files have their encoding detected (UTF-8 with or without BOM, UTF-16, GB18030/GBK, Big5/cp950/HKSCS
with charset-normalizer) unless one is given; a cell that still holds undecodable bytes, a row that breaks
the file's structure or a line that is not JSON is not dropped: it comes back as a ``QuarantinedRow``
naming file, row and column. Memory stays flat: only one chunk of rows is held at a time.
"""
from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Iterator

import pandas as pd

from pipeline.config import ColumnMapping
from pipeline.ingest.quarantine import QuarantinedRow, QuarantineReason
from pipeline.ingest.validate import shown_value

TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
SUPPORTED = (".csv", ".tsv", ".txt", ".jsonl", ".ndjson", ".xlsx", ".xlsm", ".parquet")
_SAMPLE_BYTES = 1 << 20
# csv's default cell limit (128 KiB) dropped a long complaint (a pasted chat log) as a malformed row, text and
# all; such texts are stored whole and cut only for the model (max_text_chars)
csv.field_size_limit(64 << 20)


class SourceError(ValueError):
    """The source as a whole cannot be read (missing file, unknown format, no text column)."""


@dataclass
class RawChunk:
    """Up to ``chunk_size`` rows as read, before validation."""

    source: str
    records: list[dict]  # {"source_row": int, "cells": {column: value}}
    quarantined: list[QuarantinedRow] = field(default_factory=list)
    checkpoint: object = None  # how far the source is read once this chunk is stored (pipeline.ingest.intake)

    @property
    def rows_read(self) -> int:
        return len(self.records) + len(self.quarantined)


def is_database_url(source: str) -> bool:
    return "://" in source and not Path(source).exists()


# What Chinese exports come in besides UTF-8 / UTF-16: GBK and GB18030 (mainland), Big5 and its Windows
# (cp950) and Hong Kong (HKSCS) forms. Offering charset-normalizer only these keeps it from reading a short
# Big5 file as Shift-JIS.
CHINESE_ENCODINGS = ["utf_8", "gb18030", "big5", "cp950", "big5hkscs"]


def detect_encoding(path: Path) -> str:
    """The file's encoding, judged on its first MiB.

    Byte-order marks and UTF-16 come first; a file that is (almost) clean UTF-8 is UTF-8 — a handful of bad
    bytes keeps it UTF-8 (those cells are quarantined later) rather than flipping the whole file to a
    codec that decodes them into nonsense. Otherwise charset-normalizer chooses between GB18030 and the
    Big5 family; when none fits, the codec with the fewest undecodable bytes.
    """
    from charset_normalizer import from_bytes

    with path.open("rb") as handle:
        head = handle.read(_SAMPLE_BYTES)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if head and head.count(b"\x00") > len(head) // 4:  # UTF-16 without a BOM: every other byte is NUL
        return "utf-16-le" if head[1:2] == b"\x00" else "utf-16-be"
    if len(head) == _SAMPLE_BYTES:  # do not judge a character cut in half at the sample's end
        head = head[: head.rfind(b"\n") + 1] or head
    utf8_errors = head.decode("utf-8", errors="replace").count("\ufffd")
    if utf8_errors == 0 or utf8_errors <= len(head) / 2000:
        return "utf-8"
    best = from_bytes(head, cp_isolation=CHINESE_ENCODINGS).best()
    if best is not None:
        return best.encoding
    gb_errors = head.decode("gb18030", errors="replace").count("\ufffd")
    return "gb18030" if gb_errors < utf8_errors else "utf-8"


_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes kept by surrogateescape


def _has_undecodable(value) -> bool:
    return isinstance(value, str) and _UNDECODABLE.search(value) is not None


def _undecodable_column(source: str, row: int, cells: dict) -> QuarantinedRow | None:
    try:  # a row of text cells (every delimited file's) asked in one search, not one per cell
        if not _UNDECODABLE.search("".join(cells.values())):
            return None
    except TypeError:  # numbers, dates, None (JSON, Parquet, Excel): cell by cell
        pass
    for column, value in cells.items():
        if _has_undecodable(value):
            shown = value.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
            return QuarantinedRow(source, row, column, QuarantineReason.UNDECODABLE,
                                  f"cell holds bytes that are not valid in the file's encoding: {shown_value(shown)!r}",
                                  {k: str(v).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                                   for k, v in cells.items()})
    return None


def _chunks_from_rows(source: str, rows: Iterator[tuple[int, dict | QuarantinedRow]],
                      chunk_size: int) -> Iterator[RawChunk]:
    chunk = RawChunk(source, [])
    for row_number, item in rows:
        if isinstance(item, QuarantinedRow):
            chunk.quarantined.append(item)
        else:
            bad = _undecodable_column(source, row_number, item)
            if bad:
                chunk.quarantined.append(bad)
            else:
                chunk.records.append({"source_row": row_number, "cells": item})
        if chunk.rows_read >= chunk_size:
            yield chunk
            chunk = RawChunk(source, [])
    if chunk.rows_read:
        yield chunk


def _iter_delimited(path: Path, delimiter: str, encoding: str | None) -> Iterator[tuple[int, dict | QuarantinedRow]]:
    source = str(path)
    with path.open(encoding=encoding or detect_encoding(path), errors="surrogateescape", newline="") as handle:
        header_line = handle.readline()
        handle.seek(0)
        if delimiter not in header_line:  # a .csv from a locale whose Excel separates with ';' (or a tab, '|')
            delimiter = next((other for other in (";", "\t", "|") if other in header_line), delimiter)
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = [h.strip().lstrip("\ufeff") for h in next(reader)]  # a BOM under an explicit utf-8
        except StopIteration:
            return
        row_number = 0
        swallowed: list[list[str]] = []  # rows an unclosed quote took into one cell, read again
        while True:
            try:
                row = swallowed.pop(0) if swallowed else next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                row_number += 1
                yield row_number, QuarantinedRow(source, row_number, "*", QuarantineReason.MALFORMED_ROW,
                                                 f"line {reader.line_num}: {exc}")
                continue
            row_number += 1
            if not "".join(row).strip():
                row_number -= 1  # blank lines are not rows
                continue
            if len(row) < len(header) and "\n" in row[-1]:
                # an unclosed quote ran to the end of the file: only its own line is malformed, the lines it
                # swallowed are rows of their own
                row[-1], _, rest = row[-1].partition("\n")
                swallowed = list(csv.reader(io.StringIO(rest, newline=""), delimiter=delimiter)) + swallowed
            if len(row) != len(header):
                yield row_number, QuarantinedRow(
                    source, row_number, "*", QuarantineReason.MALFORMED_ROW,
                    f"line {reader.line_num} has {len(row)} fields, the header has {len(header)}",
                    {"raw": delimiter.join(row).encode("utf-8", "surrogateescape").decode("utf-8", "replace")})
                continue
            yield row_number, dict(zip(header, row))


def _iter_jsonl(path: Path, encoding: str | None) -> Iterator[tuple[int, dict | QuarantinedRow]]:
    source = str(path)
    with path.open(encoding=encoding or detect_encoding(path), errors="surrogateescape") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield line_number, QuarantinedRow(
                    source, line_number, "*", QuarantineReason.MALFORMED_ROW, f"not valid JSON: {exc.msg}",
                    {"raw": line.rstrip("\n").encode("utf-8", "surrogateescape").decode("utf-8", "replace")})
                continue
            if not isinstance(record, dict):
                yield line_number, QuarantinedRow(source, line_number, "*", QuarantineReason.MALFORMED_ROW,
                                                  "a line must hold one JSON object", {"raw": line.strip()})
                continue
            yield line_number, record


def _iter_worksheet(worksheet) -> Iterator[tuple[int, dict | QuarantinedRow]]:
    rows = worksheet.iter_rows(values_only=True)
    header = next(rows, None)
    if header is None:
        return
    header = [str(h).strip() if h is not None else f"column_{i + 1}" for i, h in enumerate(header)]
    for row_number, row in enumerate(rows, start=1):
        if row is None or all(v is None or str(v).strip() == "" for v in row):
            continue
        yield row_number, dict(zip(header, row))


def _xlsx_chunks(path: Path, sheet: str | None, chunk_size: int) -> Iterator[RawChunk]:
    """Every sheet of the workbook, each with its own header row (or only ``sheet``); each sheet's rows are
    named ``FILE#SHEET``, so a row number always says which sheet it is on."""
    import openpyxl

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        names = [worksheet.title for worksheet in workbook.worksheets]
        if sheet is not None and sheet not in names:
            raise SourceError(f"{path}: no sheet {sheet!r}; the workbook has {names} (choose one with --sheet, "
                              "or leave it out to read every sheet)")
        for name in [sheet] if sheet is not None else names:
            yield from _chunks_from_rows(f"{path}#{name}", _iter_worksheet(workbook[name]), chunk_size)
    finally:
        workbook.close()


def _iter_parquet(path: Path, chunk_size: int) -> Iterator[tuple[int, dict | QuarantinedRow]]:
    import pyarrow.parquet as pq

    row_number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_size):
        for record in batch.to_pylist():
            row_number += 1
            yield row_number, record


def iter_raw_chunks(source: str, *, chunk_size: int = 5000, table: str | None = None, query: str | None = None,
                    encoding: str | None = None, sheet: str | None = None, key_column: str = "id",
                    after=None) -> Iterator[RawChunk]:
    """Yield the source's rows in chunks of at most ``chunk_size`` (good and quarantined together).
    ``encoding``: of a text file, when it is not to be detected; ``sheet``: the one workbook sheet to read
    (default: every sheet). A database source is read in order of ``key_column``, from above ``after``
    (pipeline/ingest/sql_source.py); each of its chunks' ``checkpoint`` is the highest key it holds."""
    if is_database_url(source):
        from pipeline.ingest.sql_source import read_pages, sql_label

        label = sql_label(source, table)
        for page in read_pages(source, table, query, key_column=key_column, page_size=chunk_size, after=after):
            yield RawChunk(label, page.records, page.quarantined, checkpoint=page.reached)
        return
    path = Path(source)
    if not path.is_file():
        raise SourceError(f"{source}: no such file (give a path to {', '.join(SUPPORTED)} or a database URL)")
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        rows = _iter_delimited(path, TEXT_SUFFIXES[suffix], encoding)
    elif suffix in (".jsonl", ".ndjson"):
        rows = _iter_jsonl(path, encoding)
    elif suffix in (".xlsx", ".xlsm"):
        yield from _xlsx_chunks(path, sheet, chunk_size)
        return
    elif suffix == ".parquet":
        rows = _iter_parquet(path, chunk_size)
    else:
        raise SourceError(f"{source}: unsupported file type {suffix!r}; supported: {', '.join(SUPPORTED)}")
    yield from _chunks_from_rows(str(path), rows, chunk_size)


def _as_text(value) -> str:
    if type(value) is str:  # nearly every cell: asked first
        return value
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, (datetime, date)):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return str(value)


def stable_id(text: str, created_at: str, channel: str, customer: str = "") -> str:
    """An id for a row that has none: the same complaint re-exported gets the same id; the same short text
    from two customers gets two."""
    parts = (text.strip(), created_at.strip(), channel.strip()) + ((customer.strip(),) if customer.strip() else ())
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8"))
    return "auto-" + digest.hexdigest()[:16]


# Headers Chinese exports give the complaint text (simplified, then traditional). Used only while the
# settings keep the default text column name, the row has no such column and exactly one of these: two of
# them would be a guess.
TEXT_COLUMN_ALIASES = ("投诉内容", "投诉描述", "投诉详情", "问题描述", "反馈内容", "留言内容", "诉求内容", "工单内容",
                       "评价内容", "评论内容", "内容", "正文", "文本",
                       "投訴內容", "投訴描述", "投訴詳情", "問題描述", "反饋內容", "留言內容", "訴求內容", "工單內容",
                       "評價內容", "評論內容", "內容")
DEFAULT_TEXT_COLUMN = ColumnMapping.model_fields["text"].default


def text_column_in(cells: dict, columns: ColumnMapping) -> str | None:
    """The row's column that holds the complaint text, or None when it has none (or more than one alias)."""
    if columns.text in cells:
        return columns.text
    if columns.text != DEFAULT_TEXT_COLUMN:
        return None
    aliases = [alias for alias in TEXT_COLUMN_ALIASES if alias in cells]
    return aliases[0] if len(aliases) == 1 else None


RowKeys = tuple  # (complaint_id, text, created_at, channel, text column or None), as ``row_keys`` reads them


def row_keys(cells: dict, columns: ColumnMapping) -> RowKeys:
    """A row's id (given, else derived from its content), text, date and channel: all that is needed to
    tell whether it is stored already, without the rest of ``map_columns``."""
    text_column = text_column_in(cells, columns)
    text = _as_text(cells.get(text_column))
    created_at = _as_text(cells.get(columns.created_at))
    channel = _as_text(cells.get(columns.channel))
    given_id = _as_text(cells.get(columns.id)).strip()
    complaint_id = given_id or stable_id(text, created_at, channel, _as_text(cells.get(columns.customer)))
    return complaint_id, text, created_at, channel, text_column


def map_columns(chunk: RawChunk, columns: ColumnMapping, keys: list[RowKeys] | None = None) -> pd.DataFrame:
    """Raw records → a frame with the product's own column names; other columns go to ``metadata``.
    ``keys``: the records' ``row_keys`` when they are known already."""
    mapped = {columns.id, columns.text, columns.created_at, columns.channel}
    rows = []
    for record, (complaint_id, text, created_at, channel, text_column) in zip(
            chunk.records, keys or [row_keys(record["cells"], columns) for record in chunk.records]):
        cells = record["cells"]
        rows.append({
            "complaint_id": complaint_id,
            "text": text,
            "created_at_raw": created_at,
            "channel": channel.strip() or None,
            "metadata": {k: _as_text(v) for k, v in cells.items() if k not in mapped and k != text_column},
            "source": chunk.source,
            "source_row": record["source_row"],
            "has_text_column": text_column is not None,
        })
    return pd.DataFrame(rows, columns=["complaint_id", "text", "created_at_raw", "channel", "metadata",
                                       "source", "source_row", "has_text_column"])
