"""An unexpected failure (here: a database that cannot be opened) is one line on the console saying what
failed and what to do; the traceback is in a log file, and on the console only with --debug."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipeline.config import PROJECT_ROOT

SAMPLE = PROJECT_ROOT / "data" / "samples" / "complaints_sample.csv"


def complaints(*args, database_url: str):
    env = {**os.environ, "COMPLAINTS_DATABASE_URL": database_url, "COMPLAINTS_CLASSIFIER": "lexicon"}
    env.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, env=env)


def unopenable_database(tmp_path) -> str:
    folder = tmp_path / "complaints.db"
    folder.mkdir()  # a folder where the database file should be: SQLite cannot open it
    return f"sqlite:///{folder}"


@pytest.mark.flow
def test_a_failed_run_prints_one_line_and_logs_the_traceback(tmp_path):
    work = tmp_path / "work"
    result = complaints("run", str(SAMPLE), "--work-dir", str(work), database_url=unopenable_database(tmp_path))
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "the database refused or could not be reached: unable to open database file" in errors[0]
    assert "database_url in the settings" in errors[0]
    assert len(output.splitlines()) < 15  # Prefect's own progress lines and the error, no traceback
    logs = list((work / "logs").glob("error-*.log"))
    assert len(logs) == 1 and str(logs[0]) in errors[0]
    assert "Traceback" in logs[0].read_text(encoding="utf-8")


@pytest.mark.flow
def test_debug_shows_the_traceback(tmp_path):
    url = unopenable_database(tmp_path)
    quiet = complaints("tickets", "list", "--work-dir", str(tmp_path / "work"), database_url=url)
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr
    assert quiet.stderr.startswith("error: the database refused or could not be reached")
    loud = complaints("--debug", "tickets", "list", "--work-dir", str(tmp_path / "work"), database_url=url)
    assert loud.returncode == 1 and "Traceback" in loud.stderr and "OperationalError" in loud.stderr
