"""The manual-review loop and the ticket commands: export for people, import their labels (kept apart
from predictions), turn them into training rows; list, export and redeliver tickets."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from pipeline.storage import store
from pipeline.cli.app import app
from pipeline.config import load_settings
from pipeline.text.normalise import mask_pii
from pipeline.training.reserved import is_reserved
from pipeline.training.review import review_candidates
from pipeline.training.evaluation import read_labelled
from ticket_helpers import COMPLAINTS, WebhookReceiver, process_file, write_complaints

runner = CliRunner()


@pytest.fixture
def processed(lexicon_settings, tmp_path):
    process_file(lexicon_settings, write_complaints(tmp_path / "in.csv"))
    return lexicon_settings


def flagged_or_escalated(settings) -> set[str]:
    engine = store.connect(settings.resolved_database_url)
    tickets = store.read_table(engine, store.tickets)
    predictions = store.read_table(engine, store.predictions).set_index("complaint_id")
    return {t.complaint_id for t in tickets.itertuples()
            if predictions.loc[t.complaint_id, "needs_review"] or t.escalation_reasons != "[]"}


def cli(settings, *args):
    return runner.invoke(app, [*args, "--work-dir", str(settings.work_dir)])


def reviews_in(settings) -> pd.DataFrame:
    return store.read_table(store.connect(settings.resolved_database_url), store.reviews)


@pytest.mark.slow
def test_review_export_holds_flagged_and_escalated_items(processed, tmp_path):
    frame = review_candidates(store.connect(processed.resolved_database_url))
    # C2 escalated (12315), C3 (safety), C4 (repeat customer), C5 is not a complaint (review)
    assert {"C2", "C3", "C4", "C5"} <= set(frame["complaint_id"]) == flagged_or_escalated(processed)
    assert frame["complaint_id"].iloc[:2].tolist() == ["C2", "C3"]  # priority 1, earliest deadline first (clocks
    # start at the complaint: C2 was due 11-02 15:00, C3 11-03 14:00)
    assert (frame[["cause", "reviewer"]] == "").all().all()

    for suffix in ("csv", "xlsx"):
        result = cli(processed, "review", "export", "--output", str(tmp_path / f"review.{suffix}"))
        assert result.exit_code == 0, result.output
    from_csv = pd.read_csv(tmp_path / "review.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    from_xlsx = pd.read_excel(tmp_path / "review.xlsx", dtype=str).fillna("")
    assert from_csv["complaint_id"].tolist() == from_xlsx["complaint_id"].tolist() == frame["complaint_id"].tolist()
    assert "12315" in from_csv.set_index("complaint_id").loc["C2", "escalation_reasons"]


def test_imported_labels_are_kept_apart_with_reviewer_and_time(processed, tmp_path):
    export = tmp_path / "review.csv"
    cli(processed, "review", "export", "--output", str(export))
    engine = store.connect(processed.resolved_database_url)
    predictions_before = store.read_table(engine, store.predictions)
    filled = pd.read_csv(export, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    filled.loc[filled["complaint_id"] == "C3", ["cause", "secondary_causes", "note"]] = ["technology", "management", "漏电"]
    filled.loc[filled["complaint_id"] == "C5", ["cause", "reviewer"]] = ["none", "王芳"]
    filled.to_csv(export, index=False, encoding="utf-8-sig")

    result = cli(processed, "review", "import", str(export), "--reviewer", "李雷")
    assert result.exit_code == 0, result.output
    assert "imported 2" in result.output and f"{len(filled) - 2} row(s) without a cause" in result.output
    reviews = reviews_in(processed).set_index("complaint_id")
    assert reviews.loc["C3", ["cause", "secondary_causes", "reviewer", "note"]].tolist() == \
        ["technology", "management", "李雷", "漏电"]
    assert reviews.loc["C5", "reviewer"] == "王芳" and reviews["reviewed_at"].notna().all()
    pd.testing.assert_frame_equal(store.read_table(engine, store.predictions), predictions_before)

    again = cli(processed, "review", "import", str(export), "--reviewer", "李雷")
    assert "imported 0" in again.output and "2 unchanged" in again.output
    assert len(reviews_in(processed)) == 2
    assert set(review_candidates(engine)["complaint_id"]) == flagged_or_escalated(processed) - {"C3", "C5"}
    assert len(review_candidates(engine, include_reviewed=True)) == len(flagged_or_escalated(processed))


def test_a_bad_review_file_imports_nothing_and_names_rows_and_columns(processed, tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"complaint_id": ["C1", "NOPE", "C3"], "cause": ["persnnel", "process", "technology"],
                  "secondary_causes": ["", "", "weather"], "reviewer": ["", "", ""]}).to_csv(bad, index=False)
    result = cli(processed, "review", "import", str(bad))
    assert result.exit_code == 1
    message = result.stderr.strip()
    assert message.startswith("error:") and "nothing imported" in message
    for expected in ("row 1, column 'cause': 'persnnel' is not a known label",
                     "row 2, column 'complaint_id': 'NOPE' is not a stored complaint",
                     "row 3, column 'secondary_causes': unknown label(s) ['weather']",
                     "row 1, column 'reviewer': empty"):
        assert expected in message
    assert reviews_in(processed).empty


def test_reviewed_labels_become_training_rows_without_reserved_texts(lexicon_settings, tmp_path):
    texts = [f"服务员态度很差，第{i}次" for i in range(40)]
    reserved = next(t for t in texts if is_reserved(t))
    usable = [t for t in texts if not is_reserved(t)][:2]
    rows = [(f"R{i}", text, "2026-11-01", "app", "", "") for i, text in enumerate([reserved, *usable])]
    process_file(lexicon_settings, write_complaints(tmp_path / "in.csv", rows))
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"complaint_id": ["R0", "R1", "R2", "R1"], "cause": ["personnel", "process", "personnel",
                                                                       "management"],
                  "reviewer": ["a", "a", "a", "b"]}).to_csv(labels, index=False)
    assert cli(lexicon_settings, "review", "import", str(labels)).exit_code == 0

    output = tmp_path / "reviewed.csv"
    result = cli(lexicon_settings, "review", "export-labelled", "--output", str(output))
    assert result.exit_code == 0 and "1 left out (evaluation reserve)" in result.output
    frame = read_labelled(output)  # what `complaints train --data` reads
    assert frame[["id", "cause"]].values.tolist() == [["R1", "management"], ["R2", "personnel"]]  # latest wins
    assert frame["text"].tolist() == [mask_pii(text) for text in usable]  # the masked text people saw


def test_ticket_list_export_and_redeliver(processed, tmp_path):
    tickets = store.read_table(store.connect(processed.resolved_database_url), store.tickets)
    listed = cli(processed, "tickets", "list", "--queue", "manual-review")
    assert listed.exit_code == 0
    assert f"{(tickets['queue'] == 'manual-review').sum()} ticket(s)" in listed.output
    assert all(t in listed.output for t in tickets.loc[tickets["queue"] == "manual-review", "ticket_id"])

    output = tmp_path / "tickets.csv"
    assert cli(processed, "tickets", "export", "--output", str(output)).exit_code == 0
    exported = pd.read_csv(output, encoding="utf-8-sig", keep_default_na=False)
    assert len(exported) == len(COMPLAINTS) and set(exported["deliveries"]) == {"file:pending"}
    row = exported.set_index("complaint_id").loc["C2"]
    probabilities = json.loads(row["probabilities"])
    assert row["priority"] == 1 and "12315" in row["escalation_reasons"] and row["escalation_steps"]
    assert max(probabilities, key=probabilities.get) == row["cause"] and row["immediate_steps"]
    assert row["remedy_code"] == tickets.set_index("complaint_id").loc["C2", "remedy_code"]

    pending = cli(processed, "tickets", "export", "--delivery", "pending", "--output", str(tmp_path / "p.jsonl"))
    assert pending.exit_code == 0 and f"{len(COMPLAINTS)} ticket(s)" in pending.output
    redelivered = cli(processed, "tickets", "redeliver")
    assert redelivered.exit_code == 0 and f"file {len(COMPLAINTS)}" in redelivered.output
    assert "0 ticket(s)" in cli(processed, "tickets", "list", "--delivery", "pending").output


def test_redeliver_exits_non_zero_while_a_receiver_refuses(tmp_path):
    with WebhookReceiver(refuse_first=1000) as receiver:
        config = tmp_path / "settings.toml"
        config.write_text(f'work_dir = "{(tmp_path / "work").as_posix()}"\nclassifier = "lexicon"\n'
                          f'webhook_max_attempts = 1\n[webhooks.operations]\nurl = "{receiver.url}"\n',
                          encoding="utf-8")
        settings = load_settings(config)
        process_file(settings, write_complaints(tmp_path / "in.csv"))
        result = runner.invoke(app, ["tickets", "redeliver", "--config", str(config)])
    assert result.exit_code == 1
    assert "1 delivery(ies) still pending" in result.stderr and "HTTP 503" in result.stderr
    engine = store.connect(settings.resolved_database_url)
    with engine.connect() as conn:
        pending = conn.execute(sa.select(store.outbox.c.target).where(store.outbox.c.status == "pending")).scalars()
        assert list(pending) == ["webhook"]


def test_redeliver_waits_while_a_run_holds_the_database(processed):
    from pipeline.storage import runlock

    engine = store.connect(processed.resolved_database_url)
    holder_id = "20261123T020000-live"
    lease = runlock.acquire(engine, holder_id)  # this test process stands in for a live nightly run
    result = cli(processed, "tickets", "redeliver")
    assert isinstance(result.exception, runlock.RunLockedError) and holder_id in str(result.exception)
    with engine.connect() as conn:
        statuses = set(conn.execute(sa.select(store.outbox.c.status)).scalars())
    assert statuses == {"pending"}  # nothing delivered behind the running run's back
    runlock.release(engine, lease)
    assert cli(processed, "tickets", "redeliver").exit_code == 0
