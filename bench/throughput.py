"""Nightly-run throughput at 100k–1M complaints, against the segmenter and the model alone (issue 12).

    nice -n 10 .venv/bin/python -m bench.throughput [--sizes 100000 300000 1000000] [--engine rjieba]

For each size: a CSV of unique ids and unique texts (the shipped training texts and demo sample, then each
text joined with a clause of another), and in the same run, each in its own process:
- ``segment``: the segmenter alone on 2 processes;
- ``model``: the model alone classifying the same texts in the batch size, on its 2 worker processes;
- ``nightly``: the whole Prefect flow as ``complaints run`` runs it (temporary server start, the batch path,
  deadlines, delivery, trend report), with the time of every batch;
- ``rerun``: the same flow again over the same file, every row already stored (the idle rerun).
Peak RSS is the largest single process of the measurement; CPU seconds are those of all its processes together
(both sampled from /proc): the core-seconds a step costs, which the 2 cores bound. Figures are printed, not
asserted; the machine may be shared — read ratios measured in the same run more than seconds.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import PROJECT_ROOT

_CLAUSE_END = re.compile(r"[，。！？,.!?；;\s]")


def base_texts() -> list[str]:
    """The distinct texts of the training set and the demo sample (never the evaluation sets)."""
    files = [PROJECT_ROOT / "data" / "training" / "labelled.csv",
             PROJECT_ROOT / "data" / "samples" / "complaints_sample.csv"]
    texts = pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False)["text"] for f in files]).str.strip()
    return list(dict.fromkeys(t for t in texts if len(t) >= 5))


def unique_texts(size: int) -> list[str]:
    """``size`` distinct texts: each base text, then each joined with the first clause of another."""
    base = base_texts()
    clauses = [_CLAUSE_END.split(t, 1)[0][:24] for t in base]
    seen: set[str] = set()
    texts: list[str] = []
    i = 0
    while len(texts) < size:
        a, k = i % len(base), i // len(base)
        text = base[a] if k == 0 else f"{base[a]}，{clauses[(a + k) % len(base)]}"
        if text not in seen:
            seen.add(text)
            texts.append(text)
        i += 1
    return texts


def make_input(size: int, path: Path) -> int:
    texts = unique_texts(size)
    # yesterday's complaints, as a nightly export holds them (not months-old ones whose deadlines all passed)
    newest = pd.Timestamp.now().floor("s") - pd.Timedelta(hours=1)
    created = newest - pd.to_timedelta(np.arange(size) % 86_400, unit="s")
    pd.DataFrame({"id": [f"B{i:07d}" for i in range(size)], "text": texts,
                  "created_at": created.strftime("%Y-%m-%d %H:%M:%S"),
                  "channel": [("app", "hotline", "web")[i % 3] for i in range(size)]}).to_csv(path, index=False)
    return sum(map(len, texts))


class ProcessTree:
    """This process and its descendants, sampled every 0.2 s: the largest resident set of any one of them
    (VmHWM) and the CPU seconds they used between enter and exit, all processes together (the core-seconds a
    step costs: a process that ends between two samples loses at most its last 0.2 s)."""

    def __init__(self):
        self.peak_kb = 0
        self._ticks: dict[tuple[int, str], int] = {}  # (pid, start time) → utime + stime seen last
        self._own_ticks_at_start = _cpu_ticks(os.getpid())[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        from pipeline.nightly.reaper import descendants

        while not self._stop.wait(0.2):
            self._look(descendants(os.getpid()))

    def _look(self, children) -> None:
        for pid in [os.getpid(), *children]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                started, ticks = _cpu_ticks(pid)
            except OSError:
                continue
            self._ticks[(pid, started)] = ticks
            found = re.search(r"VmHWM:\s+(\d+)", status)
            if found:
                self.peak_kb = max(self.peak_kb, int(found.group(1)))

    def __enter__(self) -> "ProcessTree":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._look([])

    @property
    def mb(self) -> float:
        return round(self.peak_kb / 1024, 1)

    @property
    def cpu_seconds(self) -> float:
        return round((sum(self._ticks.values()) - self._own_ticks_at_start) / os.sysconf("SC_CLK_TCK"), 1)


def _cpu_ticks(pid: int) -> tuple[str, int]:
    """A process's start time (to tell a reused pid apart) and its user + system CPU in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[19], int(fields[11]) + int(fields[12])


def _segment_slice(args: tuple[str, list[str]]) -> int:
    from pipeline.text.segment import Segmenter

    engine, texts = args
    segmenter = Segmenter(engine=engine)
    return sum(len(segmenter.cut(t)) for t in texts)


def measure(mode: str, path: Path, work: Path, engine: str) -> dict:
    """One measurement in this process: seconds, rows/s, peak RSS (and per-batch seconds for the flow)."""
    from pipeline.config import load_settings

    settings = load_settings(work_dir=work, segmenter_engine=engine)
    if mode in ("segment", "model"):  # the texts are their input
        texts = pd.read_csv(path, keep_default_na=False)["text"].tolist()
        rows = len(texts)
    else:  # counted as a stream: the flow's process holds what `complaints run` holds, not the input as well
        with path.open(encoding="utf-8", newline="") as handle:
            rows = sum(1 for _ in csv.reader(handle)) - 1
    result: dict = {"mode": mode, "rows": rows}
    with ProcessTree() as tree:
        started = time.perf_counter()
        if mode == "segment":
            halves = [(engine, list(half)) for half in np.array_split(np.array(texts, dtype=object), 2)]
            with ProcessPoolExecutor(2) as pool:
                list(pool.map(_segment_slice, halves))
        elif mode == "model":
            from pipeline.model.classify import ParallelClassifier, load_model

            with ParallelClassifier(load_model(settings), 2) as classifier:
                for start in range(0, len(texts), settings.batch_size):
                    classifier.classify(texts[start:start + settings.batch_size])
        else:  # nightly, rerun: the flow as `complaints run` calls it
            from flows.nightly import nightly_flow
            from pipeline.nightly.progress import watching

            batch_ends: list[float] = []
            with watching(lambda _progress: batch_ends.append(time.perf_counter())):
                summary = nightly_flow(source=str(path), settings=settings)
            counts = summary["counts"]
            done = counts["classified" if mode == "nightly" else "skipped_seen"]
            assert counts["rows_read"] == rows == done + counts["quarantined"], counts
            result["classified"] = counts["classified"]
            result.update(_batch_times(batch_ends))
            if batch_ends:  # the rest is deadlines, delivery and the trend report
                result["last_batch_stored_at_s"] = round(batch_ends[-1] - started, 1)
        seconds = time.perf_counter() - started
    return {**result, "seconds": round(seconds, 1), "rows_per_second": round(rows / seconds),
            "peak_rss_mb": tree.mb, "cpu_seconds": tree.cpu_seconds}


def _batch_times(ends: list[float]) -> dict:
    """Mean seconds per batch of the first and of the last tenth of the batches (the first batch's time runs
    from the one before it ended, so the start-up before the first batch is left out)."""
    times = np.diff(ends)
    if len(times) < 10:
        return {}
    tenth = len(times) // 10
    first, last = float(times[:tenth].mean()), float(times[-tenth:].mean())
    return {"batches": len(ends), "first_tenth_s": round(first, 3), "last_tenth_s": round(last, 3)}


def _run_one(mode: str, path: Path, work: Path, engine: str) -> dict:
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
           "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    out = subprocess.run([sys.executable, "-m", "bench.throughput", "--engine", engine, "--one", mode, str(path),
                          str(work)], capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"{mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--engine", default="rjieba")  # the product's default engine
    parser.add_argument("--modes", nargs="+", default=["segment", "model", "nightly", "rerun"])
    parser.add_argument("--one", nargs=3, metavar=("MODE", "PATH", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], Path(args.one[1]), Path(args.one[2]), args.engine)))
        return
    print(f"cores: {os.cpu_count()}, engine: {args.engine}, load average at start: {os.getloadavg()[0]:.1f}",
          flush=True)
    print("| rows | step | seconds | last batch stored at s | rows/s | peak RSS MB (largest process) "
          "| per batch, first → last tenth | CPU s, all processes (core-µs per row) |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        for size in args.sizes:
            path, work = Path(tmp) / f"bench_{size}.csv", Path(tmp) / f"work_{size}"
            make_input(size, path)
            results = {}
            for mode in args.modes:
                r = results[mode] = _run_one(mode, path, work, args.engine)
                per_batch = (f"{r['first_tenth_s']:.2f} s → {r['last_tenth_s']:.2f} s "
                             f"({r['last_tenth_s'] / r['first_tenth_s']:.2f}×)" if "first_tenth_s" in r else "")
                print(f"| {size:,} | {mode} | {r['seconds']} | {r.get('last_batch_stored_at_s', '')} | "
                      f"{r['rows_per_second']:,} | {r['peak_rss_mb']:,} | {per_batch} | "
                      f"{r['cpu_seconds']} ({r['cpu_seconds'] / size * 1e6:.0f}) |", flush=True)
            if "nightly" in results and "model" in results:
                ratio = results["nightly"]["rows_per_second"] / results["model"]["rows_per_second"]
                print(f"| {size:,} | end to end ÷ model alone | | | {ratio:.2f}× | | | |", flush=True)
            print(f"load average now: {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
