"""Recovery in the trend report: exact figures on a handful of tickets (local calendar days, deadlines,
reopened, compensation, corrections), and the demo sample with generated team updates imported through
the command line, shown per cause in the HTML, the workbook and the markdown summary."""
from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from pipeline.storage import store
from pipeline.model.classify import load_model
from pipeline.cli.app import app
from pipeline.config import PROJECT_ROOT, load_settings
from pipeline.reporting.recovery import build_recovery, read_recovery_rows
from pipeline.reporting.report import build_report, render_markdown, write_report_files
from ticket_helpers import process_file

SAMPLE = PROJECT_ROOT / "data" / "samples" / "complaints_sample.csv"
NOW = datetime(2026, 11, 30, 4, 0)  # UTC; 12:00 in Shanghai


def _ticket(ticket_id, cause, received, *, queue="q", channel="app", status="open", acknowledged=None, resolved=None,
            respond_hours=4, resolve_hours=24, resolution=None, compensation=None, reopened=0, routed=None):
    received = datetime.fromisoformat(received)
    return {"ticket_id": ticket_id, "complaint_id": ticket_id, "cause": cause, "routed_cause": routed or cause,
            "queue": queue, "channel": channel, "priority": 2, "status": status, "received_at": received,
            "acknowledged_at": acknowledged and datetime.fromisoformat(acknowledged),
            "resolved_at": resolved and datetime.fromisoformat(resolved),
            "acknowledge_due_at": received + timedelta(hours=respond_hours),
            "due_at": received + timedelta(hours=resolve_hours), "resolution": resolution,
            "compensation": compensation, "reopened_count": reopened, "corrected": routed is not None}


def test_recovery_figures_are_exact_and_count_local_days():
    rows = pd.DataFrame([  # times are UTC; Shanghai is 8 hours ahead
        # received 23:00 local, resolved 01:00 local the next day: the same UTC day, but the next local day
        _ticket("A", "personnel", "2026-11-20 15:00", status="resolved", acknowledged="2026-11-20 16:00",
                resolved="2026-11-20 17:00", resolution="apologised"),
        _ticket("B", "personnel", "2026-11-21 01:00", status="closed", acknowledged="2026-11-21 02:00",
                resolved="2026-11-21 05:00", resolution="compensated", compensation=80.0),
        _ticket("C", "personnel", "2026-11-22 01:00", status="resolved", acknowledged="2026-11-22 09:00",
                resolved="2026-11-25 01:00", resolution="fixed", reopened=1),  # late, and reopened once
        _ticket("D", "process", "2026-11-28 01:00"),  # never answered: past both deadlines, 2 local days ago
        _ticket("E", "process", "2026-11-30 01:00", routed="technology"),  # today, corrected by people
        _ticket("F", "none", "2026-11-29 01:00"),  # not a complaint: the review backlog
    ])
    recovery = build_recovery(rows, NOW, "Asia/Shanghai")
    assert recovery.tickets == 5 and recovery.backlog == 1
    cause = recovery.by["cause"].set_index("group")
    personnel = cause.loc["personnel"]
    assert (personnel["tickets"], personnel["acknowledged"], personnel["resolved"]) == (3, 3, 3)
    assert personnel["respond_median_h"] == 1 and personnel["resolve_median_h"] == 4  # of 2, 4, 72 hours
    assert personnel["resolve_p90_h"] == pytest.approx(4 + 0.8 * (72 - 4))  # numpy's linear quantile
    assert (personnel["due"], personnel["within_sla"], personnel["within_sla_share"]) == (3, 2, pytest.approx(2 / 3))
    assert personnel["respond_late"] == 1  # C answered after 8 hours, 4 allowed
    assert personnel["reopened_share"] == pytest.approx(1 / 3)
    assert (personnel["compensated"], personnel["compensation_total"]) == (1, 80.0)
    process = cause.loc["process"]
    assert (process["tickets"], process["resolved"], process["due"], process["breached_open"]) == (2, 0, 1, 1)
    assert process["respond_late"] == 1 and pd.isna(process["resolve_median_h"])

    speed = recovery.speed.set_index("cause")
    assert speed.loc["personnel"].to_dict() == {"same_day": 1, "next_day": 1, "later": 1, "open_late": 0, "open": 0}
    assert speed.loc["process"].to_dict() == {"same_day": 0, "next_day": 0, "later": 0, "open_late": 1, "open": 1}
    assert recovery.corrections[["routed_cause", "cause", "complaints"]].values.tolist() == [["technology", "process", 1]]
    compensation = recovery.compensation.set_index("cause")
    assert compensation.loc["personnel", ["apologised", "compensated", "fixed"]].tolist() == [1, 1, 1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo sample routed a week after its last complaint by the shipped model, with generated team
    updates imported."""
    work = tmp_path_factory.mktemp("demo")
    settings = load_settings(work_dir=work / "work")
    process_file(settings, SAMPLE, now=datetime(2026, 11, 29), model=load_model(settings))  # the shipped model
    runner = CliRunner()
    updates = work / "updates.csv"
    result = runner.invoke(app, ["data", "demo-updates", "--work-dir", str(settings.work_dir), "--output", str(updates)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["tickets", "update", "--file", str(updates), "--work-dir", str(settings.work_dir)])
    assert result.exit_code == 0, result.output
    engine = store.connect(settings.resolved_database_url)
    report = build_report(engine, settings)
    engine.dispose()
    return settings, report, write_report_files(report, work / "reports", "demo"), pd.read_csv(updates)


@pytest.mark.slow
def test_the_demo_report_shows_recovery_times_and_breaches_per_cause(demo):
    settings, report, paths, updates = demo
    recovery = report.recovery
    assert recovery.has_updates and recovery.tickets > 50
    by_cause = recovery.by["cause"].set_index("group")
    causes = [c for c in by_cause.index if by_cause.loc[c, "tickets"] >= 10]
    assert len(causes) >= 3
    for cause in causes:
        row = by_cause.loc[cause]
        assert row["resolve_median_h"] > 0 and row["resolve_p90_h"] >= row["resolve_median_h"]
        assert 0 <= row["within_sla_share"] <= 1 and row["due"] == row["tickets"]  # every demo deadline has passed
    assert by_cause["breached_open"].sum() > 0 and (by_cause["within_sla"] < by_cause["due"]).any()
    speed = recovery.speed.set_index("cause")
    assert (speed.sum(axis=1) == by_cause["tickets"].reindex(speed.index)).all()
    assert speed[["same_day", "next_day", "later"]].sum().min() > 0  # all three kinds of recovery happen

    page = paths["html"].read_text(encoding="utf-8")
    assert 'id="recovery"' in page and "1:10:100" in page and page.count("<svg") >= 6
    workbook = load_workbook(paths["xlsx"], read_only=True)
    assert {"recovery by cause", "recovery by queue", "recovery by channel", "1-10-100", "compensation"} <= set(
        workbook.sheetnames)
    sheet = pd.read_excel(paths["xlsx"], sheet_name="recovery by cause")
    assert sheet["tickets"].sum() == recovery.tickets
    summary = paths["md"].read_text(encoding="utf-8")
    recovery_summary = summary.split("## 补救与时限")[1].split("\n## ")[0]
    assert "█ 当天（≈1）" in recovery_summary and "超时未解决" in recovery_summary
    assert sum(line.startswith("| ") for line in recovery_summary.splitlines()) == 1 + len(by_cause)  # a row per cause


@pytest.mark.slow
def test_tickets_nobody_touched_are_counted_in_the_database_with_the_same_figures(demo):
    settings, *_ = demo
    engine = store.connect(settings.resolved_database_url)
    now = store.utcnow()
    each = read_recovery_rows(engine)
    counted = read_recovery_rows(engine, now=now, timezone=settings.timezone)
    engine.dispose()
    untouched = (each["status"] == "open") & each["acknowledged_at"].isna() & (each["reopened_count"] == 0)
    assert untouched.sum() > 20 and (~untouched).sum() > 20  # the demo's updates touched some, not all
    assert len(counted) == (~untouched).sum() + counted["ticket_id"].isna().sum()  # the untouched come as groups
    assert counted["ticket_id"].isna().sum() < untouched.sum() and counted["tickets"].sum() == len(each)
    per_ticket, grouped = (build_recovery(rows, now, settings.timezone) for rows in (each, counted))
    assert (grouped.tickets, grouped.backlog) == (per_ticket.tickets, per_ticket.backlog)
    for key in per_ticket.by:
        pd.testing.assert_frame_equal(grouped.by[key].sort_values("group").reset_index(drop=True),
                                      per_ticket.by[key].sort_values("group").reset_index(drop=True))
    for table in ("speed", "compensation", "corrections"):
        pd.testing.assert_frame_equal(getattr(grouped, table).sort_values("cause" if table != "corrections"
                                                                          else "complaints").reset_index(drop=True),
                                      getattr(per_ticket, table).sort_values("cause" if table != "corrections"
                                                                             else "complaints").reset_index(drop=True),
                                      check_dtype=False)


@pytest.mark.slow
def test_a_cause_people_found_replaces_the_routed_one(demo):
    settings, *_ = demo  # (runs last: it adds a correction to the module's store)
    engine = store.connect(settings.resolved_database_url)
    rows = read_recovery_rows(engine)
    assert len(rows) == len(store.read_table(engine, store.tickets)) and not rows["corrected"].any()
    ticket = rows[(rows["routed_cause"] == "personnel") & rows["status"].isin(["open", "acknowledged"])].iloc[0]
    result = CliRunner().invoke(app, ["tickets", "update", ticket.ticket_id, "--status", "resolved", "--resolution",
                                      "fixed", "--cause", "management", "--by", "质检", "--work-dir",
                                      str(settings.work_dir)])
    assert result.exit_code == 0, result.output
    corrected = read_recovery_rows(engine).set_index("ticket_id").loc[ticket.ticket_id]
    report = build_report(engine, settings)
    engine.dispose()
    assert corrected["cause"] == "management" and corrected["routed_cause"] == "personnel" and corrected["corrected"]
    assert report.recovery.corrections[["routed_cause", "cause", "complaints"]].values.tolist() == [
        ["personnel", "management", 1]]
    assert "**处理人员更正的原因**：人员 → 管理 1" in render_markdown(report)  # how often, and to what
