"""Personal data: masked in the quarantine, the complaints table and metadata; customers kept only as a
reference that still finds repeat complaints; reports never split by customer."""
import csv
import json

import pytest
from typer.testing import CliRunner

from pipeline.storage import store
from pipeline.config import ConfigError, load_settings
from pipeline.ingest.sources import iter_raw_chunks
from pipeline.text.privacy import Privacy
from pipeline.nightly.batch import prepare_batch
from pipeline.nightly.summary import append_quarantine_file
from ticket_helpers import everything_stored, process_file, text_of

PHONE, CUSTOMER, ID_NUMBER, CARD = "13812345678", "VIP-88231", "110101900307123", "6222021234567890"
SECRETS = (PHONE, "1234-5678", CUSTOMER, ID_NUMBER, CARD, "zhang_san88")
ROWS = [
    # id, text, created_at, channel, customer_id, phone, note
    ("P1", "服务员态度很差，回电138-1234-5678，微信号zhang_san88", "2026-11-01 10:00", "app", CUSTOMER, PHONE,
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



def test_the_database_and_quarantine_file_keep_no_personal_data(lexicon_settings, tmp_path):
    source = _write(tmp_path / "in.csv")
    records = process_file(lexicon_settings, source)
    dump = everything_stored(lexicon_settings)
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
    assert json.loads(quarantine.loc[3, "raw_json"])["text"] == PHONE
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
    from pipeline.cli.app import app

    process_file(lexicon_settings, _write(tmp_path / "in.csv"))
    result = CliRunner().invoke(app, ["trends", "--by", "customer_id", "--work-dir", str(lexicon_settings.work_dir)])
    assert result.exit_code == 1 and "personal column" in result.output
    with pytest.raises(ConfigError, match="personal column"):
        load_settings(trends={"split_by": "Phone"})
    lookup = CliRunner().invoke(app, ["customer-ref", CUSTOMER, "--work-dir", str(lexicon_settings.work_dir)])
    assert lookup.exit_code == 0, lookup.output
    assert "complaint P1" in lookup.output and "complaint P2" in lookup.output


# ---------------------------------------------------------------- a hostile export, end to end

HOSTILE_PII = ("13987654321", "139 8765 4321", "139-8765-4321", "+86 150 1122 3344", "15011223344",
               "440301199208154321", "440301920815432", "6217 0033 1234 5678 901", "6217003312345678901",
               "6228480402564890018", "li.si.hostile@example.org", "918273645", "wx_hostile_9a8b",
               "VIP-hostile-7731", "18600001111")


def _hostile_export(path):
    rows = [
        ("H1", "前台态度恶劣，请回电139-8765-4321或139 8765 4321，邮箱li.si.hostile@example.org", "2026-11-20 10:00",
         "hotline", "VIP-hostile-7731", "18600001111"),
        ("H2", "扣款卡号6217 0033 1234 5678 901，身份证440301199208154321，QQ号：918273645", "2026-11-20 11:00",
         "app", "VIP-hostile-7731", "18600001111"),
        ("H3", "=HYPERLINK(\"http://x\",\"点我\") 加我微信：wx_hostile_9a8b，老身份证440301920815432", "2026-11-21 09:00",
         "web", "U2", "+86 150 1122 3344"),
        ("H4", "13987654321", "2026-11-21 09:30", "web", "U3", "15011223344"),  # no letters: quarantined
        ("H7", "<script>alert(1)</script>空调坏了，卡6228480402564890018", "not a date 13987654321", "app", "U4", ""),
        ("H1", "重复的编号，电话+86 150 1122 3344", "2026-11-22 08:00", "app", "U5", ""),  # duplicate id
        ("H6", "'; DROP TABLE complaints; -- 网络断了，手机15011223344", "2026-11-22 09:00", "wechat",
         "VIP-hostile-7731", "13987654321"),
    ]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "created_at", "channel", "customer_id", "phone"])
        writer.writerows(rows)
    return path



@pytest.mark.flow
def test_a_hostile_export_leaves_no_personal_data_in_anything_the_product_writes(tmp_path):
    import os
    import subprocess
    import sys

    from pipeline.config import PROJECT_ROOT

    work, prefect_home = tmp_path / "work", tmp_path / "prefect-home"
    env = {**os.environ, "COMPLAINTS_CLASSIFIER": "lexicon", "PREFECT_HOME": str(prefect_home)}
    env.pop("PREFECT_API_URL", None)
    source = _hostile_export(tmp_path / "hostile.csv")

    def complaints(*args):
        done = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=PROJECT_ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        return done.stdout + done.stderr, done.returncode

    outputs = []
    for args in (["run", str(source), "--work-dir", str(work)],
                 ["trends", "--work-dir", str(work), "--period", "day", "--output", str(work / "reports" / "t.xlsx")],
                 ["trends", "--work-dir", str(work), "--period", "day", "--output", str(work / "reports" / "t.html")],
                 ["tickets", "export", "--work-dir", str(work), "--output", str(tmp_path / "tickets.xlsx")],
                 ["tickets", "export", "--work-dir", str(work), "--output", str(tmp_path / "tickets.csv")],
                 ["tickets", "list", "--work-dir", str(work)]):
        output, code = complaints(*args)
        assert code == 0, output
        outputs.append(output)

    settings = load_settings(work_dir=work)
    engine = store.connect(settings.resolved_database_url)
    counts = store.read_table(engine, store.runs).iloc[0]
    engine.dispose()
    assert counts["rows_read"] == 7 and counts["classified"] + counts["quarantined"] == 7
    assert counts["quarantined"] == 3  # no letters, unreadable date, duplicate id
    written = {"stdout/stderr": "\n".join(outputs), "database": everything_stored(settings)}
    for path in [*work.rglob("*"), tmp_path / "tickets.xlsx", tmp_path / "tickets.csv", *prefect_home.rglob("*")]:
        if path.is_file() and path.name != "pseudonym.key" and path.suffix not in (".py", ".pyc"):
            written[str(path)] = text_of(path)
    assert any("quarantine" in name for name in written) and any("tickets" in name for name in written)
    assert any(name.endswith("prefect.db") for name in written)
    leaks = [(pii, name) for name, text in written.items() for pii in HOSTILE_PII if pii in text]
    assert leaks == []
