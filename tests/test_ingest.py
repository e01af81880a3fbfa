import json

import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline.config import ColumnMapping
from pipeline.ingest.sources import SourceError, detect_encoding, iter_raw_chunks, map_columns, stable_id
from pipeline.ingest.quarantine import QuarantineReason

ROWS = [("A1", "前台服务员态度很差", "2026-11-01 10:00", "app"),
        ("A2", "房间空调坏了，没有热水", "2026-11-02 11:30", "hotline"),
        ("A3", "台风导致航班取消，酒店也不给退", "2026/11/03", "web")]


def _csv_text(sep=","):
    lines = [sep.join(["id", "text", "created_at", "channel"])] + [sep.join(r) for r in ROWS]
    return "\r\n".join(lines) + "\r\n"


def _read_all(path, **kw):
    chunks = list(iter_raw_chunks(str(path), **kw))
    records = [r for c in chunks for r in c.records]
    quarantined = [q for c in chunks for q in c.quarantined]
    return chunks, records, quarantined


@pytest.mark.parametrize("encoding,expected", [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"),
                                               ("gbk", "gb18030"), ("gb18030", "gb18030"),
                                               ("utf-16", "utf-16")])
def test_csv_encodings_are_detected(tmp_path, encoding, expected):
    path = tmp_path / f"complaints_{encoding}.csv"
    path.write_bytes(_csv_text().encode(encoding))
    assert detect_encoding(path) == expected
    _, records, quarantined = _read_all(path)
    assert [r["cells"]["text"] for r in records] == [r[1] for r in ROWS]
    assert not quarantined


# Taiwan / Hong Kong exports: traditional characters in Big5 (and its Windows and HKSCS forms)
TRADITIONAL = [("T1", "房間冷氣壞了，櫃檯服務員態度很差", "2026-11-01 10:00", "app"),
               ("T2", "外送員把餐點送錯了，客服說要等三天才能退款", "2026-11-02 11:30", "hotline"),
               ("T3", "銀行櫃員態度惡劣，辦理業務等了兩個小時", "2026/11/03", "web")]
HONG_KONG = [("H1", "佢哋嘅服務態度真係好差，等咗成個鐘都冇人理", "2026-11-04", "app")]
WINDOWS_BIG5 = [("W1", "碁盤桌送來時已經損壞，退款少了€5", "2026-11-05", "web")]


def _write_rows(path, rows, encoding, sep=","):
    lines = [sep.join(["id", "text", "created_at", "channel"])] + [sep.join(r) for r in rows]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


@pytest.mark.parametrize("encoding,rows", [("big5", TRADITIONAL), ("big5", TRADITIONAL[:1]),
                                           ("cp950", TRADITIONAL + WINDOWS_BIG5),
                                           ("big5hkscs", TRADITIONAL + HONG_KONG),
                                           ("gb18030", TRADITIONAL), ("utf-8", TRADITIONAL)])
def test_traditional_chinese_files_are_read_in_their_own_encoding(tmp_path, encoding, rows):
    path = _write_rows(tmp_path / f"taiwan_{encoding}.csv", rows, encoding)
    _, records, quarantined = _read_all(path)
    assert [r["cells"]["text"] for r in records] == [r[1] for r in rows]
    assert not quarantined


def test_an_explicit_encoding_wins_over_detection(tmp_path):
    path = _write_rows(tmp_path / "taiwan.tsv", TRADITIONAL, "big5", sep="\t")
    _, records, _ = _read_all(path, encoding="big5")
    assert [r["cells"]["text"] for r in records] == [r[1] for r in TRADITIONAL]
    _, records, quarantined = _read_all(path, encoding="gb18030")  # told wrong: read as told, nothing dropped
    assert len(records) + len(quarantined) == len(TRADITIONAL)
    assert [r["cells"]["text"] for r in records] != [r[1] for r in TRADITIONAL]
    bom = _write_rows(tmp_path / "bom.csv", TRADITIONAL, "utf-8-sig")
    _, records, _ = _read_all(bom, encoding="utf-8")
    assert records[0]["cells"]["id"] == "T1"  # the BOM is not part of the first column's name


def test_tsv_is_read_with_tabs(tmp_path):
    path = tmp_path / "complaints.tsv"
    path.write_text(_csv_text("\t"), encoding="utf-8")
    _, records, _ = _read_all(path)
    assert records[1]["cells"]["channel"] == "hotline"


def test_undecodable_bytes_quarantine_only_that_row(tmp_path):
    path = tmp_path / "mixed.csv"
    good = _csv_text().encode("utf-8")
    bad_row = b"A4,\xff\xfe\xfa\xfb broken,2026-11-04,app\r\n"
    path.write_bytes(good + bad_row + "A5,快递送错了,2026-11-05,app\r\n".encode("utf-8"))
    _, records, quarantined = _read_all(path)
    assert [r["cells"]["id"] for r in records] == ["A1", "A2", "A3", "A5"]
    assert len(quarantined) == 1
    bad = quarantined[0]
    assert (bad.source_row, bad.column, bad.reason) == (4, "text", QuarantineReason.UNDECODABLE)
    assert "mixed.csv: row 4, column 'text'" in bad.message()


def test_rows_that_break_the_structure_are_quarantined_with_their_line(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text(_csv_text() + "A9,多了一列,2026-11-05,app,extra\r\n", encoding="utf-8")
    _, records, quarantined = _read_all(path)
    assert len(records) == 3
    assert quarantined[0].reason == QuarantineReason.MALFORMED_ROW
    assert "5 fields, the header has 4" in quarantined[0].detail


def test_jsonl_with_broken_lines(tmp_path):
    path = tmp_path / "complaints.jsonl"
    lines = [json.dumps({"id": r[0], "text": r[1], "created_at": r[2], "channel": r[3]}, ensure_ascii=False)
             for r in ROWS]
    lines.insert(1, '{"id": "X", "text": "没有结尾的')
    lines.insert(3, '["not", "an", "object"]')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _, records, quarantined = _read_all(path)
    assert len(records) == 3
    assert [q.source_row for q in quarantined] == [2, 4]
    assert all(q.reason == QuarantineReason.MALFORMED_ROW for q in quarantined)


def test_xlsx_is_read_with_dates(tmp_path):
    path = tmp_path / "export.xlsx"
    frame = pd.DataFrame(ROWS, columns=["id", "text", "created_at", "channel"])
    frame["created_at"] = pd.to_datetime(frame["created_at"], format="mixed")
    frame.to_excel(path, index=False)
    _, records, _ = _read_all(path)
    mapped = map_columns(next(iter_raw_chunks(str(path))), ColumnMapping())
    assert mapped["text"].tolist() == [r[1] for r in ROWS]
    assert mapped["created_at_raw"].iloc[0].startswith("2026-11-01 10:00")


def _two_sheet_workbook(path):
    """An export split by month: 15 rows on the first sheet, 10 on the second (its columns in another order)."""
    import openpyxl

    workbook = openpyxl.Workbook()
    first = workbook.active
    first.title = "十月"
    first.append(["id", "text", "created_at"])
    for i in range(15):
        first.append([f"O{i}", f"第{i}位顾客：房间空调坏了", f"2026-10-{i + 1:02d}"])
    second = workbook.create_sheet("十一月")
    second.append(["text", "id"])
    for i in range(10):
        second.append([f"第{i}位顾客：快递送错了", f"N{i}"])
    workbook.create_sheet("空白")
    workbook.save(path)
    return path


def test_every_sheet_of_a_workbook_is_read(tmp_path):
    path = _two_sheet_workbook(tmp_path / "export.xlsx")
    chunks, records, quarantined = _read_all(path, chunk_size=10)
    assert len(records) == 25 and not quarantined
    assert [r["cells"]["id"] for r in records] == [f"O{i}" for i in range(15)] + [f"N{i}" for i in range(10)]
    assert [(c.source, c.rows_read) for c in chunks] == [
        (f"{path}#十月", 10), (f"{path}#十月", 5), (f"{path}#十一月", 10)]
    mapped = map_columns(chunks[-1], ColumnMapping())
    assert mapped["text"].iloc[0] == "第0位顾客：快递送错了" and mapped["source_row"].iloc[0] == 1


def test_one_sheet_can_be_named_and_a_wrong_name_lists_the_sheets(tmp_path):
    path = _two_sheet_workbook(tmp_path / "export.xlsx")
    _, records, _ = _read_all(path, sheet="十一月")
    assert [r["cells"]["id"] for r in records] == [f"N{i}" for i in range(10)]
    with pytest.raises(SourceError, match=r"no sheet '十二月'; the workbook has \['十月', '十一月', '空白'\]"):
        _read_all(path, sheet="十二月")


def test_parquet_streams_in_chunks(tmp_path):
    path = tmp_path / "big.parquet"
    pd.DataFrame({"id": [f"P{i}" for i in range(250)], "text": ["网络信号差"] * 250}).to_parquet(path)
    chunks, records, _ = _read_all(path, chunk_size=100)
    assert [c.rows_read for c in chunks] == [100, 100, 50]
    assert len(records) == 250


def test_sqlite_table_and_query_sources(tmp_path):
    url = f"sqlite:///{tmp_path / 'source.db'}"
    engine = sa.create_engine(url)
    pd.DataFrame(ROWS, columns=["id", "text", "created_at", "channel"]).to_sql("complaints", engine, index=False)
    engine.dispose()
    _, records, _ = _read_all(url, table="complaints")
    assert len(records) == 3
    _, records, _ = _read_all(url, query="SELECT id, text FROM complaints WHERE channel = 'app'")
    assert [r["cells"]["id"] for r in records] == ["A1"]
    with pytest.raises(SourceError, match="exactly one of --table or --query"):
        list(iter_raw_chunks(url))


def test_missing_file_and_unknown_format_are_clear_errors(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        list(iter_raw_chunks(str(tmp_path / "nope.csv")))
    odd = tmp_path / "complaints.docx"
    odd.write_bytes(b"x")
    with pytest.raises(SourceError, match="unsupported file type"):
        list(iter_raw_chunks(str(odd)))


def test_column_mapping_keeps_other_columns_as_metadata_and_gives_stable_ids(tmp_path):
    path = tmp_path / "renamed.csv"
    path.write_text("工单号,内容,时间,渠道,门店\n,房间很脏,2026-11-01,app,上海店\nB2,服务差,2026-11-02,web,北京店\n",
                    encoding="utf-8")
    columns = ColumnMapping(id="工单号", text="内容", created_at="时间", channel="渠道")
    mapped = map_columns(next(iter_raw_chunks(str(path))), columns)
    assert mapped["metadata"].iloc[0] == {"门店": "上海店"}
    assert mapped["complaint_id"].iloc[0] == stable_id("房间很脏", "2026-11-01", "app")
    assert mapped["complaint_id"].iloc[1] == "B2"


def test_large_file_is_read_in_flat_chunks(tmp_path):
    path = tmp_path / "large.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.write("id,text\n")
        for i in range(12_000):
            handle.write(f"L{i},第{i}位顾客投诉快递太慢\n")
    sizes = [c.rows_read for c in iter_raw_chunks(str(path), chunk_size=5000)]
    assert sizes == [5000, 5000, 2000]


def test_an_undecodable_cell_is_named_without_its_phone_number(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_bytes(_csv_text().encode("utf-8") + "A4,回电13812345678 ".encode("utf-8") + b"\xff\xfe,2026-11-04,app\r\n")
    _, _, quarantined = _read_all(path)
    assert quarantined[0].reason == QuarantineReason.UNDECODABLE
    assert "13812345678" not in quarantined[0].detail and "[手机号]" in quarantined[0].detail


def test_the_same_short_text_from_two_customers_stays_two_complaints(tmp_path):
    path = tmp_path / "no_ids.csv"
    path.write_text("text,channel,customer_id\n太慢了,app,U1\n太慢了,app,U2\n", encoding="utf-8")
    ids = map_columns(next(iter_raw_chunks(str(path))), ColumnMapping())["complaint_id"].tolist()
    again = map_columns(next(iter_raw_chunks(str(path))), ColumnMapping())["complaint_id"].tolist()
    assert len(set(ids)) == 2 and ids == again  # distinct, and a re-export keeps them
    assert stable_id("太慢了", "", "app") == stable_id("太慢了", "", "app", "")  # ids without a customer unchanged


def test_a_table_name_is_never_pasted_into_sql(tmp_path):
    url = f"sqlite:///{tmp_path / 'source.db'}"
    engine = sa.create_engine(url)
    pd.DataFrame(ROWS, columns=["id", "text", "created_at", "channel"]).to_sql("complaints", engine, index=False)
    pd.DataFrame({"secret": ["客户名单"]}).to_sql("customers", engine, index=False)
    engine.dispose()
    hostile = 'complaints" WHERE 0 UNION SELECT secret, secret, secret, secret FROM customers --'
    with pytest.raises(SourceError, match="no table") as error:
        list(iter_raw_chunks(url, table=hostile))
    assert "'complaints', 'customers'" in str(error.value)
    _, records, _ = _read_all(url, table="complaints")
    assert [r["cells"]["id"] for r in records] == ["A1", "A2", "A3"]
