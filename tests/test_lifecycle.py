"""Ticket lifecycle: moves from the command line, a CSV/XLSX batch and the HTTP endpoint (a real server on
127.0.0.1 and a real client), who and when kept per event, and every illegal move refused with nothing
changed."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.storage import store
from pipeline.cli.app import app
from pipeline.config import PROJECT_ROOT
from pipeline.tickets.build import ticket_id_for
from ticket_helpers import process_file, write_complaints

runner = CliRunner()
TOKEN = "s3cret-token-for-tests-0123456789"


@pytest.fixture
def processed(lexicon_settings, tmp_path):
    # routed two days ago, so updates can be dated in between
    process_file(lexicon_settings, write_complaints(tmp_path / "in.csv"), now=store.utcnow() - timedelta(days=2))
    return lexicon_settings


def cli(settings, *args):
    return runner.invoke(app, [*args, "--work-dir", str(settings.work_dir)])


def tables(settings) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    engine = store.connect(settings.resolved_database_url)
    frames = (store.read_table(engine, store.tickets).set_index("ticket_id"),
              store.read_table(engine, store.ticket_events), store.read_table(engine, store.reviews))
    engine.dispose()
    return frames


C1, C2, C3 = ticket_id_for("C1"), ticket_id_for("C2"), ticket_id_for("C3")


def test_a_ticket_moves_through_its_states_with_who_and_when(processed, tmp_path):
    steps = [
        ("--status", "acknowledged", "--by", "王芳", "--note", "已致电顾客 13812345678"),
        ("--status", "resolved", "--resolution", "compensated", "--compensation", "¥50", "--by", "王芳"),
        ("--status", "reopened", "--by", "李雷", "--note", "顾客再次来电"),
        ("--status", "已解决", "--resolution", "fixed", "--by", "李雷"),
        ("--status", "closed", "--by", "李雷"),
    ]
    for step in steps:
        result = cli(processed, "tickets", "update", C1, *step)
        assert result.exit_code == 0, result.output
    tickets, events, _ = tables(processed)
    ticket = tickets.loc[C1]
    assert ticket["status"] == "closed" and ticket["resolution"] == "fixed" and ticket["reopened_count"] == 1
    assert ticket["compensation"] == 50 and ticket["updated_by"] == "李雷"
    assert pd.notna(ticket["acknowledged_at"]) and pd.notna(ticket["resolved_at"]) and pd.notna(ticket["closed_at"])
    mine = events[events["ticket_id"] == C1]
    assert list(zip(mine["from_status"], mine["to_status"])) == [
        ("open", "acknowledged"), ("acknowledged", "resolved"), ("resolved", "reopened"), ("reopened", "resolved"),
        ("resolved", "closed")]
    assert mine["by"].tolist() == ["王芳", "王芳", "李雷", "李雷", "李雷"] and (mine["source"] == "cli").all()
    assert mine["at"].is_monotonic_increasing
    assert "13812345678" not in mine["note"].iloc[0] and "已致电顾客" in mine["note"].iloc[0]  # notes are masked
    assert (tickets.drop(C1)["status"] == "open").all()

    assert cli(processed, "tickets", "list", "--status", "closed").output.startswith("1 ticket(s)")
    export = tmp_path / "tickets.csv"
    assert cli(processed, "tickets", "export", "--output", str(export)).exit_code == 0
    exported = pd.read_csv(export, encoding="utf-8-sig", dtype=str, keep_default_na=False).set_index("ticket_id")
    assert exported.loc[C1, ["status", "resolution", "reopened_count"]].tolist() == ["closed", "fixed", "1"]
    assert exported.loc[C2, "status"] == "open"


@pytest.mark.parametrize("first, step, message", [
    (None, ("--status", "closed"), "it cannot become closed (from open it can become acknowledged or resolved)"),
    (None, ("--status", "resolved"), "a ticket is resolved with a resolution code"),
    (None, ("--status", "resolved", "--resolution", "compensated"), "needs the amount given"),
    (None, ("--status", "acknowledged", "--resolution", "fixed"), "a resolution goes with status resolved or closed"),
    (None, ("--status", "acknowledged", "--cause", "weather"), "'weather' is not a known label"),
    (None, ("--status", "acknowledged", "--compensation", "fifty"), "'fifty' is not an amount"),
    (None, ("--status", "done"), "'done' is not a status"),
    (None, ("--status", "acknowledged", "--at", "2099-01-01 10:00"), "is in the future"),
    (None, ("--status", "acknowledged", "--at", "2020-01-01 10:00"), "is before the complaint was received"),
    (("--status", "resolved", "--resolution", "apologised"), ("--status", "acknowledged"),
     "ticket {ticket} is resolved: it cannot become acknowledged (from resolved it can become closed or reopened)"),
])
@pytest.mark.slow
def test_an_illegal_or_malformed_update_is_refused_and_changes_nothing(processed, first, step, message):
    if first:
        assert cli(processed, "tickets", "update", C2, *first, "--by", "li").exit_code == 0
    before = tables(processed)
    result = cli(processed, "tickets", "update", C2, *step, "--by", "li")
    assert result.exit_code == 1 and message.format(ticket=C2) in " ".join(result.output.split())
    after = tables(processed)
    for frame_before, frame_after in zip(before, after):
        pd.testing.assert_frame_equal(frame_before, frame_after)


def test_an_unknown_ticket_is_refused(processed):
    result = cli(processed, "tickets", "update", "TK-doesnotexist", "--status", "acknowledged", "--by", "li")
    assert result.exit_code == 1 and "'TK-doesnotexist' is not a stored ticket" in result.output
    assert tables(processed)[1].empty


def _write_updates(path, rows):
    frame = pd.DataFrame(rows, columns=["ticket_id", "status", "resolution", "cause", "compensation", "note", "by",
                                        "at"])
    if path.suffix == ".xlsx":
        frame.to_excel(path, index=False)
    else:
        frame.to_csv(path, index=False, encoding="utf-8-sig")
    return path


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_a_batch_file_moves_several_tickets_and_importing_it_again_changes_nothing(processed, tmp_path, suffix):
    received = tables(processed)[0]["created_at"].max().ceil("min")
    at = lambda minutes: (received + timedelta(hours=8, minutes=minutes)).strftime("%Y-%m-%d %H:%M")  # noqa: E731
    rows = [
        (C1, "acknowledged", "", "", "", "已回电", "王芳", at(10)),
        (C1, "resolved", "apologised", "", "", "", "王芳", at(50)),
        (C2, "resolved", "已补偿", "", "100元", "退款", "张伟", at(20)),
        (C3, "acknowledged", "", "管理", "", "", "", at(30)),  # 'by' from --by; the Chinese cause name works
    ]
    path = _write_updates(tmp_path / f"updates{suffix}", rows)
    result = cli(processed, "tickets", "update", "--file", str(path), "--by", "赵敏")
    assert result.exit_code == 0, result.output
    assert "4 update(s) applied to 3 ticket(s); 0 unchanged" in result.output
    tickets, events, _ = tables(processed)
    assert tickets.loc[[C1, C2, C3], "status"].tolist() == ["resolved", "resolved", "acknowledged"]
    assert tickets.loc[C2, ["resolution", "compensation"]].tolist() == ["compensated", 100.0]
    assert tickets.loc[C3, "corrected_cause"] == "management"
    assert events.set_index("ticket_id").loc[C3, "by"] == "赵敏"
    # times without a zone are Asia/Shanghai: stored 8 hours earlier, in UTC
    assert events.set_index("ticket_id").loc[C2, "at"] == received + timedelta(minutes=20)
    assert set(events["source"]) == {f"updates{suffix} row {n}" for n in (1, 2, 3, 4)}

    again = cli(processed, "tickets", "update", "--file", str(path), "--by", "赵敏")
    assert again.exit_code == 0 and "0 update(s) applied to 0 ticket(s); 4 unchanged" in again.output
    assert len(tables(processed)[1]) == 4


def test_a_batch_with_a_bad_row_changes_nothing_and_names_every_problem(processed, tmp_path):
    path = _write_updates(tmp_path / "bad.csv", [
        (C1, "acknowledged", "", "", "", "", "王芳", ""),
        ("TK-unknown", "acknowledged", "", "", "", "", "王芳", ""),
        (C2, "closed", "", "", "", "", "王芳", ""),
        (C3, "resolved", "sorry", "", "", "", "王芳", ""),
    ])
    before = tables(processed)
    result = cli(processed, "tickets", "update", "--file", str(path))
    message = " ".join(result.output.split())
    assert result.exit_code == 1 and f"{path}: nothing changed, 3 problem(s)" in message
    assert "row 2, column 'ticket_id': 'TK-unknown' is not a stored ticket" in message
    assert "row 3, column 'status'" in message and "row 4, column 'resolution': 'sorry'" in message
    for frame_before, frame_after in zip(before, tables(processed)):
        pd.testing.assert_frame_equal(frame_before, frame_after)

    missing = tmp_path / "no-status.csv"
    missing.write_text("ticket_id,note\nTK-1,x\n", encoding="utf-8")
    result = cli(processed, "tickets", "update", "--file", str(missing))
    assert result.exit_code == 1 and "column 'status': missing" in result.output


@pytest.fixture
def api(processed):
    from pipeline.tickets.api import TicketUpdateServer

    engine = store.connect(processed.resolved_database_url)
    server = TicketUpdateServer(engine, processed, TOKEN)
    server.start_in_thread()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
        yield client
    server.shutdown()
    server.server_close()
    engine.dispose()


def test_the_http_endpoint_applies_updates_and_refuses_what_the_cli_refuses(api, processed):
    assert api.post(f"/tickets/{C1}/updates", json={"status": "acknowledged", "by": "x"},
                    headers={"Authorization": ""}).status_code == 401
    assert api.post(f"/tickets/{C1}/updates", json={"status": "acknowledged", "by": "x"},
                    headers={"Authorization": "Bearer wrong-token-000000000"}).status_code == 401
    assert tables(processed)[1].empty

    answer = api.post(f"/tickets/{C1}/updates", json={"status": "acknowledged", "by": "客服系统", "note": "已回电"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["applied"] and body["ticket"]["status"] == "acknowledged"
    assert body["ticket"]["acknowledged_at"].endswith("+08:00")  # shown in the configured time zone

    resent = api.post(f"/tickets/{C1}/updates", json={"status": "acknowledged", "by": "客服系统", "note": "已回电"})
    assert resent.status_code == 200 and resent.json()["unchanged"] and not resent.json()["applied"]

    unknown = api.post("/tickets/TK-nope/updates", json={"status": "acknowledged", "by": "x"})
    assert unknown.status_code == 404 and "not a stored ticket" in unknown.json()["error"]
    illegal = api.post(f"/tickets/{C1}/updates", json={"status": "closed", "by": "x"})
    assert illegal.status_code == 409 and illegal.json()["problems"][0]["field"] == "status"
    invalid = api.post(f"/tickets/{C1}/updates", json={"status": "resolved", "resolution": "compensated",
                                                       "compensation": -5, "by": "x"})
    assert invalid.status_code == 400 and invalid.json()["problems"][0]["field"] == "compensation"
    assert api.post(f"/tickets/{C1}/updates", content=b"status=resolved",
                    headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 415
    assert api.post(f"/tickets/{C1}/updates", content=b"{not json",
                    headers={"Content-Type": "application/json"}).status_code == 400

    state = api.get(f"/tickets/{C1}").json()["ticket"]
    assert state["status"] == "acknowledged" and state["complaint_id"] == "C1"
    events = tables(processed)[1]
    assert len(events) == 1 and events["source"].tolist() == ["http"] and events["by"].tolist() == ["客服系统"]


def _complaints(*args, env=None, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "pipeline", *args], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.slow
def test_serve_updates_needs_its_token_and_answers_a_real_client(processed):
    env = {k: v for k, v in os.environ.items() if k != processed.ticket_api_token_env}
    refused = _complaints("tickets", "serve-updates", "--port", "0", "--work-dir", str(processed.work_dir), env=env)
    _, stderr = refused.communicate(timeout=60)
    assert refused.returncode == 1 and "COMPLAINTS_TICKET_API_TOKEN is not set" in stderr

    server = _complaints("tickets", "serve-updates", "--port", "0", "--work-dir", str(processed.work_dir),
                         env={**env, processed.ticket_api_token_env: TOKEN})
    try:
        line = server.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, line + server.stderr.read()
        url = line.split("listening on ")[1].split(" ")[0]
        answer = httpx.post(f"{url}/tickets/{C3}/updates", timeout=10, headers={"Authorization": f"Bearer {TOKEN}"},
                            json={"status": "resolved", "resolution": "fixed", "cause": "technology", "by": "维修组",
                                  "at": (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()})
        assert answer.status_code == 200, answer.text
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert tables(processed)[0].loc[C3, "status"] == "resolved"


@pytest.mark.slow
def test_a_cause_corrected_on_a_ticket_is_a_review_label_for_training(api, processed, tmp_path):
    assert cli(processed, "tickets", "update", C1, "--status", "acknowledged", "--cause", "流程", "--by", "王芳",
               "--note", "其实是排班流程的问题").exit_code == 0
    answer = api.post(f"/tickets/{C2}/updates", json={"status": "resolved", "resolution": "explained",
                                                      "cause": "customer", "by": "张伟"})
    assert answer.status_code == 200, answer.text
    _, _, reviews = tables(processed)
    labels = reviews.set_index("complaint_id")
    assert labels.loc["C1", ["cause", "reviewer"]].tolist() == ["process", "王芳"]
    assert labels.loc["C1", "note"] == f"ticket {C1}: 其实是排班流程的问题"
    assert labels.loc["C2", ["cause", "reviewer"]].tolist() == ["customer", "张伟"]

    labelled = tmp_path / "labelled.csv"
    result = cli(processed, "review", "export-labelled", "--output", str(labelled))
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(labelled, encoding="utf-8-sig", dtype=str, keep_default_na=False).set_index("id")
    assert rows.loc["C1", "cause"] == "process" and rows.loc["C2", "cause"] == "customer"
    assert "服务员态度很差" in rows.loc["C1", "text"]

    queue = tmp_path / "review.csv"
    assert cli(processed, "review", "export", "--output", str(queue)).exit_code == 0
    exported = pd.read_csv(queue, encoding="utf-8-sig", dtype=str)
    assert "C2" not in set(exported["complaint_id"])  # labelled by the team: no longer waits for review


def test_a_nul_in_an_update_or_a_review_file_is_dropped_on_either_engine(tmp_path, database_url):
    """PostgreSQL refuses NUL in text: a team's note, name or review file carrying one is stored without it."""
    from pipeline.config import load_settings
    from pipeline.tickets import lifecycle, updates
    from pipeline.training.review import import_reviews

    settings = load_settings(work_dir=tmp_path / "work", classifier="lexicon", database_url=database_url)
    process_file(settings, write_complaints(tmp_path / "in.csv"), now=store.utcnow() - timedelta(days=2))
    engine = store.connect(settings.resolved_database_url)
    first = store.read_table(engine, store.tickets).iloc[0]
    update, problems = updates.parse_update(
        {"ticket_id": first["ticket_id"], "status": "acknowledged", "by": "王\x00五", "note": "已回电\x00"},
        where="row 1", source="test", default_by=None, timezone=settings.timezone)
    assert not problems
    lifecycle.apply_updates(engine, [update])
    review_file = tmp_path / "reviews.csv"
    pd.DataFrame([{"complaint_id": first["complaint_id"], "cause": "process", "reviewer": "李\x00四",
                   "note": "核实\x00"}]).to_csv(review_file, index=False)
    import_reviews(engine, review_file)
    events, reviews = store.read_table(engine, store.ticket_events), store.read_table(engine, store.reviews)
    engine.dispose()
    assert events["by"].tolist() == ["王五"] and events["note"].tolist() == ["已回电"]
    assert reviews["reviewer"].tolist() == ["李四"] and reviews["note"].tolist() == ["核实"]
