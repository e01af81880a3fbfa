"""The nightly run's work after the batches, step by step, on a stored run (issue 12).

    nice -n 10 .venv/bin/python -m bench.after_batches --rows 300000 [--keep var/after-300k]

Fills a store once with the batch path alone (``BatchRun`` over ``bench.throughput``'s input of that many
rows, no Prefect: the state the flow's batches leave), keeps a copy in ``--keep`` to reuse, then on a fresh
copy times each step the flow runs after its batches, as the flow calls them (without the Prefect task and
artifact calls): the run summary, the deadline sweep with its markdown, delivery of the outbox, the trend
report with its three files and its artifact texts. Then the same steps again on the same store: what an
idle rerun's tail does (nothing new to escalate or deliver, the same report). Seconds and the peak RSS
growth of each step (VmHWM, reset before each step) are printed, with the CPU seconds of this process (the
database is SQLite in-process: less swayed by a shared machine than the seconds); nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.throughput import make_input


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


def fill_store(rows: int, keep: Path) -> None:
    """The input CSV and a store holding one run's batches (no sweep, delivery or report yet)."""
    from pipeline.config import load_settings
    from pipeline.ingest.intake import Intake
    from pipeline.model.classify import load_model
    from pipeline.nightly.batch import BatchRun
    from pipeline.storage import store

    keep.mkdir(parents=True, exist_ok=True)
    source = keep / "input.csv"
    make_input(rows, source)
    settings = load_settings(work_dir=keep / "work")
    engine = store.connect(settings.resolved_database_url)
    model = load_model(settings)
    run_id = "bench-first-run"
    store.start_run(engine, run_id, str(source), model.version, None)
    started = time.perf_counter()
    with BatchRun(settings, engine, model, run_id=run_id) as batches:
        counts = batches.run(Intake(engine, str(source), settings).chunks())
    store.finish_run(engine, run_id, counts.as_dict(), "completed")
    engine.dispose()
    print(f"filled {keep} with {rows:,} rows in {time.perf_counter() - started:.0f} s", flush=True)


def time_steps(work: Path, run_id: str, label: str) -> dict[str, float]:
    """Each post-batch step of the flow on the store in ``work``, timed."""
    from flows.nightly import nightly_flow  # noqa: F401  the flow's imports, outside the timings
    from pipeline.config import load_settings
    from pipeline.delivery.outbox import deliver_pending
    from pipeline.nightly.summary import run_summary
    from pipeline.reporting.report import artifact_table, build_report, render_markdown, write_report_files
    from pipeline.routing.escalation import Escalator
    from pipeline.routing.router import Router
    from pipeline.storage import runlock, store
    from pipeline.tickets.sla import breach_markdown, escalate_breaches

    settings = load_settings(work_dir=work)
    engine = store.connect(settings.resolved_database_url)
    router, escalator = Router.from_settings(settings), Escalator.from_settings(settings)
    seconds: dict[str, float] = {}

    def timed(name: str, action):
        _reset_peak()
        before = _rss_mb("VmRSS")
        started, cpu = time.perf_counter(), time.process_time()
        result = action()
        seconds[name] = time.perf_counter() - started
        print(f"| {label} | {name} | {seconds[name]:.2f} | {time.process_time() - cpu:.2f} | "
              f"{_rss_mb('VmHWM') - before:+.0f} |", flush=True)
        return result

    def sweep():
        found = escalate_breaches(engine, router.sla_clock, escalator.rules.breach, now=store.utcnow(),
                                  run_id=run_id, webhooks=settings.webhooks)
        breach_markdown(found)
        return found.summary()

    def report():
        built = build_report(engine, settings)
        if built is not None:
            paths = write_report_files(built, settings.reports_dir, f"trends-{run_id}")
            render_markdown(built, report_path=paths["html"].resolve())
            artifact_table(built)

    with runlock.held(engine, run_id) as lease:
        timed("run summary", lambda: run_summary(engine, run_id, settings, None))
        timed("deadline sweep", sweep)
        timed("delivery", lambda: deliver_pending(engine, settings, keeper=runlock.LeaseKeeper(engine, lease)))
        timed("trend report", report)
    engine.dispose()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="folder of the filled store, made once and reused")
    args = parser.parse_args()
    keep = args.keep or Path(tempfile.mkdtemp(prefix="bench-after-")) / f"store-{args.rows}"
    if not (keep / "work" / "complaints.db").exists():
        fill_store(args.rows, keep)
    print(f"rows: {args.rows:,}, load average at start: {os.getloadavg()[0]:.1f}")
    print("| night | step | seconds | CPU seconds (this process) | peak RSS growth MB |\n|---|---|---|---|---|",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-after-") as tmp:
        work = Path(tmp) / "work"
        shutil.copytree(keep / "work", work)
        first = time_steps(work, "bench-first-run", "first")
        again = time_steps(work, "bench-first-run", "idle rerun")
    for label, seconds in (("first", first), ("idle rerun", again)):
        print(f"| {label} | all steps | {sum(seconds.values()):.2f} | | |")
    print(f"load average now: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
