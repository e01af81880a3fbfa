"""The report as an Excel workbook: every table of the report in full, one sheet each (the HTML shows the
first alerts and examples; the workbook has them all). Strings stay strings (``spreadsheet.excel_safe``).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from pipeline.delivery.spreadsheet import excel_safe, excel_writer
from pipeline.reporting.recovery import Recovery
from pipeline.reporting.tables import alerts_table, change_table, examples_table, method_lines, shares_table, speed_table
from pipeline.reporting.trends import TrendError, period_label

if TYPE_CHECKING:
    from pipeline.reporting.report import TrendReport

EXCEL_MAX_ROWS = 1_048_576


def _with_period_labels(frame: pd.DataFrame, period: str) -> pd.DataFrame:
    return frame.assign(period=[period_label(p, period) for p in frame["period"]])


def _recovery_sheets(recovery: Recovery | None) -> dict[str, pd.DataFrame]:
    if recovery is None:
        return {}
    return {**{f"recovery by {key}": table for key, table in recovery.by.items()},
            "1-10-100": speed_table(recovery), "compensation": recovery.compensation,
            "corrections": recovery.corrections}


def write_workbook(report: TrendReport, path: Path) -> None:
    result = report.trends
    sheets = {
        "summary": change_table(result),
        "alerts": alerts_table(result, report.text),
        "counts": _with_period_labels(result.counts, result.period),
        "tests": _with_period_labels(result.tests, result.period),
        **{f"{column} x cause"[:31]: table.reset_index().rename(columns={"group": column})
           for column, table in result.heatmaps.items()},
        "adjusted shares": shares_table(report),
        **_recovery_sheets(report.recovery),
        "review backlog": _with_period_labels(result.backlog, result.period),
        "terms": _with_period_labels(result.terms, result.period),
        "examples": examples_table(report),
        "method": pd.DataFrame({"method": method_lines(report)}),
    }
    too_long = [name for name, frame in sheets.items() if len(frame) >= EXCEL_MAX_ROWS]
    if too_long:
        raise TrendError(f"{path}: the sheets {too_long} would pass Excel's {EXCEL_MAX_ROWS:,} rows; "
                         "choose a longer --period, a shorter window or a --by column with fewer values")
    with excel_writer(path) as writer:
        for name, frame in sheets.items():
            excel_safe(frame).to_excel(writer, sheet_name=name, index=False)
            sheet = writer.sheets[name]
            sheet.freeze_panes(1, 0)
            sheet.set_column(0, max(len(frame.columns) - 1, 0), 14)
            if name in ("examples", "method"):
                sheet.set_column(len(frame.columns) - 1, len(frame.columns) - 1, 100)
            if name == "alerts":
                sheet.set_column(2, 2, 80)
