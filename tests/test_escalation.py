"""Escalation: threats to go to a regulator, court or the media, safety incidents and repeat complaints
raise priority, shorten the SLA and are named on the ticket."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.schema import CreateTable

from pipeline.storage import store
from pipeline.config import DATA_DIR, ConfigError, load_settings
from pipeline.routing.escalation import Escalator, Trigger, count_earlier, escalate
from pipeline.text.privacy import Privacy
from pipeline.routing.router import Router
from ticket_helpers import process_file, write_complaints

RULES = DATA_DIR / "routing" / "escalation.toml"
NOW = datetime(2026, 11, 10, 8, 0)


@pytest.fixture
def lexicon_settings(tmp_path):
    """The shipped term and repeat rules without the deadline rule: these complaints are weeks older than
    their deadlines, and the batch would add its breach escalation to every ticket (tests/test_sla.py)."""
    before, _, breach = RULES.read_text(encoding="utf-8").partition("\n[breach]\n")
    assert breach and "\n[" not in breach  # the last table of the file: nothing else is cut off with it
    rules = tmp_path / "escalation.toml"
    rules.write_text(before, encoding="utf-8")
    return load_settings(work_dir=tmp_path / "work", classifier="lexicon", escalation_path=rules)


@pytest.fixture(scope="module")
def escalator() -> Escalator:
    return Escalator.from_file(RULES)


def codes(triggers) -> list[str]:
    return [t.code for t in triggers]


@pytest.mark.parametrize("text, expected, evidence", [
    ("再不退款我就打12315，还要发微博曝光你们", ["external_complaint_threat"], ["12315", "微博", "曝光"]),
    ("我已经请了律师，准备起诉", ["external_complaint_threat"], ["律师", "起诉"]),
    ("我要去消協投訴，還要找媒體", ["external_complaint_threat"], ["消协", "媒体"]),  # traditional characters
    ("吃完饭全家食物中毒，孩子送医了", ["safety_incident"], ["食物中毒", "送医"]),
    ("插座漏电，我被电了一下，手受傷了", ["safety_incident"], ["漏电", "受伤"]),
    ("厨房着火了也没人管，我要找记者", ["external_complaint_threat", "safety_incident"], ["记者"]),
])
def test_words_that_escalate(escalator, text, expected, evidence):
    triggers = escalator.text_triggers(text)
    assert codes(triggers) == expected
    assert triggers[0].evidence == tuple(evidence)
    assert all(t.describe().startswith(f"{t.code}: ") for t in triggers)


@pytest.mark.parametrize("text", [
    "幸好没有受伤，但是服务太慢",  # a negation is ignored
    "请回电13812315678",  # 12315 inside a phone number (masked before matching)
    "订单号20123150，一直没发货",  # 12315 inside a longer number
    "只能用工商银行的卡付款",  # 工商 as part of a bank's name
    "服务员态度很差",
])
def test_words_that_do_not_escalate(escalator, text):
    assert escalator.text_triggers(text) == []


HOTEL_PRAISE = ("这是第二次入住了，酒店整体环境优雅，房间设施一般，不过卫生还可以，每次入住后，习惯检查一下床面是否整洁，"
                "近期出差，入住的酒店中，只有这一家未发现床上有残留的头发等异物。")


@pytest.mark.parametrize("text", [
    HOTEL_PRAISE,  # the demo sample's review that became a priority-1 safety ticket due in 2 hours
    "菜品干净，没有异物", "包装完好无异物", "仔细检查过，未发现任何异物", "没有发现任何异物，很放心",
    "无人受伤，只是等了很久", "吃完没有出现过敏，但是菜太咸", "还没有报警，先找你们客服",
])
def test_negated_words_do_not_escalate(escalator, text):
    assert escalator.text_triggers(text) == []


@pytest.mark.parametrize("text, evidence", [
    ("饭里吃出了异物", "异物"),
    ("没想到饭里吃出了异物", "异物"),  # 没想到 is surprise, not a negation
    ("没发现问题就给我吃出了异物", "异物"),  # a second finding: the negation does not reach the word
    ("未发现头发，结果吃出了异物", "异物"),  # another clause
    ("包装里没有异物，但是吃完拉肚子了", "拉肚子"),  # one word negated, another not
    ("没人管孩子，孩子受伤了", "受伤"),
    ("不小心烫伤了手", "烫伤"),
])
def test_words_without_a_negation_still_escalate(escalator, text, evidence):
    triggers = escalator.text_triggers(text)
    assert codes(triggers) == ["safety_incident"] and triggers[0].evidence == (evidence,)


def test_the_praising_hotel_review_gets_an_ordinary_ticket(lexicon_settings, tmp_path):
    rows = [("P1", HOTEL_PRAISE, "2026-10-10 12:26", "wechat", "广州天河店", ""),
            ("P2", "饭菜里吃出了异物，太恶心了", "2026-10-10 13:00", "app", "广州天河店", "")]
    tickets = {t["complaint_id"]: t for t in process_file(lexicon_settings, write_complaints(tmp_path / "in.csv", rows),
                                                         now=NOW)["ticket_rows"]}
    assert json.loads(tickets["P1"]["escalation_reasons"]) == [] and tickets["P1"]["priority"] > 1
    assert tickets["P2"]["priority"] == 1 and tickets["P2"]["due_at"] == tickets["P2"]["received_at"] + timedelta(hours=2)


def test_escalation_takes_the_most_urgent_priority_and_shortest_sla():
    decision = Router.from_files(DATA_DIR / "routing" / "routing.toml",
                                 DATA_DIR / "routing" / "remedies.toml").route_for_cause("customer")
    assert (decision.priority, decision.sla_hours) == (4, 72)
    assert escalate(decision, []) is decision
    raised = escalate(decision, [Trigger("a", "r", 2, 12), Trigger("b", "r", 3, 4)])
    assert (raised.priority, raised.sla_hours, raised.queue) == (2, 4, decision.queue)


def test_count_earlier_looks_back_within_the_window_only():
    window = timedelta(days=30)
    history = [(NOW - timedelta(days=31), "old"), (NOW - timedelta(days=29), "recent"), (NOW, "same-time-a"),
               (NOW, "this"), (NOW + timedelta(days=1), "later")]
    assert count_earlier(history, at=NOW, complaint_id="this", window=window) == 2  # recent, same-time-a
    assert count_earlier(history, at=NOW, complaint_id="same-time-a", window=window) == 1  # ties broken by id
    assert count_earlier([(NOW, "this")], at=NOW, complaint_id="this", window=window) == 0


def test_tickets_say_why_they_were_escalated(lexicon_settings, tmp_path):
    source = write_complaints(tmp_path / "in.csv")
    records = process_file(lexicon_settings, source, now=NOW)
    tickets = {t["complaint_id"]: t for t in records["ticket_rows"]}
    payloads = {cid: json.loads(t["payload_json"]) for cid, t in tickets.items()}

    threat = payloads["C2"]  # whatever its route, a 12315 threat makes it priority 1 within 4 h
    assert (threat["priority"], tickets["C2"]["due_at"]) == (1, tickets["C2"]["received_at"] + timedelta(hours=4))
    assert threat["escalation_reasons"] == ["external_complaint_threat: 顾客表示要向监管部门、消协、法院或媒体投诉或曝光 — 12315"]
    assert threat["escalation_steps"] and threat["remedy"]["immediate"]

    safety = payloads["C3"]
    assert [r.split(":")[0] for r in safety["escalation_reasons"]] == ["safety_incident"]
    assert (safety["priority"], tickets["C3"]["due_at"]) == (1, tickets["C3"]["received_at"] + timedelta(hours=2))

    # U1 complained on 11-01 (C1) and again on 11-04 (C4): only the second is a repeat
    assert payloads["C1"]["escalation_reasons"] == []
    assert payloads["C4"]["escalation_reasons"] == ["repeat_complaint: 同一顾客 30 天内第 2 次投诉"]
    assert payloads["C4"]["priority"] == 2 and tickets["C4"]["due_at"] == tickets["C4"]["received_at"] + timedelta(hours=12)
    assert json.loads(tickets["C4"]["escalation_reasons"]) == payloads["C4"]["escalation_reasons"]

    engine = store.connect(lexicon_settings.resolved_database_url)
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.select(store.complaints.c.complaint_id, store.complaints.c.customer_key)).all())
    assert stored["C1"] == Privacy.from_settings(lexicon_settings).customer_ref("U1") and stored["C5"] is None


def test_repeat_complaints_across_runs_use_the_stored_history(lexicon_settings, tmp_path):
    process_file(lexicon_settings, write_complaints(tmp_path / "first.csv"), run_id="first", now=NOW)
    later = [("C7", "房间很脏，床单有污渍", "2026-11-20 10:00", "app", "北京朝阳店", "U3"),  # U3: C3 on 11-03
             ("C8", "房间很脏，床单有污渍", "2027-01-20 10:00", "app", "北京朝阳店", "U4"),  # U4: C6 on 11-06
             ("C9", "房间很脏，床单有污渍", "2026-11-21 10:00", "app", "北京朝阳店", "U9")]
    records = process_file(lexicon_settings, write_complaints(tmp_path / "second.csv", later), run_id="second",
                           now=NOW)
    reasons = {t["complaint_id"]: json.loads(t["escalation_reasons"]) for t in records["ticket_rows"]}
    assert reasons == {"C7": ["repeat_complaint: 同一顾客 30 天内第 2 次投诉"], "C8": [], "C9": []}


def test_the_customer_column_is_configurable(lexicon_settings, tmp_path):
    settings = load_settings(work_dir=tmp_path / "work", classifier="lexicon", columns={"customer": "member_no"},
                             escalation_path=lexicon_settings.escalation_path)
    source = tmp_path / "in.csv"
    source.write_text("id,text,created_at,member_no\nA,服务员态度很差,2026-11-01,M7\n"
                      "B,服务员态度还是很差,2026-11-02,M7\n", encoding="utf-8")
    records = process_file(settings, source, now=NOW)
    assert [c["customer_key"] for c in records["complaint_rows"]] == [Privacy.from_settings(settings).customer_ref("M7")] * 2
    assert [json.loads(t["escalation_reasons"]) != [] for t in records["ticket_rows"]] == [False, True]


@pytest.mark.parametrize("change, key, reason", [
    (("priority = 1\nsla_hours = 4", "priority = 0\nsla_hours = 4"), "terms.0.priority", "greater than or equal to 1"),
    (('window_days = 30', 'window_days = "a month"'), "repeat.window_days", "valid integer"),
    (("第 {count} 次", "第 {times} 次"), "repeat.reason", "unknown placeholder"),
    (('code = "repeat_complaint"', 'code = "safety_incident"'), "rule codes must be unique", "safety_incident"),
    (('ignore = ["没有受伤"', 'ignore = ["  ", "没有受伤"'), "terms.1.ignore", "blank entries"),
    (("[repeat]", "[repeats]"), "repeats", "Extra inputs are not permitted"),
    (("max_gap = 12", "max_gap = 100"), "negation.max_gap", "less than or equal to 40"),
    (('cues = ["没有"', 'cues = ["", "没有"'), "negation.cues", "blank entries"),
])
def test_a_malformed_escalation_file_names_key_and_reason(tmp_path, change, key, reason):
    text = RULES.read_text(encoding="utf-8")
    assert change[0] in text
    path = tmp_path / "escalation.toml"
    path.write_text(text.replace(*change), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        Escalator.from_file(path)
    assert str(path) in str(error.value) and key in str(error.value) and reason in str(error.value)


def test_a_database_from_before_customer_key_gets_the_column(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    old_table = "\n".join(line for line in str(CreateTable(store.complaints).compile(engine)).splitlines()
                          if "customer_key" not in line)
    with engine.begin() as conn:
        conn.execute(sa.text(old_table))
        conn.execute(sa.text("INSERT INTO complaints (complaint_id, text_raw, text_masked, content_hash, "
                             "ingested_at) VALUES ('old-1', 't', 't', 'h', '2026-01-01 00:00:00')"))
    engine.dispose()
    upgraded = store.connect(url)
    inspector = sa.inspect(upgraded)
    assert "customer_key" in {c["name"] for c in inspector.get_columns("complaints")}
    assert any(ix["column_names"] == ["customer_key"] for ix in inspector.get_indexes("complaints"))
    assert store.read_table(upgraded, store.complaints)["complaint_id"].tolist() == ["old-1"]
    assert store.customer_history(upgraded, ["nobody"], NOW - timedelta(days=30)) == {}


@pytest.mark.parametrize("text", ["没人管孩子，孩子受伤了，请打13812345678", "饭菜里有异物&amp;拉肚子了，电话 13812345678",
                                  "&lt;b&gt;烫伤&lt;/b&gt;了手", "服务员态度差"])
def test_triggers_from_the_masked_text_the_batch_has_are_the_same(escalator, text):
    from pipeline.text.normalise import mask_pii

    assert escalator.text_triggers(text, mask_pii(text)) == escalator.text_triggers(text)
