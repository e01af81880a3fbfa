"""The fault-and-abuse suite (issue 13): over 40 kinds of bad or hostile input (bench/abuse_inputs.py), each a
real file through the real nightly flow. Every row ends classified (with a ticket) or quarantined with a
reason, nothing personal leaks into what the product writes, the Excel exports hold no live formula, and a
rerun adds nothing. bench/abuse.py measures the same kinds plus kill -9, webhook and database faults."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import sqlalchemy as sa
from openpyxl import load_workbook
from typer.testing import CliRunner

from bench.abuse_inputs import LONG_ID, ROW_KINDS, build
from pipeline.storage import store
from pipeline.config import load_settings
from pipeline.text.normalise import mask_pii
from pipeline.ingest.validate import parse_timestamps
from ticket_helpers import everything_stored, text_of

pytestmark = pytest.mark.flow


def test_a_date_beyond_pandas_range_is_unparseable_not_a_crashed_run():
    # 9999-12-31 (a "never" placeholder in many exports) raised OutOfBoundsDatetime and failed the whole run
    parsed = parse_timestamps(pd.Series(["9999-12-31 23:59", "1600-01-01", "2026-11-20 10:00"]), "Asia/Shanghai")
    assert parsed.isna().tolist() == [True, True, False]


def test_personal_data_split_by_invisible_characters_is_still_masked():
    # a zero-width space, word joiner, soft hyphen or NUL inside a number kept it from being masked
    assert mask_pii("回电139\u200b1234\u200b5673，身份证44030119920815\u2060434X") == "回电[手机号],身份证[身份证号]"
    assert mask_pii("卡号6222\u00ad0212\u00ad3456\u00ad7899，电话139\x001234 5673") == "卡号[银行卡号],电话[手机号]"
    assert mask_pii("\u202e退款\u202c到账\ufeff慢\n第二行") == "退款到账慢\n第二行"  # bidi, BOM gone; line breaks kept


def _table_counts(settings) -> dict[str, int]:
    engine = store.connect(settings.resolved_database_url)
    with engine.connect() as conn:
        counts = {table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                  for table in (store.complaints, store.predictions, store.tickets, store.quarantine, store.outbox)}
    engine.dispose()
    return counts



def _run_all(files, settings) -> dict[str, dict]:
    from flows.nightly import nightly_flow

    counts = {}
    for path in files:
        summary = nightly_flow(source=str(path), settings=settings)
        assert summary["status"] == "completed", path.name
        counts[path.name] = summary["counts"]
    return counts


def _formula_cells(path) -> list[str]:
    book = load_workbook(path)
    return [f"{sheet.title}!{cell.coordinate}" for sheet in book for row in sheet.iter_rows() for cell in row
            if cell.data_type == "f"]



def _exports(settings, folder) -> list:
    from pipeline.cli.app import app

    paths = []
    for name in ("tickets.xlsx", "tickets.csv"):  # the run's database, wherever it is (not only in work_dir)
        result = CliRunner().invoke(app, ["tickets", "export", "--work-dir", str(settings.work_dir),
                                          "--output", str(folder / name)],
                                    env={"COMPLAINTS_DATABASE_URL": settings.resolved_database_url})
        assert result.exit_code == 0, result.output
        assert not result.output.startswith("0 ticket(s)")  # the run's tickets, not an empty store
        paths.append(folder / name)
    return paths


def _leaks(pii, settings, extra_files, logs) -> list[tuple[str, str]]:
    written = {"database": everything_stored(settings), "logs": logs}
    for path in [*settings.work_dir.rglob("*"), *extra_files]:
        if path.is_file() and path.name not in ("pseudonym.key", "complaints.db"):
            written[str(path)] = text_of(path)
    assert any("quarantine" in name for name in written) and any("tickets" in name for name in written)
    return [(secret, name) for name, text in written.items() for secret in pii if secret in text]


def test_forty_kinds_of_hostile_input_lose_nothing_leak_nothing_and_rerun_to_nothing(prefect_harness, tmp_path,
                                                                                     caplog):
    export = build(tmp_path / "export")
    assert len(export.kinds) >= 40
    settings = load_settings(work_dir=tmp_path / "work", classifier="lexicon")
    first = _run_all(export.files, settings)
    for name, counts in first.items():  # every row read is accounted for
        assert counts["rows_read"] == counts["classified"] + counts["quarantined"] + counts["skipped_seen"], name

    engine = store.connect(settings.resolved_database_url)
    complaints = store.read_table(engine, store.complaints)
    quarantine = store.read_table(engine, store.quarantine)
    tickets = store.read_table(engine, store.tickets)
    engine.dispose()
    assert set(tickets["complaint_id"]) == set(complaints["complaint_id"])  # every classified row has its ticket
    assert quarantine["reason"].notna().all() and (quarantine["detail"].str.len() > 0).all()

    # each row-level kind: classified under its id, or quarantined at its row with a reason
    rows_file = str(export.folder / "rows.csv")
    stored_rows = set(complaints.loc[complaints["source"] == rows_file, "source_row"])
    quarantined_rows = dict(zip(quarantine.loc[quarantine["source"] == rows_file, "source_row"],
                                quarantine.loc[quarantine["source"] == rows_file, "reason"]))
    for offset, (kind, *_ignored) in enumerate(ROW_KINDS):
        source_row = 31 + offset  # after 30 ordinary rows
        assert (source_row in stored_rows) != (source_row in quarantined_rows), kind
    # ids and channels longer than the database keeps (PostgreSQL refuses them) are quarantined as such
    kind_rows = {kind: 31 + offset for offset, (kind, *_ignored) in enumerate(ROW_KINDS)}
    assert quarantined_rows[kind_rows["300-character id"]] == "value_too_long"
    assert quarantined_rows[kind_rows["300-character channel"]] == "value_too_long"
    assert LONG_ID not in set(complaints["complaint_id"])
    mega = complaints.set_index("complaint_id").loc["R-mega"]  # a megabyte text is stored, cut for the model only
    assert len(mega["text_masked"]) > 300_000 and mega["text_truncated"]
    hidden = complaints.set_index("complaint_id").loc["R-pii-hidden", "text_masked"]
    assert hidden.startswith("回电[手机号],身份证[身份证号],卡号[银行卡号]")
    assert quarantined_rows[36] == "duplicate_id_in_source" and quarantined_rows[45] == "unparseable_date"
    assert first["rows.csv"]["rows_read"] == 30 + len(ROW_KINDS) + 2
    # the Big5 and GB18030 files were read in their encodings, not as garbage
    texts = dict(zip(complaints["complaint_id"], complaints["text_masked"]))
    assert texts["b5-0"] == "服務員態度很差,說話很不耐煩" or texts["b5-0"] == "服務員態度很差，說話很不耐煩"
    assert "𠮷野家" in texts["gb-rare"]
    assert {"xl2-ok0", "u16le-ok5", "js-5", "cr-ok5"} <= set(texts)  # second sheet, no-BOM UTF-16, ...
    assert first["chinese_header.csv"]["classified"] == 5  # 投诉内容 understood as the text column
    # a ';'-separated .csv was one column named 'id;text;…': every row quarantined and the hint said to map
    # the text column to 'id;text;created_at;…'
    assert first["semicolon.csv"]["classified"] == 6
    # an unclosed quote: its own line is quarantined, the five lines after it are complaints, not one cell
    assert first["unclosed_quote.csv"] == {**first["unclosed_quote.csv"], "rows_read": 11, "quarantined": 1}
    assert {f"uq-after-ok{i}" for i in range(5)} <= set(texts)

    extra = _exports(settings, tmp_path)
    for workbook in [extra[0], *settings.reports_dir.glob("*.xlsx")]:
        assert _formula_cells(workbook) == [], workbook
    leaks = _leaks(export.pii, settings, extra, caplog.text)
    assert leaks == []

    before = _table_counts(settings)
    again = _run_all(export.files, settings)
    assert _table_counts(settings) == before  # a rerun adds nothing: no complaint, ticket, delivery or quarantine
    assert all(counts["classified"] == 0 for counts in again.values())


def test_the_bar_a_hidden_hostile_export(prefect_harness, tmp_path, caplog, database_url):
    """Issue 13's bar: PII in good rows, formula/script/SQL text, traditional characters, NUL bytes, an unclosed
    quote, a 300-character id, a duplicate id and a Big5 file: every row ticketed or quarantined, no PII in
    anything written, no live formula in Excel, Big5 read as Big5, a rerun that adds nothing. On SQLite and
    on PostgreSQL (which refuses NUL in text and values longer than their column)."""
    export = build(tmp_path / "export")
    files = [export.folder / name for name in ("rows.csv", "unclosed_quote.csv", "big5.csv")]
    settings = load_settings(work_dir=tmp_path / "work", classifier="lexicon", database_url=database_url)
    counts = _run_all(files, settings)
    stored = _table_counts(settings)
    read = sum(c["rows_read"] for c in counts.values())
    assert read == sum(c["classified"] + c["quarantined"] for c in counts.values())
    assert stored["complaints"] + stored["quarantine"] == read and stored["tickets"] == stored["complaints"]

    engine = store.connect(settings.resolved_database_url)
    complaints = store.read_table(engine, store.complaints).set_index("complaint_id")
    quarantine = store.read_table(engine, store.quarantine)
    engine.dispose()
    assert complaints.loc["b5-2", "text_masked"].startswith("冷氣壞了")  # Big5 read as Big5
    assert "\x00" not in "".join(complaints["text_masked"]) + "".join(complaints["text_raw"])
    assert "R-nul" in complaints.index and "R-pii" in complaints.index and "R-trad" in complaints.index
    long_id = quarantine[[json.loads(raw).get("id") == LONG_ID for raw in quarantine["raw_json"]]]
    assert long_id[["column_name", "reason"]].values.tolist() == [["id", "value_too_long"]]
    assert json.loads(complaints.loc["R-meta", "metadata_json"]).get("phone") != "18700002222"

    extra = _exports(settings, tmp_path)
    assert _formula_cells(extra[0]) == []
    assert _leaks(export.pii, settings, extra, caplog.text) == []
    _run_all(files, settings)
    assert _table_counts(settings) == stored
