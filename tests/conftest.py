"""Shared fixtures. Flow tests share one Prefect test harness per session (its start costs ~15 s)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from postgres_server import database_url, postgres_server  # noqa: F401  fixtures: each engine, a real PostgreSQL

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = PROJECT_ROOT.parent / "shared"


def pytest_collection_modifyitems(items):
    """A test that asks for the Prefect harness is a flow test, marked or not (`make test-fast` leaves them out)."""
    for item in items:
        if "prefect_harness" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.flow)


@pytest.fixture(scope="session", autouse=True)
def no_process_outlives_the_tests():
    """Whatever the tests started and left running (a server, a pool's workers) ends with the session."""
    yield
    from pipeline.nightly.reaper import descendants, end_processes

    end_processes(descendants(os.getpid()), grace_seconds=5)


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield


@pytest.fixture
def settings(tmp_path):
    """Default settings with an isolated work directory (SQLite database, outputs) per test."""
    from pipeline.config import load_settings

    return load_settings(work_dir=tmp_path / "work")


@pytest.fixture
def lexicon_settings(tmp_path):
    from pipeline.config import load_settings

    return load_settings(work_dir=tmp_path / "work", classifier="lexicon")
