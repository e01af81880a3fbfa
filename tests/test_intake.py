"""Sources the way nightly exports arrive: a folder or glob of export files, each taken once per content, and
a database table read in key order after its watermark. Real files in real encodings, a real SQLite file as
the source database, the batch steps as the flow runs them (tests/ticket_helpers.process_file)."""
from __future__ import annotations

import json
import os
from datetime import datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline.config import load_settings
from pipeline.ingest.intake import export_files, key_as_text, key_from_text
from pipeline.ingest.sources import SourceError
from pipeline.storage import store
from ticket_helpers import process_file

HEADER = ["id", "text", "created_at", "channel"]


def make_settings(tmp_path, **overrides):
    return load_settings(work_dir=tmp_path / "work", classifier="lexicon", **overrides)


def write_csv(path, rows, encoding="utf-8", delimiter=","):
    lines = [delimiter.join(HEADER)] + [delimiter.join(row) for row in rows]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def run(settings, source, run_id, **kw) -> dict:
    """One run; its counts, what it quarantined and the stored complaint ids."""
    process_file(settings, source, run_id=run_id, **kw)
    engine = store.connect(settings.resolved_database_url)
    with engine.connect() as conn:
        counts = conn.execute(sa.select(store.runs).where(store.runs.c.run_id == run_id)).mappings().one()
        quarantined = conn.execute(sa.select(store.quarantine).where(store.quarantine.c.run_id == run_id)).mappings().all()
        stored = conn.execute(sa.select(store.complaints.c.complaint_id, store.complaints.c.source)
                              .where(store.complaints.c.run_id == run_id)).all()
    engine.dispose()
    return {"rows_read": counts["rows_read"], "classified": counts["classified"],
            "skipped_seen": counts["skipped_seen"], "quarantined": [dict(q) for q in quarantined],
            "ids": [row.complaint_id for row in stored], "sources": [row.source for row in stored]}


def source_files(settings) -> list[dict]:
    engine = store.connect(settings.resolved_database_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(store.source_files).order_by(store.source_files.c.taken_at,
                                                                    store.source_files.c.path)).mappings().all()
    engine.dispose()
    return [dict(row) for row in rows]


@pytest.fixture
def export_folder(tmp_path):
    """One night's exports in the encodings Chinese systems write, a note that is not an export, and a
    Parquet file that is broken."""
    folder = tmp_path / "exports"
    folder.mkdir()
    write_csv(folder / "a-crm.csv", [("A1", "服务员态度很差，还骂人", "2026-12-01 09:00", "app"),
                                     ("A2", "排队两个小时没人管", "2026-12-01 10:00", "web")], encoding="utf-8-sig")
    write_csv(folder / "b-hotline.csv", [("B1", "乱收费，价格不透明，经理也不管", "2026-12-01 11:00", "hotline")],
              encoding="gb18030")
    write_csv(folder / "c-hk.tsv", [("C1", "空調壞了一整晚，沒有人來修理", "2026-12-01 12:00", "門市")],
              encoding="big5", delimiter="\t")
    (folder / "d-app.jsonl").write_bytes(
        (json.dumps({"id": "D1", "text": "快递太慢了，客服也不回电话", "created_at": "2026-12-01", "channel": "app"},
                    ensure_ascii=False) + "\n").encode("utf-16"))
    pd.DataFrame([{"id": "E1", "text": "热水器坏了，洗澡没有热水", "created_at": "2026-12-01", "channel": "门店"}]
                 ).to_excel(folder / "e-stores.xlsx", index=False)
    (folder / "f-broken.parquet").write_bytes(b"PAR1 this is not a parquet file")
    (folder / "README.md").write_text("exports land here nightly", encoding="utf-8")
    return folder


def test_a_folder_of_exports_is_taken_once_new_files_next_time_and_a_changed_file_again(tmp_path, export_folder):
    settings = make_settings(tmp_path, batch_size=1)  # several chunks per file: a file is taken whole or not at all

    first = run(settings, export_folder, "night-1")

    assert sorted(first["ids"]) == ["A1", "A2", "B1", "C1", "D1", "E1"]
    assert first["sources"] == sorted(first["sources"])  # files read in name order
    assert first["rows_read"] == 7 and first["classified"] == 6  # six rows and the broken file
    [broken] = first["quarantined"]
    assert broken["reason"] == "unreadable_file" and broken["source"].endswith("f-broken.parquet")
    assert "could not be read at all" in broken["detail"]
    recorded = {os.path.basename(f["path"]): f for f in source_files(settings)}
    assert set(recorded) == {"a-crm.csv", "b-hotline.csv", "c-hk.tsv", "d-app.jsonl", "e-stores.xlsx",
                             "f-broken.parquet"}  # not README.md
    assert recorded["f-broken.parquet"]["status"] == "quarantined" and "could not be read" in recorded["f-broken.parquet"]["detail"]
    assert recorded["a-crm.csv"]["status"] == "taken" and recorded["a-crm.csv"]["rows_read"] == 2
    assert os.path.isabs(recorded["a-crm.csv"]["path"]) and len(recorded["a-crm.csv"]["content_hash"]) == 64

    second = run(settings, export_folder, "night-2")
    assert second["rows_read"] == 0 and second["ids"] == [] and second["quarantined"] == []
    assert len(source_files(settings)) == 6

    write_csv(export_folder / "g-late.csv", [("G1", "网络信号差，经常断线", "2026-12-02 08:00", "app")])
    write_csv(export_folder / "a-crm.csv", [("A1", "服务员态度很差，还骂人", "2026-12-01 09:00", "app"),
                                            ("A2", "排队两个小时没人管，流程太乱", "2026-12-01 10:00", "web"),
                                            ("A3", "退款一个月了还没到账", "2026-12-02 09:00", "app")],
              encoding="utf-8-sig")
    third = run(settings, export_folder, "night-3")

    assert third["ids"] == ["A3", "G1"]  # the changed file's new row, and the new file
    assert third["rows_read"] == 4 and third["skipped_seen"] == 1
    [conflict] = third["quarantined"]  # A2's text changed under the same id: kept aside, not overwritten
    assert conflict["reason"] == "id_already_stored_with_other_text" and conflict["source_row"] == 2
    assert [os.path.basename(f["path"]) for f in source_files(settings)].count("a-crm.csv") == 2

    assert run(settings, export_folder, "night-4")["rows_read"] == 0


def test_a_glob_takes_files_in_name_then_modified_time_order(tmp_path):
    for day, mtime in (("2026-12-02", 2_000_000_000), ("2026-12-01", 1_900_000_000)):
        folder = tmp_path / "exports" / day
        folder.mkdir(parents=True)
        write_csv(folder / "complaints.csv", [(f"X{day}", "服务员态度很差", day, "app")])
        os.utime(folder / "complaints.csv", (mtime, mtime))
    write_csv(tmp_path / "exports" / "2026-12-01" / "another.csv", [("Y1", "排队太久", "2026-12-01", "app")])

    pattern = str(tmp_path / "exports" / "*" / "*.csv")
    assert [p.relative_to(tmp_path / "exports").as_posix() for p in export_files(pattern)] == [
        "2026-12-01/another.csv", "2026-12-01/complaints.csv", "2026-12-02/complaints.csv"]

    settings = make_settings(tmp_path)
    assert run(settings, pattern, "night-1")["ids"] == ["Y1", "X2026-12-01", "X2026-12-02"]
    assert run(settings, pattern, "night-2")["rows_read"] == 0


def test_a_glob_that_matches_a_file_of_another_type_quarantines_it_and_goes_on(tmp_path):
    write_csv(tmp_path / "in-1.csv", [("K1", "服务员态度很差", "2026-12-01", "app")])
    (tmp_path / "in-2.docx").write_bytes(b"PK\x03\x04 not an export")
    settings = make_settings(tmp_path)

    first = run(settings, str(tmp_path / "in-*"), "night-1")

    assert first["ids"] == ["K1"]
    [quarantined] = first["quarantined"]
    assert quarantined["reason"] == "unreadable_file" and "unsupported file type '.docx'" in quarantined["detail"]


def test_a_file_that_cannot_be_opened_is_quarantined_and_tried_again_next_run(tmp_path, monkeypatch):
    from pipeline.ingest import intake

    write_csv(tmp_path / "in-1.csv", [("L1", "服务员态度很差", "2026-12-01", "app")])
    write_csv(tmp_path / "in-2.csv", [("L2", "排队太久没人管", "2026-12-01", "app")])
    real_sha256 = intake.file_sha256

    def locked(path):  # tests run as root, whom file permissions do not stop: the refusal is simulated
        if path.name == "in-2.csv":
            raise PermissionError(13, "Permission denied", str(path))
        return real_sha256(path)

    monkeypatch.setattr(intake, "file_sha256", locked)
    settings = make_settings(tmp_path)
    first = run(settings, tmp_path, "night-1")
    assert first["ids"] == ["L1"]
    assert first["quarantined"][0]["reason"] == "unreadable_file" and "Permission denied" in first["quarantined"][0]["detail"]
    assert [os.path.basename(f["path"]) for f in source_files(settings)] == ["in-1.csv"]

    monkeypatch.setattr(intake, "file_sha256", real_sha256)
    assert run(settings, tmp_path, "night-2")["ids"] == ["L2"]


def test_why_a_file_was_set_aside_is_recorded_masked(tmp_path):
    import openpyxl

    folder = tmp_path / "exports"
    folder.mkdir()
    workbook = openpyxl.Workbook()
    workbook.active.title = "13812345678"  # a sheet named after a customer's phone number
    workbook.active.append(["id", "text"])
    workbook.save(folder / "calls.xlsx")
    settings = make_settings(tmp_path, sheet="投诉")  # the sheet the export should have had

    [quarantined] = run(settings, folder, "night-1")["quarantined"]

    [recorded] = source_files(settings)
    assert recorded["status"] == "quarantined" and "no sheet '投诉'" in recorded["detail"]
    assert "13812345678" not in recorded["detail"] and "[手机号]" in recorded["detail"]
    assert "13812345678" not in quarantined["detail"]


# ----------------------------------------------------------------------------- database sources

class SourceDatabase:
    """A source database with one ``complaints`` table (integer id, text, created_at, channel). Parametrised
    by engine: SQLite file now; a PostgreSQL param adds its URL and nothing else."""

    def __init__(self, url: str):
        self.url = url
        self.engine = sa.create_engine(url)
        self.table = sa.Table("complaints", sa.MetaData(), sa.Column("id", sa.Integer, nullable=True),
                              sa.Column("text", sa.Text), sa.Column("created_at", sa.String(32)),
                              sa.Column("channel", sa.String(32)))
        self.table.metadata.create_all(self.engine)

    def insert(self, rows: list[tuple]) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.insert(), [dict(zip(HEADER, row)) for row in rows])


@pytest.fixture(params=["sqlite"])
def source_db(request, tmp_path):
    database = SourceDatabase(f"sqlite:///{tmp_path / 'crm.db'}")
    yield database
    database.engine.dispose()


TEXTS = ["服务员态度很差，还骂人", "排队两个小时没人管", "乱收费，价格不透明", "空调坏了没人修", "快递太慢了"]


def numbered(first: int, last: int, day: str = "2026-12-01") -> list[tuple]:
    return [(i, f"{TEXTS[i % len(TEXTS)]}（单号{i}）", day, "app") for i in range(first, last + 1)]


def watermarks(settings) -> list[dict]:
    engine = store.connect(settings.resolved_database_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(store.source_watermarks)).mappings().all()
    engine.dispose()
    return [dict(row) for row in rows]


def test_a_table_is_read_in_key_order_from_its_watermark(tmp_path, source_db):
    source_db.insert(list(reversed(numbered(1, 10))))  # stored out of order: read in key order all the same
    settings = make_settings(tmp_path, batch_size=3)

    first = run(settings, source_db.url, "night-1", table="complaints")

    assert first["ids"] == [str(i) for i in range(1, 11)]
    [mark] = watermarks(settings)
    assert (mark["key_column"], mark["last_key"], mark["key_type"]) == ("id", "10", "int")
    assert "complaints" in mark["source"] and mark["run_id"] == "night-1"

    assert run(settings, source_db.url, "night-2", table="complaints")["rows_read"] == 0  # reads no row at all

    source_db.insert(numbered(11, 14))
    third = run(settings, source_db.url, "night-3", table="complaints")
    assert third["ids"] == ["11", "12", "13", "14"] and third["rows_read"] == 4 and third["skipped_seen"] == 0
    assert watermarks(settings)[0]["last_key"] == "14"


def test_a_key_shared_by_rows_across_a_page_boundary_loses_none_of_them(tmp_path, source_db):
    source_db.insert(numbered(1, 3, "2026-12-01") + numbered(4, 8, "2026-12-02") + numbered(9, 9, "2026-12-03"))
    settings = make_settings(tmp_path, batch_size=4, source_key_column="created_at")  # pages end inside a day

    first = run(settings, source_db.url, "night-1", table="complaints")

    assert sorted(first["ids"], key=int) == [str(i) for i in range(1, 10)]
    assert watermarks(settings)[0]["last_key"] == "2026-12-03"
    source_db.insert(numbered(10, 11, "2026-12-04"))
    assert sorted(run(settings, source_db.url, "night-2", table="complaints")["ids"]) == ["10", "11"]


def test_a_query_source_keeps_its_own_watermark_and_rows_without_a_key_are_quarantined(tmp_path, source_db):
    source_db.insert(numbered(1, 4) + [(None, "没有编号的投诉，客服不理人", "2026-12-01", "app")])
    settings = make_settings(tmp_path)
    query = "SELECT id, text, created_at, channel FROM complaints WHERE id <> 3 OR id IS NULL;"

    first = run(settings, source_db.url, "night-1", query=query)

    assert first["ids"] == ["1", "2", "4"]
    [unkeyed] = first["quarantined"]
    assert unkeyed["reason"] == "no_key_value" and unkeyed["column_name"] == "id"
    # the table read by the same key is another source: its own watermark, from the start
    assert run(settings, source_db.url, "night-2", table="complaints")["ids"] == ["3"]
    assert len(watermarks(settings)) == 2
    again = run(settings, source_db.url, "night-3", query=query)
    assert again["ids"] == [] and again["rows_read"] == 1  # only the row without a key, quarantined again


def test_a_source_without_the_key_column_is_a_clear_error(tmp_path, source_db):
    source_db.insert(numbered(1, 2))
    settings = make_settings(tmp_path, source_key_column="ticket_no")
    with pytest.raises(SourceError, match=r"table complaints has no column 'ticket_no'.*source_key_column"):
        run(settings, source_db.url, "night-1", table="complaints")


@pytest.mark.parametrize("value", [7, 2.5, "A-0009", datetime(2026, 12, 1, 8, 30), pd.Timestamp("2026-12-01").date()])
def test_a_watermark_comes_back_as_the_value_it_was(value):
    assert key_from_text(*key_as_text(value)) == value


@pytest.mark.flow
def test_the_nightly_flow_takes_a_folder_and_a_table_once_and_a_failed_run_records_nothing(prefect_harness, tmp_path,
                                                                                           source_db):
    from flows.nightly import nightly_flow
    from pipeline.ingest.validate import MostlyQuarantinedError

    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "night-1.csv").write_text("id,意见,created_at\nN1,服务员态度很差，还骂人,2026-12-01\n", encoding="utf-8")
    settings = make_settings(tmp_path)
    with pytest.raises(MostlyQuarantinedError, match="map the text column"):
        nightly_flow(source=str(folder), settings=settings)
    assert source_files(settings) == []  # the failed run took nothing: the file waits for the right mapping

    mapped = make_settings(tmp_path, columns={"text": "意见"})
    first = nightly_flow(source=str(folder), settings=mapped)
    assert first["counts"]["classified"] == 1
    assert first["intake"] == {"files_taken": 1, "files_quarantined": 0, "files_already_taken": 0}
    again = nightly_flow(source=str(folder), settings=mapped)
    assert again["counts"]["rows_read"] == 0 and again["intake"]["files_already_taken"] == 1

    source_db.insert(numbered(1, 3))
    from_table = nightly_flow(source=source_db.url, table="complaints", settings=settings)
    assert from_table["counts"]["classified"] == 3
    assert from_table["intake"] == {"key_column": "id", "started_after": None, "reached": "3"}
    source_db.insert(numbered(4, 4))
    later = nightly_flow(source=source_db.url, table="complaints", settings=settings)
    assert later["counts"]["rows_read"] == 1
    assert later["intake"] == {"key_column": "id", "started_after": "3", "reached": "4"}
