"""Where the batch phase's main process spends its time (issue 12): one in-process ``BatchRun`` over the
throughput benchmark's input, no Prefect.

    nice -n 10 .venv/bin/python -m bench.batch_phase [--rows 100000] [--cprofile 40]

Prints, per step of ``BatchRun``, the wall seconds and the main thread's CPU per row: ``prepare`` (read,
map, validate, mask the metadata), ``history`` (stored complaints of the batch's customers), ``build``
(``build_records``), ``write`` (``store_batch``: one transaction) and ``wait`` (for the worker processes'
predictions). The main process competes with the 2 workers for the 2 cores, so its CPU per row is what
the batch phase loses to classification; under load read the CPU figures more than the wall ones.
``--cprofile N``: also the N functions of the main thread with the most own time.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from pathlib import Path

from bench.throughput import make_input

STEPS = {"prepare": "prepare_batch", "build": "build_records", "write": "store_batch"}


class StepTimes:
    """Wall seconds and main-thread CPU seconds per step."""

    def __init__(self):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def timed(self, step: str, action):
        def wrapper(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return action(*args, **kwargs)
            finally:
                self.wall[step] = self.wall.get(step, 0.0) + time.perf_counter() - wall
                self.cpu[step] = self.cpu.get(step, 0.0) + time.thread_time() - cpu
        return wrapper


def measure(rows: int, work: Path, top: int) -> None:
    from pipeline.config import load_settings
    from pipeline.ingest.sources import iter_raw_chunks
    from pipeline.model.classify import load_model
    from pipeline.nightly import batch
    from pipeline.storage import store

    source = work / "input.csv"
    make_input(rows, source)
    settings = load_settings(work_dir=work / "work", segmenter_engine="rjieba")
    engine = store.connect(settings.resolved_database_url)
    model = load_model(settings)
    store.start_run(engine, "batch-phase", str(source), model.version, None)
    times = StepTimes()
    for step, name in STEPS.items():
        setattr(batch, name, times.timed(step, getattr(batch, name)))
    batch.store.customer_history = times.timed("history", store.customer_history)
    profile = cProfile.Profile()
    with batch.BatchRun(settings, engine, model, run_id="batch-phase") as run:
        wait = times.timed("wait", lambda classifying: classifying.predictions.result())
        store_batch = run.store
        run.store = lambda classifying: (wait(classifying), store_batch(classifying))[1]
        started, process_cpu = time.perf_counter(), time.process_time()
        if top:
            profile.enable()
        counts = run.run(iter_raw_chunks(str(source), chunk_size=settings.batch_size))
        profile.disable()
        wall, process_cpu = time.perf_counter() - started, time.process_time() - process_cpu
    batch.store.customer_history = store.customer_history
    assert counts.rows_read == rows == counts.classified + counts.quarantined, counts
    print(f"{rows:,} rows in {wall:.1f} s; main process CPU {process_cpu:.1f} s = {process_cpu / rows * 1e6:.0f} µs "
          f"per row (all its threads); load average {os.getloadavg()[0]:.1f}")
    print("| step | wall s | main thread CPU µs per row |\n|---|---|---|")
    for step in ("prepare", "history", "wait", "build", "write"):
        print(f"| {step} | {times.wall.get(step, 0.0):.1f} | {times.cpu.get(step, 0.0) / rows * 1e6:.0f} |")
    if top:
        pstats.Stats(profile).sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--cprofile", type=int, default=0, metavar="N")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-batch-phase-") as tmp:
        measure(args.rows, Path(tmp), args.cprofile)


if __name__ == "__main__":
    main()
