"""Deadlines: clocks from the complaint's own time, business hours in the configured zone, breach and
near-breach lists, one escalation per breached ticket delivered to the supervisors' queue, and the nightly
run reporting what breached since the last run."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone

import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline.storage import store
from pipeline.config import ConfigError, DATA_DIR, load_settings
from pipeline.delivery.outbox import deliver_pending, ticket_file
from pipeline.routing.escalation import Escalator
from pipeline.routing.router import Router
from pipeline.tickets import sla
from pipeline.tickets.sla import (BusinessHours, SlaClock, SlaRules, breach_lists, elapsed_hours_of,
                                  escalate_breaches, open_clocks)
from pipeline.tickets.build import ticket_id_for
from ticket_helpers import process_file, write_complaints

SHANGHAI = SlaClock(SlaRules(business_hours=BusinessHours(holidays=[date(2026, 10, 1)]),
                             queues={"office": {"business_hours": True}}), "Asia/Shanghai")


def utc(local: str, hours_ahead: int = 8) -> datetime:
    """A Shanghai wall time as stored (naive UTC)."""
    return datetime.fromisoformat(local) - timedelta(hours=hours_ahead)


@pytest.mark.parametrize("start, hours, due", [
    ("2026-11-20 10:00", 4, "2026-11-20 14:00"),  # a Friday morning: same day
    ("2026-11-20 16:00", 4, "2026-11-23 11:00"),  # Friday 16:00 + 4 working hours: 2 today, 2 on Monday
    ("2026-11-21 20:00", 1, "2026-11-23 10:00"),  # a Saturday evening: the clock waits for Monday 09:00
    ("2026-11-20 07:30", 9, "2026-11-20 18:00"),  # before opening: a whole working day
    ("2026-09-30 17:00", 2, "2026-10-02 10:00"),  # 1 October is a holiday in this calendar
])
def test_business_hours_deadlines_count_only_working_hours_in_the_local_zone(start, hours, due):
    assert SHANGHAI.due(utc(start), hours, "office") == utc(due)
    assert SHANGHAI.elapsed_hours(utc(start), utc(due), "office") == pytest.approx(hours)
    assert SHANGHAI.due(utc(start), hours, "around-the-clock") == utc(start) + timedelta(hours=hours)


def test_business_hours_follow_daylight_saving_time():
    berlin = SlaClock(SlaRules(business_hours=BusinessHours(days=["sat", "sun", "mon"], start=time(1), end=time(5)),
                               queues={"q": {"business_hours": True}}), "Europe/Berlin")
    # 29 March 2026: clocks jump from 02:00 to 03:00, so 01:00–05:00 local holds only 3 real hours
    start = datetime(2026, 3, 28, 23, 0)  # Sunday 00:00 CET in UTC
    assert berlin.elapsed_hours(start, datetime(2026, 3, 29, 12, 0), "q") == pytest.approx(3)
    assert berlin.due(start, 4, "q") == datetime(2026, 3, 29, 23, 0) + timedelta(hours=1)  # Monday 02:00 CEST


@pytest.mark.parametrize("toml, message", [
    ("[sla]\nacknowledge_hours = { 1 = 1, 2 = 4, 3 = 8 }\n", "acknowledge_hours needs every priority 1 … 4; missing [4]"),
    ("[sla.business_hours]\nstart = \"18:00\"\nend = \"09:00\"\n", "end 09:00 must be after start 18:00"),
    ("[sla.queues.ops]\nacknowledge_hours = { 7 = 1 }\n", "priorities are 1 … 4, not [7]"),
    ("[sla.business_hours]\ndays = [\"monday\"]\n", "sla.business_hours.days.0"),
])
def test_bad_deadline_rules_fail_at_start_naming_the_key(tmp_path, toml, message):
    routing = tmp_path / "routing.toml"
    routing.write_text((DATA_DIR / "routing" / "routing.toml").read_text(encoding="utf-8").split("[sla]")[0] + toml,
                       encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        Router.from_files(routing, DATA_DIR / "routing" / "remedies.toml")
    assert str(routing) in str(error.value) and message in str(error.value)


def _settings_with_office_hours(tmp_path):
    """Shipped rules, with the operations queue (process complaints) on business hours."""
    routing = tmp_path / "routing.toml"
    routing.write_text((DATA_DIR / "routing" / "routing.toml").read_text(encoding="utf-8")
                       + "\n[sla.queues.operations]\nbusiness_hours = true\nacknowledge_hours = { 3 = 2 }\n",
                       encoding="utf-8")
    return load_settings(work_dir=tmp_path / "work", classifier="lexicon", routing_path=routing)


ROWS = [  # id, text, created_at (aware: stored as UTC), channel, store, customer
    ("P1", "排队等了两个小时也没人处理，流程太混乱了", "2026-11-20T16:00:00+08:00", "app", "S1", ""),  # process
    ("T1", "热水器坏了，洗澡没有热水，网络也连不上", "2026-11-20T16:00:00+08:00", "app", "S1", ""),  # technology
]


def test_tickets_run_their_clocks_from_the_complaint_on_their_queue_calendar(tmp_path):
    settings = _settings_with_office_hours(tmp_path)
    records = process_file(settings, write_complaints(tmp_path / "in.csv", ROWS), now=datetime(2026, 11, 25))
    tickets = {t["complaint_id"]: t for t in records["ticket_rows"]}
    process, technology = tickets["P1"], tickets["T1"]
    assert (process["queue"], technology["queue"]) == ("operations", "technical-support")
    assert process["received_at"] == technology["received_at"] == utc("2026-11-20 16:00")  # not the run's time
    # operations: 48 working hours from Friday 16:00 = 2 + 5 × 9 + 1 → Monday 30 Nov 10:00; respond in 2 of them
    assert process["due_at"] == utc("2026-11-30 10:00") and process["acknowledge_due_at"] == utc("2026-11-20 18:00")
    # technical-support runs around the clock: 24 h, and 4 h to respond at priority 2
    assert technology["due_at"] == utc("2026-11-21 16:00") and technology["acknowledge_due_at"] == utc("2026-11-20 20:00")
    shown = datetime.fromisoformat(json.loads(process["payload_json"])["acknowledge_due_at"])  # local, with offset
    assert shown.utcoffset() == timedelta(hours=8)
    assert shown.astimezone(timezone.utc).replace(tzinfo=None) == utc("2026-11-20 18:00")


def _fresh_store(tmp_path, hours_ago: list[float], texts: list[str], database_url: str | None = None):
    """Complaints made ``hours_ago`` (real time), processed now (into ``database_url``, default SQLite)."""
    now = store.utcnow()
    rows = [(f"F{i}", text, (now - timedelta(hours=h)).isoformat() + "+00:00", "app", "S1", "")
            for i, (h, text) in enumerate(zip(hours_ago, texts))]
    settings = load_settings(work_dir=tmp_path / "work", classifier="lexicon", database_url=database_url)
    process_file(settings, write_complaints(tmp_path / "fresh.csv", rows))
    return settings


SAFETY = "空调坏了一整晚，房间里的电线漏电，孩子触电受伤了"  # escalated: priority 1, 2 hours
SERVICE = "服务员态度很差，说话很不耐烦，还对我大吼大叫"  # personnel: 24 hours, respond in 4


def test_breach_and_near_breach_lists(tmp_path):
    settings = _fresh_store(tmp_path, [3, 3.5, 21, 1, 24 * 40], [SAFETY, SERVICE, SERVICE, SERVICE, SERVICE])
    engine = store.connect(settings.resolved_database_url)
    clock = Router.from_settings(settings).sla_clock
    with engine.begin() as conn:  # F3 was resolved on the spot: no clock runs on it
        conn.execute(store.tickets.update().where(store.tickets.c.ticket_id == ticket_id_for("F3"))
                     .values(status="resolved"))
    clocks = open_clocks(engine, clock, store.utcnow())
    breached, near = breach_lists(clocks, clock.rules.near_breach_share)
    as_set = lambda frame: set(zip(frame["ticket_id"], frame["clock"]))  # noqa: E731
    ids = {f"F{i}": ticket_id_for(f"F{i}") for i in range(5)}
    assert as_set(breached) == {(ids["F0"], "respond"), (ids["F0"], "resolve"),  # 3 h into a 2-hour deadline
                                (ids["F2"], "respond"), (ids["F4"], "respond"), (ids["F4"], "resolve")}
    assert as_set(near) == {(ids["F1"], "respond"),  # 3.5 of 4 hours to respond used
                            (ids["F2"], "resolve")}  # 21 of 24 hours
    assert breached.iloc[0]["ticket_id"] == ids["F4"] and (breached["hours_left"] < 0).all()


def test_a_ticket_built_past_its_deadline_is_escalated_by_its_batch_and_delivered_to_the_supervisors(
        tmp_path, database_url):
    """A complaint older than its deadline: the batch that builds its ticket records the breach and escalates
    it (what the sweep did that night, reading and rewriting the ticket again); the sweep adds nothing."""
    settings = _fresh_store(tmp_path, [3, 1, 24 * 40], [SAFETY, SERVICE, SERVICE], database_url)
    engine = store.connect(settings.resolved_database_url)
    clock, rule = Router.from_settings(settings).sla_clock, Escalator.from_settings(settings).rules.breach
    breaches = store.read_table(engine, store.sla_breaches).set_index("ticket_id")
    safety, old = ticket_id_for("F0"), ticket_id_for("F2")
    assert set(breaches.index) == {safety, old}  # F1: 1 hour into 24
    assert breaches.loc[safety, "escalated"] and not breaches.loc[old, "escalated"]  # 40 days late: loaded history
    assert breaches.loc[safety, "hours_late"] == pytest.approx(1, abs=0.1)
    assert breaches["run_id"].nunique() == 1 and breaches["run_id"].iloc[0] != "r1"  # the batch's run
    tickets = store.read_table(engine, store.tickets).set_index("ticket_id")
    assert tickets.loc[safety, "priority"] == 1  # already the most urgent: stays 1
    assert json.loads(tickets.loc[safety, "escalation_reasons"])[-1].startswith("sla_breach: 超过处理时限仍未解决（已超时 1 小时）")
    assert json.loads(tickets.loc[safety, "payload_json"])["escalation_reasons"] == json.loads(
        tickets.loc[safety, "escalation_reasons"])
    assert tickets.loc[old, "escalation_reasons"] == "[]"

    report = deliver_pending(engine, settings)
    assert report.delivered["file"] == 4  # the three tickets, and the escalation
    lines = ticket_file(settings.tickets_dir, "escalations").read_text(encoding="utf-8").splitlines()
    escalated = json.loads(lines[0])
    assert len(lines) == 1 and escalated["ticket_id"] == safety and escalated["queue"] == "technical-support"
    assert escalated["escalation_steps"][-1].startswith("查明拖延的环节")

    offered = []  # what the sweep asks the database to insert into sla_breaches
    sa.event.listen(engine, "before_cursor_execute", lambda _conn, _cursor, statement, parameters, *_:
                    offered.append(parameters) if "INSERT INTO sla_breaches" in statement else None)
    sweep = escalate_breaches(engine, clock, rule, now=store.utcnow(), run_id="r1")
    assert sweep.found.empty and sweep.breached_open == 2 and offered == []  # recorded by the batch already
    assert sweep.summary()["breached_since_last_run"] == 0  # r1 found none; the batch's run counts its own


def test_a_ticket_that_passes_its_deadline_later_is_escalated_once_by_the_sweep(tmp_path, database_url):
    settings = _fresh_store(tmp_path, [3, 1, 24 * 40], [SAFETY, SERVICE, SERVICE], database_url)
    engine = store.connect(settings.resolved_database_url)
    clock, rule = Router.from_settings(settings).sla_clock, Escalator.from_settings(settings).rules.breach
    deliver_pending(engine, settings)  # the tickets' own deliveries and the batch's escalation
    later = store.utcnow() + timedelta(hours=24)  # F1's 24 hours have passed
    sweep = escalate_breaches(engine, clock, rule, now=later, run_id="r1")
    service = ticket_id_for("F1")
    assert sweep.found["ticket_id"].tolist() == [service] and sweep.found["escalated"].all()
    assert sweep.breached_open == 3 and sweep.summary()["breached_since_last_run"] == 1
    assert 0.5 < sweep.found["hours_late"].iloc[0] < 1.5
    ticket = store.read_table(engine, store.tickets).set_index("ticket_id").loc[service]
    assert json.loads(ticket["escalation_reasons"])[-1].startswith("sla_breach: 超过处理时限仍未解决（已超时 1 小时）")
    assert json.loads(ticket["payload_json"])["priority"] == ticket["priority"]

    report = deliver_pending(engine, settings)
    assert report.delivered["file"] == 1
    lines = ticket_file(settings.tickets_dir, "escalations").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["ticket_id"] for line in lines] == [ticket_id_for("F0"), service]

    again = escalate_breaches(engine, clock, rule, now=later, run_id="r2")
    assert again.found.empty and again.breached_open == 3  # nothing new since the last run
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store.sla_breaches)).scalar_one() == 3


def test_clock_hours_of_many_tickets_are_those_of_the_calendar_walk():
    starts = pd.Series(pd.to_datetime([utc("2026-11-20 16:00"), utc("2026-11-21 20:00"), utc("2026-11-20 07:30"),
                                       utc("2026-11-20 16:00"), utc("2026-11-23 09:00")]))
    ends = pd.Series(pd.to_datetime([utc("2026-11-23 11:00"), utc("2026-11-23 10:00"), utc("2026-11-20 18:00"),
                                     utc("2026-11-23 11:00"), utc("2026-11-20 09:00")]))  # the last: ends before it starts
    queues = pd.Series(["office", "office", "around-the-clock", "around-the-clock", "office"])
    expected = [SHANGHAI.elapsed_hours(s, e, q) for s, e, q in zip(starts, ends, queues)]
    assert elapsed_hours_of(SHANGHAI, starts, ends, queues).tolist() == pytest.approx(expected)
    assert expected == pytest.approx([4, 1, 10.5, 67, 0])


def test_open_clocks_read_in_chunks_are_the_same_clocks(tmp_path, monkeypatch):
    settings = _fresh_store(tmp_path, [3, 3.5, 21, 1, 24 * 40], [SAFETY, SERVICE, SERVICE, SERVICE, SERVICE])
    engine, clock, now = store.connect(settings.resolved_database_url), Router.from_settings(settings).sla_clock, store.utcnow()
    whole = open_clocks(engine, clock, now)
    monkeypatch.setattr(sla, "CLOCK_READ_CHUNK", 2)
    assert len(list(sla.open_clock_chunks(engine, clock, now))) == 3
    pd.testing.assert_frame_equal(open_clocks(engine, clock, now), whole)
    assert len(whole) == 10  # five tickets, each with its respond and resolve clock


def test_the_sla_command_lists_both(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli.app import app

    settings = _fresh_store(tmp_path, [3, 3.5], [SAFETY, SERVICE])
    output = tmp_path / "sla.csv"
    result = CliRunner().invoke(app, ["tickets", "sla", "--work-dir", str(settings.work_dir), "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert "2 past their deadline" in result.output and "1 near their deadline (80% of the time used)" in result.output
    listed = pd.read_csv(output, encoding="utf-8-sig")
    assert sorted(zip(listed["list"], listed["clock"])) == [("breached", "resolve"), ("breached", "respond"),
                                                             ("near_breach", "respond")]


@pytest.mark.flow
def test_the_nightly_run_reports_what_breached_since_the_last_run(prefect_harness, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.nightly import nightly_flow

    now = store.utcnow()
    rows = [("N0", SAFETY, (now - timedelta(hours=3)).isoformat() + "+00:00", "app", "S1", ""),
            ("N1", SERVICE, (now - timedelta(hours=1)).isoformat() + "+00:00", "app", "S1", "")]
    settings = load_settings(work_dir=tmp_path / "work", classifier="lexicon")
    source = write_complaints(tmp_path / "in.csv", rows)
    state = nightly_flow(source=str(source), settings=settings, return_state=True)
    first = state.result()
    assert first["sla"] == {"breached_since_last_run": 1, "escalated": 1, "by_queue": {"technical-support": 1},
                            "by_cause": {"technology": 1}, "breached_open": 1, "respond_breached": 1,
                            "near_breach": 0}
    assert first["deliveries"]["delivered"] == {"file": 3}  # two tickets and one escalation
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    deadlines = {a.key: a for a in artifacts}["ticket-deadlines"]
    assert "自上次运行以来新超时 1 件" in deadlines.data and "技术 technology" in deadlines.data

    second = nightly_flow(source=str(source), settings=settings)
    assert second["sla"]["breached_since_last_run"] == 0 and second["sla"]["breached_open"] == 1


def test_the_sweep_counts_what_the_clock_lists_count_and_reads_only_what_it_writes(tmp_path, database_url, monkeypatch):
    """Around-the-clock queues are counted by the database; the sweep reads their new breaches only (it read
    every open ticket each night), and every ticket of a business-hours queue (the calendar decides)."""
    settings = _fresh_store(tmp_path, [3, 3.5, 21, 1, 24 * 40, 30, 1],
                            [SAFETY, SERVICE, SERVICE, SERVICE, SERVICE, SAFETY, SAFETY], database_url)
    # two hours on: F6 has passed its 2-hour deadline since it was built (F0 and F5 were built late: their
    # batch recorded them)
    engine, now = store.connect(settings.resolved_database_url), store.utcnow() + timedelta(hours=2)
    rule = Escalator.from_settings(settings).rules.breach
    queues = store.read_table(engine, store.tickets).set_index("ticket_id")["queue"]
    service_queue = queues[ticket_id_for("F1")]
    office = SlaClock(SlaRules(queues={service_queue: {"business_hours": True}}), settings.timezone)
    read: list[int] = []
    original = sla._clocks
    monkeypatch.setattr(sla, "_clocks", lambda frame, *args: read.append(len(frame)) or original(frame, *args))

    for clock, run_id in ((office, "r1"), (Router.from_settings(settings).sla_clock, "r2")):
        breached, near = breach_lists(open_clocks(engine, clock, now), clock.rules.near_breach_share)
        read.clear()
        sweep = escalate_breaches(engine, clock, rule, now=now, run_id=run_id)
        assert (sweep.breached_open, sweep.respond_breached, sweep.near_breach) == (
            (breached["clock"] == "resolve").sum(), (breached["clock"] == "respond").sum(), len(near))
        if run_id == "r1":  # the office queue's open tickets, and the one new breach of the other queue
            assert sum(read) == (queues == service_queue).sum() + 1 and ticket_id_for("F6") in set(sweep.found["ticket_id"])
        else:  # every breach recorded by r1: nothing to read
            assert sum(read) == 0 and sweep.found.empty and sweep.breached_open >= 2 and sweep.near_breach
