"""Personal data: masked in the quarantine, the complaints table and metadata; customers kept only as a
reference that still finds repeat complaints; reports never split by customer."""
import csv
import json

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from pipeline import store
from pipeline.config import ConfigError, load_settings
from pipeline.ingest import iter_raw_chunks
from pipeline.privacy import Privacy
from pipeline.process import prepare_batch
from pipeline.runlog import append_quarantine_file
from ticket_helpers import process_file

PHONE, CUSTOMER, ID_NUMBER, CARD = "13812345678", "VIP-88231", "110101900307123", "6222021234567890"
SECRETS = (PHONE, "1234-5678", CUSTOMER, ID_NUMBER, CARD, "zhang_san88")
ROWS = [
    # id, text, created_at, channel, customer_id, phone, note
    ("P1", f"服务员态度很差，回电138-1234-5678，微信号zhang_san88", "2026-11-01 10:00", "app", CUSTOMER, PHONE,
     f"身份证{ID_NUMBER}"),
    ("P2", f"又被多扣费了，卡号{CARD}", "2026-11-03 10:00", "app", CUSTOMER, PHONE, "老客户"),
    ("P3", PHONE, "2026-11-03 11:00", "web", CUSTOMER, PHONE, ""),  # no letters: quarantined
    ("P4", f"房间很脏，电话{PHONE}", "yesterday-ish", "web", CUSTOMER, PHONE, f"卡{CARD}"),  # bad date
]


def _write(path, rows=ROWS):
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "created_at", "channel", "customer_id", "phone", "note"])
        writer.writerows(rows)
    return path


def _everything_stored(settings) -> str:
    engine = store.connect(settings.resolved_database_url)
    with engine.connect() as conn:
        dump = "\n".join(str(tuple(row)) for table in store.metadata.sorted_tables
                         for row in conn.execute(sa.select(table)))
    engine.dispose()
    return dump


def test_the_database_and_quarantine_file_keep_no_personal_data(lexicon_settings, tmp_path):
    source = _write(tmp_path / "in.csv")
    records = process_file(lexicon_settings, source)
    dump = _everything_stored(lexicon_settings)
    for secret in SECRETS:
        assert secret not in dump, secret
    engine = store.connect(lexicon_settings.resolved_database_url)
    quarantine = store.read_table(engine, store.quarantine).set_index("source_row")
    complaints = store.read_table(engine, store.complaints).set_index("complaint_id")
    engine.dispose()
    assert set(quarantine["reason"]) == {"no_letters", "unparseable_date"}  # quarantined, with a reason
    raw = json.loads(quarantine.loc[4, "raw_json"])
    assert raw["text"] == "房间很脏,电话[手机号]" and raw["note"] == "卡[银行卡号]"
    privacy = Privacy.from_settings(lexicon_settings)
    reference = privacy.customer_ref(CUSTOMER)
    assert raw["customer_id"] == reference and raw["phone"] == privacy.customer_ref(PHONE)
    assert complaints.loc["P1", "text_raw"] == complaints.loc["P1", "text_masked"]
    assert json.loads(complaints.loc["P1", "metadata_json"])["note"] == "身份证[身份证号]"
    # the customer reference still finds the repeat complaint and travels on the ticket for a call-back
    assert set(complaints["customer_key"]) == {reference}
    tickets = {t["complaint_id"]: json.loads(t["payload_json"]) for t in records["ticket_rows"]}
    assert tickets["P2"]["customer_ref"] == reference
    assert any(r.startswith("repeat_complaint") for r in tickets["P2"]["escalation_reasons"])

    quarantine_file = tmp_path / "quarantine.csv"
    chunk = next(iter_raw_chunks(str(source)))
    batch = prepare_batch(chunk, lexicon_settings, set(), lambda ids: {}, None)
    append_quarantine_file(quarantine_file, batch.quarantined)
    written = quarantine_file.read_text(encoding="utf-8-sig")
    assert "no_letters" in written
    for secret in SECRETS:
        assert secret not in written, secret
    assert all(secret not in row.message() for row in batch.quarantined for secret in SECRETS)


def test_raw_rows_are_kept_only_when_the_settings_ask_for_them(tmp_path):
    settings = load_settings(work_dir=tmp_path / "work", classifier="lexicon", keep_raw_rows=True)
    process_file(settings, _write(tmp_path / "in.csv"))
    engine = store.connect(settings.resolved_database_url)
    quarantine = store.read_table(engine, store.quarantine).set_index("source_row")
    complaints = store.read_table(engine, store.complaints).set_index("complaint_id")
    engine.dispose()
    assert json.loads(quarantine.loc[4, "raw_json"])["phone"] == PHONE
    assert PHONE in quarantine.loc[3, "detail"]
    assert "138-1234-5678" in complaints.loc["P1", "text_raw"]
    assert "138-1234-5678" not in complaints.loc["P1", "text_masked"]


def test_customer_references_are_stable_keyed_and_not_the_value(tmp_path):
    first = load_settings(work_dir=tmp_path / "a")
    reference = Privacy.from_settings(first).customer_ref(CUSTOMER)
    assert reference == Privacy.from_settings(first).customer_ref(f" {CUSTOMER} ")  # same key file, same reference
    assert CUSTOMER not in reference and reference.startswith("C-")
    assert (tmp_path / "a" / "pseudonym.key").stat().st_mode & 0o077 == 0
    assert Privacy.from_settings(load_settings(work_dir=tmp_path / "b")).customer_ref(CUSTOMER) != reference
    keyed = load_settings(work_dir=tmp_path / "c", pseudonym_key="shared-secret")
    assert (Privacy.from_settings(keyed).customer_ref(CUSTOMER)
            == Privacy.from_settings(load_settings(work_dir=tmp_path / "d", pseudonym_key="shared-secret"))
            .customer_ref(CUSTOMER))


def test_reports_are_not_split_by_a_personal_column(lexicon_settings, tmp_path):
    from pipeline.cli import app

    process_file(lexicon_settings, _write(tmp_path / "in.csv"))
    result = CliRunner().invoke(app, ["trends", "--by", "customer_id", "--work-dir", str(lexicon_settings.work_dir)])
    assert result.exit_code == 1 and "personal column" in result.output
    with pytest.raises(ConfigError, match="personal column"):
        load_settings(trends={"split_by": "Phone"})
    lookup = CliRunner().invoke(app, ["customer-ref", CUSTOMER, "--work-dir", str(lexicon_settings.work_dir)])
    assert lookup.exit_code == 0, lookup.output
    assert "complaint P1" in lookup.output and "complaint P2" in lookup.output
