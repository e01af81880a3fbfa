"""Shared by the routing, escalation, delivery and review tests: the nightly run's batch path called
directly (no Prefect), with the lexicon classifier, on a real CSV and a real SQLite file."""
from __future__ import annotations

import csv
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import sqlalchemy as sa

from pipeline.storage import store
from pipeline.model.classify import load_lexicon_model
from pipeline.ingest.intake import Intake
from pipeline.nightly.batch import BatchRun

COMPLAINTS = [
    # id, text, created_at, channel, store, customer_id
    ("C1", "服务员态度很差，说话很不耐烦，还对我大吼大叫", "2026-11-01 10:00", "app", "北京朝阳店", "U1"),
    ("C2", "排队等了两个小时也没人处理，流程太混乱了，我要打12315投诉你们", "2026-11-02 11:00", "hotline", "上海浦东店", "U2"),
    ("C3", "空调坏了一整晚，房间里的电线漏电，孩子触电受伤了", "2026-11-03 12:00", "web", "北京朝阳店", "U3"),
    ("C4", "热水器坏了，洗澡没有热水，网络也连不上", "2026-11-04 09:00", "app", "广州天河店", "U1"),
    ("C5", "今天天气不错", "2026-11-05 09:30", "wechat", "成都高新店", ""),
    ("C6", "乱收费，价格不透明，经理也不管", "2026-11-06 15:00", "12315", "上海浦东店", "U4"),
]


def write_complaints(path: Path, rows=COMPLAINTS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "created_at", "channel", "store", "customer_id"])
        writer.writerows(rows)
    return path


def process_file(settings, source: Path | str, *, run_id: str = "test-run", now: datetime | None = None,
                 model=None, table: str | None = None, query: str | None = None) -> dict:
    """One run over ``source`` (a file, folder, glob or database URL) through the nightly batch path,
    recording what it took; returns the stored records. ``model``: the lexicon classifier unless given."""
    engine = store.connect(settings.resolved_database_url)
    model = model or load_lexicon_model(settings.lexicon_path)
    now = now or store.utcnow()
    store.start_run(engine, run_id, str(source), model.version, None)
    written: dict[str, list] = {}

    def keep(records: dict) -> None:
        for name, rows in records.items():
            written.setdefault(name, []).extend(rows)

    with BatchRun(settings, engine, model, run_id=run_id, clock=lambda: now, after_batch=keep) as batches:
        intake = Intake(engine, str(source), settings, table=table, query=query)
        batches.run(intake.chunks())
    intake.record(run_id)
    store.finish_run(engine, run_id, {}, "completed")
    return written


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 (ephemeral port) that refuses the first ``refuse_first`` requests
    with 503, then answers the next ``throttle_first`` with 429 and ``Retry-After: retry_after`` (a callable
    gives the header's value at that moment), then accepts; it honours Idempotency-Key: a key seen before is
    acknowledged, not processed. ``delay_seconds``: a slow receiver. It counts the requests in flight."""

    def __init__(self, refuse_first: int = 0, delay_seconds: float = 0.0, port: int = 0, throttle_first: int = 0,
                 retry_after="1"):
        self.refuse_first, self.throttle_first, self.retry_after = refuse_first, throttle_first, retry_after
        self.requests: list[dict] = []  # every request received, refused or not
        self.processed: dict[str, dict] = {}  # idempotency key → first accepted body
        self.duplicates: list[str] = []
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a production receiver would

            def do_POST(self):  # noqa: N802 (http.server's naming)
                arrived = time.monotonic()
                with receiver._lock:
                    receiver.in_flight += 1
                    receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
                time.sleep(delay_seconds)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                key = self.headers.get("Idempotency-Key")
                with receiver._lock:
                    request = {"path": self.path, "key": key, "body": body, "arrived": arrived,
                               "authorization": self.headers.get("Authorization")}
                    receiver.requests.append(request)
                    refused = len(receiver.requests) <= receiver.refuse_first
                    throttled = not refused and len(receiver.requests) <= receiver.refuse_first + receiver.throttle_first
                    if not refused and not throttled:
                        if key in receiver.processed:
                            receiver.duplicates.append(key)
                        else:
                            receiver.processed[key] = {"path": self.path, "body": body}
                    request["status"] = 503 if refused else 429 if throttled else 200
                    request["answered"] = time.monotonic()
                    receiver.in_flight -= 1
                self.send_response(request["status"])
                if throttled:
                    retry_after = receiver.retry_after
                    self.send_header("Retry-After", retry_after() if callable(retry_after) else retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "WebhookReceiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def everything_stored(settings) -> str:
    """Every row of every table, as text: what a search for leaked personal data reads."""
    engine = store.connect(settings.resolved_database_url)
    with engine.connect() as conn:
        dump = "\n".join(str(tuple(row)) for table in store.metadata.sorted_tables
                         for row in conn.execute(sa.select(table)))
    engine.dispose()
    return dump


def text_of(path: Path) -> str:
    """A written file as text (a workbook's cell values)."""
    from openpyxl import load_workbook

    if path.suffix == ".xlsx":
        book = load_workbook(path)
        return "\n".join(str(cell) for sheet in book for row in sheet.iter_rows(values_only=True) for cell in row)
    return path.read_bytes().decode("utf-8", errors="replace")
