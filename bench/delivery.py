"""Outbox delivery throughput: N tickets to per-queue JSONL files, then to a webhook on 127.0.0.1, plus the
cost of escalation checks per complaint. Real SQLite, real files, a real local HTTP server.

    python -m bench.delivery [--tickets 5000]
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

from pipeline.storage import store
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

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=5000)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Accepting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(work_dir=Path(tmp), webhooks={"*": {"url": url}})
        engine = store.connect(settings.resolved_database_url)
        rows, predictions = synthetic_batch(args.tickets)
        escalator = Escalator.from_settings(settings)
        now = store.utcnow()

        started = time.perf_counter()
        records = build_records(rows, predictions, router=Router.from_settings(settings), model_version="bench",
                                run_id="bench", now=now, escalator=escalator, customer_history={},
                                webhooks=settings.webhooks)
        build_seconds = time.perf_counter() - started
        store.start_run(engine, "bench", "bench", "bench", None)
        store.write_batch(engine, quarantine_rows=[], run_id="bench", counts={"classified": args.tickets}, **records)
        escalated = sum(1 for t in records["ticket_rows"] if t["escalation_reasons"] != "[]")

        started = time.perf_counter()
        first = deliver_pending(engine, settings)
        deliver_seconds = time.perf_counter() - started
        started = time.perf_counter()
        second = deliver_pending(engine, settings)
        rerun_seconds = time.perf_counter() - started
    server.shutdown()
    n = args.tickets
    print(f"build_records with escalation: {n} complaints in {build_seconds:.2f} s "
          f"({n / build_seconds:,.0f}/s), {escalated} escalated")
    print(f"delivery (files + one webhook POST per ticket, sequential): {first.delivered} in {deliver_seconds:.2f} s "
          f"({n / deliver_seconds:,.0f} tickets/s), pending afterwards {first.pending or 0}")
    print(f"rerun with nothing pending: {second.delivered or 'nothing delivered'} in {rerun_seconds * 1000:.0f} ms")


if __name__ == "__main__":
    main()
