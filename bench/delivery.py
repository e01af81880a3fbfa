"""Outbox delivery throughput: N tickets to per-queue JSONL files, then to a webhook on 127.0.0.1 that takes
``--latency-ms`` to answer, one POST at a time and ``--concurrency`` at a time; plus the cost of escalation
checks per complaint. Real SQLite, real files, a real local HTTP server.

    python -m bench.delivery [--tickets 2000] [--latency-ms 20] [--concurrency 8]
"""
from __future__ import annotations

import argparse
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.storage import runlock, store
from pipeline.model.classify import decide, ReviewPolicy
from pipeline.config import load_settings
from pipeline.delivery.outbox import deliver_pending
from pipeline.routing.escalation import Escalator
from pipeline.nightly.batch import build_records
from pipeline.routing.router import Router
from pipeline.labels import CAUSES, NONE_LABEL

TEXTS = ["服务员态度很差，说话很不耐烦", "排队两个小时没人管，我要打12315投诉", "空调坏了，插座漏电，孩子受伤了",
         "乱收费，价格不透明", "今天天气不错"]


class Accepting(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a production receiver would
    latency_seconds = 0.0

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(self.latency_seconds)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def synthetic_batch(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({
        "complaint_id": [f"B{i:07d}" for i in range(n)], "text": [TEXTS[i % len(TEXTS)] for i in range(n)],
        "created_at": pd.Timestamp("2026-11-01") + pd.to_timedelta(rng.integers(0, 30 * 24, n), unit="h"),
        "channel": "app", "metadata": [{"store": "北京朝阳店"} for _ in range(n)], "source": "bench",
        "source_row": range(1, n + 1), "text_truncated": False, "content_hash": "h",
        "customer_key": [f"U{i % (n // 3 + 1)}" for i in range(n)]})
    labels = list(CAUSES) + [NONE_LABEL]
    probabilities = rng.dirichlet(np.full(len(labels), 0.3), n)
    predictions = decide(probabilities, labels, ReviewPolicy()).assign(explanation="")
    return rows, predictions


def set_pending(engine, target: str, status: str = "pending") -> None:
    """Put every outbox entry of ``target`` back (or aside), so each measurement delivers the same tickets."""
    with engine.begin() as conn:
        conn.execute(store.outbox.update().where(store.outbox.c.target == target)
                     .values(status=status, attempts=0, delivered_at=None))


def timed_delivery(engine, settings, keeper) -> tuple[dict, float]:
    started = time.perf_counter()
    report = deliver_pending(engine, settings, keeper=keeper)
    return report, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=20.0, help="the webhook receiver's time to answer")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    Accepting.latency_seconds = args.latency_ms / 1000
    server = ThreadingHTTPServer(("127.0.0.1", 0), Accepting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    n = args.tickets
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(work_dir=Path(tmp), webhooks={"*": {"url": url}})
        engine = store.connect(settings.resolved_database_url)
        rows, predictions = synthetic_batch(n)
        escalator = Escalator.from_settings(settings)
        now = store.utcnow()

        started = time.perf_counter()
        records = build_records(rows, predictions, router=Router.from_settings(settings), model_version="bench",
                                run_id="bench", now=now, escalator=escalator, customer_history={},
                                webhooks=settings.webhooks)
        build_seconds = time.perf_counter() - started
        store.start_run(engine, "bench", "bench", "bench", None)
        store.write_batch(engine, quarantine_rows=[], run_id="bench", counts={"classified": n}, **records)
        escalated = sum(1 for t in records["ticket_rows"] if t["escalation_reasons"] != "[]")

        keeper = runlock.LeaseKeeper(engine, runlock.acquire(engine, "bench"))  # fenced writes, as in a run
        set_pending(engine, "webhook", status="held")  # files alone first
        files, files_seconds = timed_delivery(engine, settings, keeper)
        webhooks = {}
        for concurrency in (1, args.concurrency):
            set_pending(engine, "webhook")
            webhooks[concurrency] = timed_delivery(
                engine, settings.model_copy(update={"webhook_concurrency": concurrency}), keeper)
        rerun, rerun_seconds = timed_delivery(engine, settings, keeper)
    server.shutdown()
    print(f"build_records with escalation: {n} complaints in {build_seconds:.2f} s "
          f"({n / build_seconds:,.0f}/s), {escalated} escalated")
    print(f"ticket files (bulk): {files.delivered} in {files_seconds:.2f} s ({n / files_seconds:,.0f} tickets/s)")
    for concurrency, (report, seconds) in webhooks.items():
        print(f"webhook, receiver answering in {args.latency_ms:g} ms, concurrency {concurrency}: {report.delivered} "
              f"in {seconds:.2f} s ({n / seconds:,.0f} tickets/s), pending afterwards {report.pending or 0}")
    print(f"rerun with nothing pending: {rerun.delivered or 'nothing delivered'} in {rerun_seconds * 1000:.0f} ms")


if __name__ == "__main__":
    main()
