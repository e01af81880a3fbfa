"""`complaints serve` against a real local Prefect server: the nightly deployment is registered with its
time-zoned cron, and a run triggered through the server's API completes and stores the sample."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from pipeline.config import PROJECT_ROOT

SAMPLE = PROJECT_ROOT / "data" / "samples" / "complaints_sample.csv"
pytestmark = pytest.mark.flow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(predicate, timeout: float, what: str, processes=()):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for process in processes:
            assert process.poll() is None, f"{what}: a process exited early:\n{process.stdout.read().decode()}"
        result = predicate()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _get_json(client: httpx.Client, method: str, path: str, **kwargs):
    try:
        response = client.request(method, path, **kwargs)
    except httpx.TransportError:
        return None
    return response.json() if response.status_code < 300 else None


def test_serve_registers_the_nightly_schedule_and_runs_on_demand(tmp_path):
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    work = tmp_path / "work"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_API_URL": api,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
           "COMPLAINTS_NIGHTLY_CRON": "30 1 * * *", "COMPLAINTS_TIMEZONE": "Asia/Shanghai"}
    env.pop("COMPLAINTS_WORK_DIR", None)
    # the scheduled runs (child processes of serve) must get serve's --config and --work-dir, not the defaults
    config = tmp_path / "settings.toml"
    config.write_text('classifier = "lexicon"\n', encoding="utf-8")
    prefect = Path(sys.executable).with_name("prefect")
    server = subprocess.Popen([str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port),
                               "--analytics-off"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    serving = None
    try:
        with httpx.Client(base_url=api, timeout=10) as client:
            _wait_for(lambda: _get_json(client, "GET", "/health"), 120, "server health", [server])
            serving = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", str(SAMPLE), "--config", str(config),
                                        "--work-dir", str(work)], env=env,
                                       cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            deployments = _wait_for(lambda: _get_json(client, "POST", "/deployments/filter", json={}), 120,
                                    "deployment registered", [server, serving])
            deployment = next(d for d in deployments if d["name"] == "nightly")
            schedules = [s["schedule"] for s in deployment["schedules"]]
            assert schedules == [{"cron": "30 1 * * *", "timezone": "Asia/Shanghai", "day_or": True}]
            assert deployment["parameters"]["source"] == str(SAMPLE)

            # A loaded machine's server can refuse a request for a moment (its SQLite busy): ask until it answers.
            run = _wait_for(lambda: _get_json(client, "POST", f"/deployments/{deployment['id']}/create_flow_run",
                                              json={}), 60, "flow run created", [server, serving])

            def finished():
                state = _get_json(client, "GET", f"/flow_runs/{run['id']}")
                return state if state and state["state_type"] in ("COMPLETED", "FAILED", "CRASHED") else None

            state = _wait_for(finished, 240, "triggered run finished", [server, serving])
            if state["state_type"] != "COMPLETED":
                _stop(serving)
                pytest.fail(f"run {state['state_name']}:\n{serving.stdout.read().decode()[-3000:]}")
        engine = sa.create_engine(f"sqlite:///{work / 'complaints.db'}")
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT COUNT(*) FROM predictions")).scalar_one()
            quarantined = conn.execute(sa.text("SELECT COUNT(*) FROM quarantine")).scalar_one()
            model_version = conn.execute(sa.text("SELECT model_version FROM runs")).scalar_one()
        engine.dispose()
        assert (stored, quarantined) == (400, 4)
        assert model_version.startswith("lexicon-")  # the settings file reached the scheduled run
    finally:
        if serving is not None:
            _stop(serving)
        _stop(server)
