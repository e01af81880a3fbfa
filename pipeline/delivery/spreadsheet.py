"""Every table the product writes for people (CSV, XLSX, JSONL): no cell from the data becomes a formula.

A complaint can start with ``=HYPERLINK(...)``; Excel runs a cell that starts with = + - @ (or tab, CR) as
a formula when it opens the file (CSV injection, OWASP). So:

- XLSX: strings are written as string cells, never as formulas, links or numbers; the text reads as given.
  A cell holds at most 32,767 characters in Excel; longer texts are cut there and say so.
- CSV: a text cell that starts with one of those characters gets a leading apostrophe, OWASP's advice;
  ``unguard_cell`` takes it off again when the product reads a file it wrote (review import, training).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_GUARD = "'"
EXCEL_OPTIONS = {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False}
EXCEL_MAX_CELL_CHARS = 32_767
_CUT_NOTE = "…[cut: {total} characters]"
TABLE_SUFFIXES = (".csv", ".xlsx", ".jsonl")


class TableFormatError(ValueError):
    """The output file's suffix is not one this table can be written as."""


def guard_csv_cell(value):
    """A CSV cell Excel cannot run: text that would start a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return CSV_GUARD + value
    return value


def unguard_cell(value):
    """The cell as it was before ``guard_csv_cell``."""
    if isinstance(value, str) and value.startswith(CSV_GUARD) and value[1:2] and value[1] in FORMULA_STARTS:
        return value[1:]
    return value


def read_table(path: Path) -> pd.DataFrame:
    """A table people filled in (XLSX, TSV, else CSV with its encoding detected) as strings: empty cells are
    '' and the apostrophe our CSV exports put before = + - @ is taken off. The caller checks that the file
    exists and that its suffix is one it takes."""
    from pipeline.ingest.sources import detect_encoding

    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        frame = pd.read_excel(path, dtype=str)
    else:
        frame = pd.read_csv(path, dtype=str, encoding=detect_encoding(path), keep_default_na=False,
                            sep="\t" if suffix == ".tsv" else ",")
    return frame.fillna("").astype(str).map(unguard_cell)


def excel_cell(value):
    """A value Excel can hold in one cell (its 32,767-character limit, cut visibly)."""
    if isinstance(value, str) and len(value) > EXCEL_MAX_CELL_CHARS:
        note = _CUT_NOTE.format(total=len(value))
        return value[: EXCEL_MAX_CELL_CHARS - len(note)] + note
    return value


def _map_text_cells(frame: pd.DataFrame, convert) -> pd.DataFrame:
    text_columns = [c for c in frame.columns
                    if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c].dtype)]
    return frame.assign(**{c: frame[c].map(convert) for c in text_columns}) if text_columns else frame


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    return _map_text_cells(frame, guard_csv_cell)


def excel_safe(frame: pd.DataFrame) -> pd.DataFrame:
    return _map_text_cells(frame, excel_cell)


def excel_writer(path: Path) -> pd.ExcelWriter:
    """An ExcelWriter that writes strings as strings (never formulas, links or numbers)."""
    return pd.ExcelWriter(path, engine="xlsxwriter", engine_kwargs={"options": EXCEL_OPTIONS})


def write_table(frame: pd.DataFrame, path: Path, suffixes: tuple[str, ...] = TABLE_SUFFIXES) -> None:
    """One table as CSV (UTF-8 with BOM, so Excel shows the Chinese text), XLSX or JSONL, by suffix."""
    suffix = path.suffix.lower()
    if suffix not in suffixes:
        raise TableFormatError(f"{path}: output must end in {' or '.join(suffixes)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        csv_safe(frame).to_csv(path, index=False, encoding="utf-8-sig")
    elif suffix == ".xlsx":
        with excel_writer(path) as writer:
            excel_safe(frame).to_excel(writer, index=False)
    else:
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
