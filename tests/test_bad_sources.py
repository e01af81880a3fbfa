"""A source the settings do not fit (another text column name, the wrong column mapped) fails loudly and
names the mapping to fix; common Chinese text headers are understood without one."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline.config import PROJECT_ROOT, ColumnMapping, load_settings
from pipeline.ingest.sources import RawChunk, map_columns
from pipeline.ingest.quarantine import QuarantinedRow, QuarantineReason
from pipeline.ingest.validate import MostlyQuarantinedError, QuarantineTally, validate_rows

TEXTS = ["前台服务员态度很差，爱答不理", "房间空调坏了一晚上没人修", "快递送错了地址，客服也不处理",
         "排队等了两个小时，流程太混乱", "乱收费，经理也不管"]


def complaints(*args, env=None):
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, env=env)


def write_export(path, text_header: str, texts=TEXTS):
    pd.DataFrame({"工单号": [f"W{i}" for i in range(len(texts))], text_header: texts,
                  "created_at": ["2026-11-01"] * len(texts)}).to_csv(path, index=False, encoding="utf-8")
    return path


def _mapped(rows, columns=ColumnMapping()):
    chunk = RawChunk("export.csv", [{"source_row": i + 1, "cells": cells} for i, cells in enumerate(rows)])
    return map_columns(chunk, columns)


def test_a_common_chinese_text_header_is_the_text_column():
    frame = _mapped([{"id": "1", "投诉内容": "服务员态度差", "门店": "上海店"}])
    good, bad = validate_rows(frame, set(), max_text_chars=100)
    assert good["text"].tolist() == ["服务员态度差"] and not bad
    assert good["metadata"].iloc[0] == {"门店": "上海店"}


@pytest.mark.parametrize("cells, columns", [
    ({"id": "1", "投诉内容": "服务员态度差", "内容": "服务员态度差"}, ColumnMapping()),  # two candidates: no guess
    ({"id": "1", "投诉内容": "服务员态度差"}, ColumnMapping(text="正文")),  # an explicit mapping is meant
])
def test_no_guess_when_the_text_column_is_ambiguous_or_named(cells, columns):
    _, bad = validate_rows(_mapped([cells], columns), set(), max_text_chars=100, text_column=columns.text)
    assert bad[0].reason == QuarantineReason.MISSING_COLUMN
    assert bad[0].detail.startswith(f"no column '{columns.text}'; columns not mapped: 投诉内容")


def _quarantined(reason, column, count, raw=None):
    return [QuarantinedRow("export.csv", i + 1, column, reason, "detail", raw or {}) for i in range(count)]


def test_a_run_nearly_all_quarantined_for_one_reason_names_the_mapping_to_fix():
    settings = load_settings()
    tally = QuarantineTally()
    tally.add(_quarantined(QuarantineReason.MISSING_COLUMN, "text", 19, {"id": "1", "text": "", "门店": "上海店", "意见": "服务员态度很差"}))
    with pytest.raises(MostlyQuarantinedError) as failure:
        tally.check(20, settings)
    message = str(failure.value)
    assert message.startswith("export.csv: 19 of 20 rows were quarantined as missing_column")
    assert '--column text=意见 or, in the settings file, [columns] text = "意见"' in message

    few = QuarantineTally()
    few.add(_quarantined(QuarantineReason.BAD_DATE, "created_at", 4) + _quarantined(QuarantineReason.EMPTY_TEXT, "text", 4))
    few.check(10, settings)  # some bad rows of an export, not a wrong mapping: the run goes on
    mixed = QuarantineTally()
    mixed.add(_quarantined(QuarantineReason.EMPTY_TEXT, "text", 3) + _quarantined(QuarantineReason.BAD_DATE, "日期", 6))
    with pytest.raises(MostlyQuarantinedError, match="9 of 10 rows were quarantined, 6 of them as unparseable_date"):
        mixed.check(10, settings)
    dates = QuarantineTally()
    dates.add(_quarantined(QuarantineReason.BAD_DATE, "受理时间", 10))
    with pytest.raises(MostlyQuarantinedError, match="is '受理时间' the complaint date"):
        dates.check(10, settings)


@pytest.mark.slow
def test_classify_fails_loudly_when_no_row_has_the_text_column(tmp_path):
    source = write_export(tmp_path / "export.csv", "意见")
    output = tmp_path / "out.csv"
    result = complaints("classify", "--input", str(source), "--output", str(output), "--lexicon")
    assert result.returncode == 1
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and f"{source}: all 5 rows were quarantined as missing_column" in error[0]
    assert '--column text=意见 or, in the settings file, [columns] text = "意见"' in error[0]
    assert "settings file ()" not in result.stderr and "[columns] in the settings file" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(pd.read_csv(tmp_path / "out.invalid.csv", encoding="utf-8-sig")) == 5  # kept, with the reason

    mapped = complaints("classify", "--input", str(source), "--output", str(output), "--lexicon",
                        "--column", "text=意见", "--column", "id=工单号")
    assert mapped.returncode == 0, mapped.stderr
    assert pd.read_csv(output, encoding="utf-8-sig")["id"].tolist() == [f"W{i}" for i in range(5)]
    assert not (tmp_path / "out.invalid.csv").exists()

    wrong_flag = complaints("classify", "--input", str(source), "--output", str(output), "--column", "body=意见")
    assert wrong_flag.returncode == 1 and "FIELD one of id, text, created_at, channel, customer" in wrong_flag.stderr


@pytest.mark.slow
def test_classify_understands_the_header_complaint_content(tmp_path):
    for header in ("投诉内容", "投訴內容"):  # simplified and traditional
        source = write_export(tmp_path / "export.csv", header)
        result = complaints("classify", "--input", str(source), "--output", str(tmp_path / "out.csv"), "--lexicon")
        assert result.returncode == 0, result.stderr
        assert len(pd.read_csv(tmp_path / "out.csv", encoding="utf-8-sig")) == len(TEXTS)


@pytest.mark.flow
def test_the_nightly_run_fails_and_keeps_the_rows_when_the_mapping_is_wrong(prefect_harness, lexicon_settings, tmp_path):
    from flows.nightly import nightly_flow

    source = write_export(tmp_path / "export.csv", "意见")
    with pytest.raises(MostlyQuarantinedError, match="--column text=意见"):
        nightly_flow(source=str(source), settings=lexicon_settings)
    engine = sa.create_engine(lexicon_settings.resolved_database_url)
    with engine.connect() as conn:
        status, error = conn.execute(sa.text("SELECT status, error FROM runs")).one()
        kept = conn.execute(sa.text("SELECT COUNT(*) FROM quarantine")).scalar_one()
    engine.dispose()
    assert status == "failed" and "missing_column" in error and kept == len(TEXTS)

    fixed = lexicon_settings.model_copy(update={"columns": ColumnMapping(id="工单号", text="意见")})
    summary = nightly_flow(source=str(source), settings=fixed)
    assert summary["status"] == "completed" and summary["counts"]["classified"] == len(TEXTS)
