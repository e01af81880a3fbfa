"""Nothing a run starts outlives it: `kill -9` of a real `complaints run` leaves no Prefect server and no
worker behind, and the next run marks the killed one Crashed in Prefect and failed in the runs table."""
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from pipeline.storage import store
from pipeline.config import PROJECT_ROOT
from pipeline.nightly.reaper import descendants, end_processes


def _cli(args, work_dir, prefect_home):
    env = {**os.environ, "COMPLAINTS_CLASSIFIER": "lexicon", "COMPLAINTS_BATCH_SIZE": "2500",
           "COMPLAINTS_WORKERS": "2", "PREFECT_HOME": str(prefect_home)}
    env.pop("PREFECT_API_URL", None)
    return subprocess.Popen([sys.executable, "-m", "pipeline", "run", *args, "--work-dir", str(work_dir)],
                            env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _stored(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(store.complaints)).scalar_one()
    except sa.exc.OperationalError:
        return 0
    finally:
        engine.dispose()


def _alive(processes: dict[int, int]) -> list[int]:
    from pipeline.nightly.reaper import _stat

    return [pid for pid, started in processes.items() if (_stat(pid) or (0, None))[1] == started]


@pytest.mark.flow
def test_kill_9_leaves_no_process_behind_and_the_next_run_marks_it_crashed(tmp_path):
    source = tmp_path / "big.csv"
    with source.open("w", encoding="utf-8") as handle:
        handle.write("id,text,created_at\n")
        for i in range(6000):
            handle.write(f"K{i},第{i}位顾客投诉：服务员态度很差，排队等了很久,2026-11-01 10:00\n")
    work, prefect_home = tmp_path / "work", tmp_path / "prefect-home"
    url = f"sqlite:///{work / 'complaints.db'}"
    run = _cli([str(source)], work, prefect_home)
    try:
        deadline = time.time() + 240
        while _stored(url) < 2500:  # the first batch (classified by 2 workers) is committed
            assert time.time() < deadline and run.poll() is None, run.stdout.read().decode() if run.poll() else "slow"
            time.sleep(0.2)
        started = descendants(run.pid)
        commands = [open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode() for pid in started]
        assert any("uvicorn" in c for c in commands) and len(started) >= 4, commands  # server, forkserver, workers
        run.send_signal(signal.SIGKILL)
        run.wait()
        deadline = time.time() + 30
        while _alive(started) and time.time() < deadline:
            time.sleep(0.2)
        assert not _alive(started), [commands[list(started).index(pid)] for pid in _alive(started)]
    finally:
        left = descendants(run.pid) if run.poll() is None else {}
        run.kill()
        end_processes(left, grace_seconds=1)

    rerun = _cli([str(source)], work, prefect_home)
    output = rerun.communicate(timeout=300)[0].decode()
    assert rerun.returncode == 0, output
    engine = store.connect(url)
    runs = store.read_table(engine, store.runs).sort_values("started_at")
    engine.dispose()
    assert runs["status"].tolist() == ["failed", "completed"]
    with sqlite3.connect(prefect_home / "prefect.db") as prefect_db:
        states = dict(prefect_db.execute("SELECT id, state_type FROM flow_run").fetchall())
    killed = runs["prefect_flow_run_id"].iloc[0]
    assert states[killed] == "CRASHED", states
    assert "RUNNING" not in states.values()


@pytest.mark.slow
def test_classification_workers_are_not_forks_of_the_multi_threaded_parent():
    from pipeline.model.classify import PARALLEL_MIN_ROWS, ParallelClassifier, load_lexicon_model

    texts = [f"第{i}位顾客：服务员态度很差" for i in range(PARALLEL_MIN_ROWS)]
    with ParallelClassifier(load_lexicon_model(), 2) as classifier:
        assert len(classifier.classify(texts)) == len(texts)
        worker_parent = classifier._pool.submit(os.getppid).result()
    assert worker_parent != os.getpid()  # started by the forkserver, a clean single-threaded process
