"""Delivery through the outbox, against real files and a real HTTP server on 127.0.0.1: retries, reruns
and crashes deliver every ticket exactly once per idempotency key and never duplicate a file line."""
from __future__ import annotations

import json

import httpx
import pytest
import sqlalchemy as sa

from pipeline.delivery import outbox as deliver
from pipeline.storage import store
from pipeline.config import ConfigError, load_settings
from pipeline.delivery.outbox import deliver_pending, ticket_file
from ticket_helpers import COMPLAINTS, WebhookReceiver, process_file, write_complaints


def make_settings(tmp_path, webhooks=None, **overrides):
    return load_settings(work_dir=tmp_path / "work", classifier="lexicon", webhooks=webhooks or {},
                         webhook_backoff_seconds=0.01, webhook_timeout_seconds=5, **overrides)


def outbox(settings) -> list[dict]:
    engine = store.connect(settings.resolved_database_url)
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(sa.select(store.outbox).order_by(store.outbox.c.outbox_id))
                .mappings()]


def file_lines(settings) -> list[dict]:
    return [json.loads(line) for path in sorted(settings.tickets_dir.glob("*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines()]


def webhook_keys(settings) -> set[str]:
    return {e["idempotency_key"] for e in outbox(settings) if e["target"] == "webhook"}


def test_webhook_retries_after_503_then_delivers_each_ticket_once_also_after_a_rerun(tmp_path):
    source = write_complaints(tmp_path / "in.csv")
    with WebhookReceiver(refuse_first=3) as receiver:
        settings = make_settings(tmp_path, {"*": {"url": receiver.url + "/tickets"}})
        records = process_file(settings, source)
        ticket_ids = {t["ticket_id"] for t in records["ticket_rows"]}
        assert len(ticket_ids) == len(COMPLAINTS)

        report = deliver_pending(store.connect(settings.resolved_database_url), settings)

        assert report.delivered == {"file": len(ticket_ids), "webhook": len(ticket_ids)}
        assert report.pending == {} and report.errors == []
        assert len(receiver.requests) == len(ticket_ids) + 3  # three refusals, retried
        assert set(receiver.processed) == webhook_keys(settings) == {f"webhook:{t}" for t in ticket_ids}
        assert receiver.duplicates == []
        for key, request in receiver.processed.items():
            body = json.loads(request["body"])
            assert key == f"webhook:{body['ticket_id']}" and request["path"] == "/tickets"
            assert {"cause", "probabilities", "explanation", "remedy", "queue", "priority", "due_at",
                    "escalation_reasons", "model_version", "status", "text"} <= set(body)
        attempts = [e["attempts"] for e in outbox(settings) if e["target"] == "webhook"]
        assert sum(attempts) == len(ticket_ids) + 3  # 3 × 503 on whichever came first, then 200

        # a rerun over the same input: no new tickets, no new deliveries, no new lines
        again = process_file(settings, source, run_id="rerun")
        assert again["ticket_rows"] == [] and again["outbox_rows"] == []
        assert len(outbox(settings)) == 2 * len(ticket_ids)
        rerun = deliver_pending(store.connect(settings.resolved_database_url), settings)
        assert rerun.delivered == {} and len(receiver.requests) == len(ticket_ids) + 3
    lines = file_lines(settings)
    assert sorted(line["ticket_id"] for line in lines) == sorted(ticket_ids)
    assert all(e["status"] == "delivered" for e in outbox(settings))


def test_a_receiver_that_stays_down_keeps_deliveries_pending_for_the_next_run(tmp_path):
    source = write_complaints(tmp_path / "in.csv")
    with WebhookReceiver(refuse_first=1000) as receiver:
        settings = make_settings(tmp_path, {"*": {"url": receiver.url}}, webhook_max_attempts=2,
                                 webhook_concurrency=2)
        process_file(settings, source)
        engine = store.connect(settings.resolved_database_url)

        report = deliver_pending(engine, settings)
        assert report.delivered == {"file": len(COMPLAINTS)}
        assert report.pending == {"webhook": len(COMPLAINTS)}
        assert "HTTP 503" in report.errors[0] and receiver.url in report.errors[0]
        assert len(receiver.requests) == 4  # the two tickets in flight, two attempts each; the others wait
        assert receiver.processed == {}

        receiver.refuse_first = 2  # the receiver is back
        report = deliver_pending(engine, settings)
        assert report.delivered == {"webhook": len(COMPLAINTS)} and report.pending == {}
        assert set(receiver.processed) == webhook_keys(settings) and receiver.duplicates == []
    assert len(file_lines(settings)) == len(COMPLAINTS)


def test_a_crash_in_the_middle_of_webhook_delivery_loses_and_duplicates_nothing(tmp_path):
    source = write_complaints(tmp_path / "in.csv")
    with WebhookReceiver() as receiver:
        # one POST at a time, so that the crash falls at a known place (the pool: test_delivery_at_volume.py)
        settings = make_settings(tmp_path, {"*": {"url": receiver.url}}, webhook_concurrency=1)
        process_file(settings, source)
        engine = store.connect(settings.resolved_database_url)
        answered = []

        def crash_on_third_answer(response):
            answered.append(response)
            if len(answered) == 3:  # the receiver has processed it, our bookkeeping has not
                raise RuntimeError("simulated crash")

        with httpx.Client(event_hooks={"response": [crash_on_third_answer]}) as crashing_client:
            with pytest.raises(RuntimeError, match="simulated crash"):
                deliver_pending(engine, settings, client=crashing_client)
        states = [e["status"] for e in outbox(settings) if e["target"] == "webhook"]
        assert states.count("delivered") == 2 and states.count("pending") == len(COMPLAINTS) - 2

        report = deliver_pending(engine, settings)

        assert report.delivered == {"webhook": len(COMPLAINTS) - 2} and report.pending == {}
        assert set(receiver.processed) == webhook_keys(settings)  # every ticket processed exactly once
        third_key = receiver.requests[2]["key"]
        assert receiver.duplicates == [third_key]  # resent with its key, and ignored by the receiver
    assert len(file_lines(settings)) == len(COMPLAINTS)


def test_a_crash_after_writing_a_ticket_file_does_not_duplicate_its_lines(tmp_path, monkeypatch):
    settings = make_settings(tmp_path)
    process_file(settings, write_complaints(tmp_path / "in.csv"))
    engine = store.connect(settings.resolved_database_url)
    real_mark_delivered = deliver._mark_delivered

    def crash_once(*args, **kwargs):
        monkeypatch.setattr(deliver, "_mark_delivered", real_mark_delivered)
        raise RuntimeError("simulated crash after the write")

    monkeypatch.setattr(deliver, "_mark_delivered", crash_once)
    with pytest.raises(RuntimeError):
        deliver_pending(engine, settings)
    written_before_crash = len(file_lines(settings))
    assert written_before_crash >= 1
    assert all(e["status"] == "pending" for e in outbox(settings))

    report = deliver_pending(engine, settings)

    assert report.recovered == written_before_crash
    assert report.delivered["file"] + report.recovered == len(COMPLAINTS)
    ids = [line["ticket_id"] for line in file_lines(settings)]
    assert len(ids) == len(set(ids)) == len(COMPLAINTS)


def test_a_torn_last_line_is_cut_and_its_ticket_written_whole(tmp_path):
    settings = make_settings(tmp_path)
    process_file(settings, write_complaints(tmp_path / "in.csv"))
    engine = store.connect(settings.resolved_database_url)
    deliver_pending(engine, settings)
    entry = next(e for e in outbox(settings) if e["queue"] == "manual-review")
    path = ticket_file(settings.tickets_dir, "manual-review")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    torn = next(line for line in lines if entry["ticket_id"] in line)
    # as if the run had died half-way through writing this line, before marking the entry delivered
    path.write_text("".join(line for line in lines if line != torn) + torn[: len(torn) // 2], encoding="utf-8")
    with engine.begin() as conn:
        conn.execute(store.outbox.update().where(store.outbox.c.outbox_id == entry["outbox_id"])
                     .values(status="pending", attempts=1))

    report = deliver_pending(engine, settings)

    assert report.delivered == {"file": 1} and report.recovered == 0
    rewritten = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert sorted(t["ticket_id"] for t in rewritten) == sorted(json.loads(line)["ticket_id"] for line in lines)


def test_ticket_files_keep_one_ticket_per_line_whatever_the_text_holds(tmp_path):
    settings = make_settings(tmp_path)
    odd = [("L1", "空调坏了\u2028没人修\u2029也没人回电\x85。", "2026-11-01", "app", "", ""),
           ("L2", "服务员态度很差\n还骂人", "2026-11-01", "app", "", "")]
    process_file(settings, write_complaints(tmp_path / "in.csv", odd))
    deliver_pending(store.connect(settings.resolved_database_url), settings)
    lines = file_lines(settings)  # str.splitlines breaks at U+2028, U+2029 and U+0085 too
    assert sorted(line["complaint_id"] for line in lines) == ["L1", "L2"]
    assert next(line for line in lines if line["complaint_id"] == "L1")["text"] == odd[0][1]


def test_queue_webhooks_and_the_bearer_token_from_the_environment(tmp_path, monkeypatch):
    source = write_complaints(tmp_path / "in.csv")
    with WebhookReceiver() as receiver:
        settings = make_settings(tmp_path, {"manual-review": {"url": receiver.url + "/review",
                                                              "token_env": "TEST_REVIEW_WEBHOOK_TOKEN"}})
        records = process_file(settings, source)
        review_tickets = {t["ticket_id"] for t in records["ticket_rows"] if t["queue"] == "manual-review"}
        assert webhook_keys(settings) == {f"webhook:{t}" for t in review_tickets} and review_tickets
        engine = store.connect(settings.resolved_database_url)

        monkeypatch.delenv("TEST_REVIEW_WEBHOOK_TOKEN", raising=False)
        report = deliver_pending(engine, settings)
        assert report.pending == {"webhook": len(review_tickets)} and receiver.requests == []
        assert "TEST_REVIEW_WEBHOOK_TOKEN" in report.errors[0]
        first_webhook_entry = next(e for e in outbox(settings) if e["target"] == "webhook")
        assert first_webhook_entry["last_error"].startswith("environment variable TEST_REVIEW_WEBHOOK_TOKEN")

        monkeypatch.setenv("TEST_REVIEW_WEBHOOK_TOKEN", "s3cret")
        report = deliver_pending(engine, settings)
        assert report.delivered == {"webhook": len(review_tickets)}
        assert {r["authorization"] for r in receiver.requests} == {"Bearer s3cret"}
        assert {r["path"] for r in receiver.requests} == {"/review"}


def test_a_token_written_into_the_settings_file_is_refused(tmp_path):
    config = tmp_path / "settings.toml"
    config.write_text('[webhooks.operations]\nurl = "https://example.invalid/hook"\ntoken = "s3cret"\n',
                      encoding="utf-8")
    with pytest.raises(ConfigError, match=r"webhooks\.operations\.token: Extra inputs are not permitted"):
        load_settings(config)


@pytest.mark.flow
def test_the_nightly_flow_delivers_after_the_run_and_a_rerun_adds_nothing(prefect_harness, tmp_path):
    from flows.nightly import nightly_flow

    source = write_complaints(tmp_path / "in.csv")
    with WebhookReceiver(refuse_first=2) as receiver:
        settings = make_settings(tmp_path, {"*": {"url": receiver.url}})
        first = nightly_flow(source=str(source), settings=settings)
        second = nightly_flow(source=str(source), settings=settings)
    n = len(COMPLAINTS)
    assert first["ticket_dir"] == str(settings.tickets_dir)
    assert first["deliveries"]["delivered"] == {"file": n, "webhook": n}
    assert first["deliveries"]["pending"] == {}
    assert sum(first["queues"].values()) == n
    assert second["counts"]["skipped_seen"] == n and second["queues"] == {}
    assert second["deliveries"]["delivered"] == {}
    assert len(receiver.processed) == n and receiver.duplicates == [] and len(receiver.requests) == n + 2
    assert len(file_lines(settings)) == n


def test_ticket_files_are_written_in_bulk_one_file_per_queue(tmp_path, monkeypatch):
    # a million tickets a night must not mean a million files or two million outbox updates
    settings = make_settings(tmp_path)
    process_file(settings, write_complaints(tmp_path / "in.csv"))
    engine = store.connect(settings.resolved_database_url)
    monkeypatch.setattr(deliver, "FILE_CHUNK", 2)
    updates = []
    sa.event.listen(engine, "before_cursor_execute", lambda _conn, _cursor, statement, *_:
                    updates.append(statement) if statement.startswith("UPDATE outbox") else None)
    report = deliver_pending(engine, settings)
    chunks = -(-len(COMPLAINTS) // 2)
    assert report.delivered == {"file": len(COMPLAINTS)} and len(updates) == 2 * chunks  # attempted, delivered
    queues = {e["queue"] for e in outbox(settings)}
    assert sorted(p.name for p in settings.tickets_dir.iterdir()) == sorted(ticket_file(settings.tickets_dir, q).name
                                                                             for q in queues)
    assert len(file_lines(settings)) == len(COMPLAINTS)
