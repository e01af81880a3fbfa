import pandas as pd
import pytest

from pipeline.config import ColumnMapping
from pipeline.ingest.sources import RawChunk, map_columns
from pipeline.ingest.quarantine import QuarantineReason
from pipeline.ingest.validate import parse_timestamps, validate_rows


def _frame(rows):
    chunk = RawChunk("upload.csv", [{"source_row": i + 1, "cells": cells} for i, cells in enumerate(rows)])
    return map_columns(chunk, ColumnMapping())


def test_each_bad_row_gets_its_reason_and_the_good_rows_go_on():
    frame = _frame([
        {"id": "1", "text": "服务员态度差", "created_at": "2026-11-01"},
        {"id": "2", "text": "   ", "created_at": "2026-11-01"},
        {"id": "3", "text": "？？？!!!", "created_at": ""},
        {"id": "4", "text": "等了很久", "created_at": "下周"},
        {"id": "1", "text": "重复的编号", "created_at": ""},
        {"id": "5", "text": "很" * 3000, "created_at": "2026年11月5日"},
    ])
    good, bad = validate_rows(frame, set(), max_text_chars=2000)
    assert good["complaint_id"].tolist() == ["1", "5"]
    assert [(q.source_row, q.column, q.reason) for q in bad] == [
        (2, "text", QuarantineReason.EMPTY_TEXT),
        (3, "text", QuarantineReason.NO_LETTERS),
        (4, "created_at", QuarantineReason.BAD_DATE),
        (5, "id", QuarantineReason.DUPLICATE_IN_SOURCE),
    ]
    # over-long text is kept whole and flagged: truncated only for the model
    assert good["text_truncated"].tolist() == [False, True]
    assert len(good["text"].iloc[1]) == 3000
    assert good["created_at"].iloc[1] == pd.Timestamp("2026-11-05")


def test_ids_seen_in_an_earlier_chunk_are_duplicates():
    seen = set()
    validate_rows(_frame([{"id": "9", "text": "网络断了"}]), seen, max_text_chars=100)
    _, bad = validate_rows(_frame([{"id": "9", "text": "又断了"}]), seen, max_text_chars=100)
    assert bad[0].reason == QuarantineReason.DUPLICATE_IN_SOURCE


def test_missing_text_column_is_quarantined_not_crashed():
    _, bad = validate_rows(_frame([{"id": "1", "content": "有内容但列名不对"}]), set(), max_text_chars=100)
    assert bad[0].reason == QuarantineReason.MISSING_COLUMN


def test_dates_in_common_export_formats():
    values = pd.Series(["2026/11/23 14:05", "2026年11月3日 8:00", "2026-11-23T14:05:00+08:00", "", "下周"])
    parsed = parse_timestamps(values)
    assert parsed.iloc[0] == pd.Timestamp("2026-11-23 14:05")
    assert parsed.iloc[1] == pd.Timestamp("2026-11-03 08:00")
    assert parsed.iloc[2] == pd.Timestamp("2026-11-23 06:05")  # time-zone aware → UTC
    assert pd.isna(parsed.iloc[3]) and pd.isna(parsed.iloc[4])


PHONE = "13812345678"


@pytest.mark.slow
def test_reasons_never_repeat_a_phone_number_from_the_row():
    frame = _frame([
        {"id": "1", "text": PHONE, "created_at": ""},  # a bare phone number as the complaint
        {"id": "2", "text": "服务员态度差", "created_at": f"请打{PHONE}"},  # typed into the date column
        {"id": PHONE, "text": "服务员态度差"},
        {"id": PHONE, "text": "又是态度差"},  # the id is a phone number, twice
    ])
    _, bad = validate_rows(frame, set(), max_text_chars=100)
    assert [q.reason for q in bad] == [QuarantineReason.NO_LETTERS, QuarantineReason.BAD_DATE,
                                       QuarantineReason.DUPLICATE_IN_SOURCE]
    for row in bad:
        assert "1381234" not in row.detail and "1381234" not in row.message()
    assert bad[0].detail == "the text (11 characters) has no letters"
    assert "[手机号]" in bad[1].detail and "[手机号]" in bad[2].detail


def test_a_row_is_judged_by_the_first_check_it_fails_in_row_order():
    # the checks run over the whole chunk at once; a row set aside for its date does not make a later row with
    # the same id a duplicate, while a kept row does (and an id seen in an earlier chunk stays a duplicate)
    seen = {"0"}
    frame = _frame([
        {"id": "7", "text": "等了很久", "created_at": "下周"},
        {"id": "7", "text": "等了很久", "created_at": "2026-11-01"},
        {"id": "7", "text": "等了很久", "created_at": "下周"},
        {"id": "0", "text": "   ", "created_at": ""},
        {"id": "0", "text": "网络断了", "created_at": "下周"},
        {"id": "8", "text": "网络断了", "channel": "渠" * 200},
    ])
    good, bad = validate_rows(frame, seen, max_text_chars=100)
    assert good["source_row"].tolist() == [2] and seen == {"0", "7"}
    assert all(type(q.source_row) is int for q in bad)  # a numpy integer would be stored by SQLite as bytes
    assert [(q.source_row, q.reason) for q in bad] == [
        (1, QuarantineReason.BAD_DATE), (3, QuarantineReason.DUPLICATE_IN_SOURCE), (4, QuarantineReason.EMPTY_TEXT),
        (5, QuarantineReason.DUPLICATE_IN_SOURCE), (6, QuarantineReason.VALUE_TOO_LONG)]
    assert bad[-1].column == "channel" and "has 200 characters, more than the 128 a channel" in bad[-1].detail
