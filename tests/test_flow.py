"""Real Prefect flow runs under one test harness: counts, idempotent reruns, watermark, kill and resume."""
import logging
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline.storage import store
from pipeline.config import PROJECT_ROOT

SAMPLE = PROJECT_ROOT / "data" / "samples" / "complaints_sample.csv"
pytestmark = pytest.mark.flow


def _table_counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        counts = {t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
                  for t in ("complaints", "predictions", "tickets", "quarantine")}
    engine.dispose()
    return counts


def test_nightly_run_accounts_for_every_row_and_reruns_add_nothing(prefect_harness, lexicon_settings, caplog):
    from flows.nightly import nightly_flow

    task_log = logging.getLogger("prefect.task_runs")  # Prefect's loggers do not propagate to the root
    task_log.addHandler(caplog.handler)
    try:
        first = nightly_flow(source=str(SAMPLE), settings=lexicon_settings)
    finally:
        task_log.removeHandler(caplog.handler)
    rows_in_file = len(pd.read_csv(SAMPLE, keep_default_na=False))
    # the progress line in the run's log: rows of the counted file, rows/s
    assert any(r.getMessage().startswith(f"done: {rows_in_file} of {rows_in_file} (100%) rows,")
               and "rows/s" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
    counts = first["counts"]
    assert counts["rows_read"] == rows_in_file
    assert counts["classified"] + counts["quarantined"] + counts["skipped_seen"] == rows_in_file
    assert counts["quarantined"] == 4  # the sample's four planted bad rows
    assert first["status"] == "completed"
    stored = _table_counts(lexicon_settings.resolved_database_url)
    assert stored == {"complaints": counts["classified"], "predictions": counts["classified"],
                      "tickets": counts["classified"], "quarantine": 4}

    second = nightly_flow(source=str(SAMPLE), settings=lexicon_settings)
    assert second["counts"]["classified"] == 0
    assert second["counts"]["skipped_seen"] == counts["classified"]
    assert second["counts"]["quarantined"] == 4
    assert _table_counts(lexicon_settings.resolved_database_url) == stored

    engine = store.connect(lexicon_settings.resolved_database_url)
    masked = store.read_table(engine, store.complaints)["text_masked"]
    assert not masked.str.contains(r"1[3-9]\d{9}").any()
    runs = store.read_table(engine, store.runs)
    assert runs["status"].tolist() == ["completed", "completed"]
    engine.dispose()


def test_watermark_skips_older_complaints(prefect_harness, lexicon_settings):
    from flows.nightly import nightly_flow

    since = pd.Timestamp("2026-11-01")
    summary = nightly_flow(source=str(SAMPLE), since=since.to_pydatetime(), settings=lexicon_settings)
    frame = pd.read_csv(SAMPLE, keep_default_na=False)
    dates = pd.to_datetime(frame["created_at"], errors="coerce", format="%Y-%m-%d %H:%M")
    older_valid = int(((dates < since) & (frame["text"].str.strip() != "")).sum())
    assert summary["counts"]["skipped_before_since"] >= older_valid - 1
    assert summary["counts"]["classified"] < len(frame) - older_valid + 1


def _run_cli(args, work_dir, prefect_home):
    env = {**os.environ, "COMPLAINTS_CLASSIFIER": "lexicon", "COMPLAINTS_BATCH_SIZE": "40",
           "PREFECT_HOME": str(prefect_home)}
    env.pop("PREFECT_API_URL", None)
    return subprocess.Popen([sys.executable, "-m", "pipeline", "run", *args, "--work-dir", str(work_dir)],
                            env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _many_samples(path, copies: int):
    """The sample ``copies`` times over with ids of their own (rows of the same text on other dates stay
    distinct complaints): enough batches that a kill lands between two of them."""
    sample = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    pd.concat([sample.assign(id=sample["id"] + f"-{n}") for n in range(copies)]).to_csv(path, index=False)
    return path


def test_killed_run_resumes_to_the_same_rows(tmp_path):
    """Kill a real `complaints run` after some batches committed; a second run ends where an
    uninterrupted run ends: same complaints, predictions, tickets and quarantine rows, none twice."""
    work, clean, prefect_home = tmp_path / "killed", tmp_path / "clean", tmp_path / "prefect-home"
    url = f"sqlite:///{work / 'complaints.db'}"
    # 200 batches of 40: the sample alone (10 batches of the fast lexicon model) could be stored whole
    # between two looks at the database, and the kill would land after the last batch
    source = _many_samples(tmp_path / "many.csv", 20)
    uninterrupted = _run_cli([str(source)], clean, prefect_home)  # also initialises the Prefect home
    output = uninterrupted.communicate(timeout=300)[0].decode()
    assert uninterrupted.returncode == 0, output

    process = _run_cli([str(source)], work, prefect_home)
    deadline = time.time() + 180
    while True:
        assert time.time() < deadline, "the run stored nothing within 180 s"
        time.sleep(0.2)
        if (work / "complaints.db").exists():
            try:
                if _table_counts(url)["complaints"] >= 80:
                    break
            except sa.exc.OperationalError:
                pass
        assert process.poll() is None, process.stdout.read().decode()
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = _table_counts(url)["complaints"]
    assert 0 < partial < _table_counts(f"sqlite:///{clean / 'complaints.db'}")["complaints"]

    resumed = _run_cli([str(source)], work, prefect_home)
    output = resumed.communicate(timeout=300)[0].decode()
    assert resumed.returncode == 0, output
    assert _table_counts(url) == _table_counts(f"sqlite:///{clean / 'complaints.db'}")


HOLD_LEASE = """
import sys, time
from pipeline.storage import runlock
from pipeline.storage import store
engine = store.connect(sys.argv[1])
runlock.acquire(engine, "20261123T020000-holder")
store.start_run(engine, "20261123T020000-holder", "elsewhere.csv", "v", None)
print("held", flush=True)
time.sleep(120)
"""


def test_a_run_refuses_a_database_held_by_a_live_run_and_takes_over_from_a_dead_one(prefect_harness, tmp_path):
    """Overlapping runs would race on the same complaints and deliver tickets twice: the second one stops
    with exit code 75 and a message; once the holder's process is gone, the next run takes over."""
    work = tmp_path / "work"
    url = f"sqlite:///{work / 'complaints.db'}"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LEASE, url], cwd=PROJECT_ROOT, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"held\n"  # a live run holds the lease
        refused = _run_cli([str(SAMPLE)], work, tmp_path / "prefect-home")
        output = refused.communicate(timeout=300)[0].decode()
        assert refused.returncode == 75, output
        assert "20261123T020000-holder" in output and "holds this database" in output
        assert _table_counts(url)["complaints"] == 0
    finally:
        holder.kill()
        holder.wait()

    from flows.nightly import nightly_flow
    from pipeline.config import load_settings

    summary = nightly_flow(source=str(SAMPLE), settings=load_settings(work_dir=work, classifier="lexicon"))
    assert summary["status"] == "completed" and summary["counts"]["classified"] == 400
    engine = store.connect(url)
    runs = store.read_table(engine, store.runs).set_index("run_id")
    assert runs.loc["20261123T020000-holder", "status"] == "failed"
    assert "lease taken over" in runs.loc["20261123T020000-holder", "error"]
    with engine.connect() as conn:  # the finished run released its lease
        assert conn.execute(sa.text("SELECT COUNT(*) FROM run_lock")).scalar_one() == 0
    engine.dispose()
