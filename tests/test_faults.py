"""Faults during a run: a failed lookup retried, credentials in URLs, errors carrying raw texts. The ones
that go through the database run on SQLite and on PostgreSQL."""
import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline.storage import store
from pipeline.config import PROJECT_ROOT

SAMPLE = PROJECT_ROOT / "data" / "samples" / "complaints_sample.csv"


def _fail_first_stored_hashes_lookup():
    """Every engine's first SELECT of stored content hashes fails like a database that went away for a moment."""
    failures = []

    def before_cursor_execute(conn, cursor, statement, parameters, context, executemany):
        if "content_hash" in statement and statement.lstrip().upper().startswith("SELECT") and not failures:
            failures.append(statement)
            raise conn.dialect.dbapi.OperationalError("disk I/O error")  # the driver's own error

    return before_cursor_execute, failures


@pytest.mark.flow
def test_a_retried_lookup_does_not_turn_the_batch_into_duplicates(prefect_harness, tmp_path, database_url,
                                                                  monkeypatch):
    """The batch path's database lookup fails once and is tried again: the retry must see the batch as it
    was, not as ids it had already recorded as seen (which quarantined every row as a duplicate)."""
    from flows import nightly
    from pipeline.config import load_settings
    from pipeline.nightly import batch

    lexicon_settings = load_settings(work_dir=tmp_path / "work", classifier="lexicon", database_url=database_url)

    monkeypatch.setattr(batch, "RETRY_DELAY_SECONDS", 0)
    listener, failures = _fail_first_stored_hashes_lookup()
    sa.event.listen(sa.Engine, "before_cursor_execute", listener)
    try:
        summary = nightly.nightly_flow(source=str(SAMPLE), settings=lexicon_settings)
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", listener)
    assert failures, "the injected failure never happened"
    rows = len(pd.read_csv(SAMPLE, keep_default_na=False))
    assert summary["status"] == "completed"
    assert summary["counts"]["quarantined"] == 4  # the sample's planted bad rows, nothing more
    assert summary["counts"]["classified"] == rows - 4
    engine = store.connect(lexicon_settings.resolved_database_url)
    reasons = store.read_table(engine, store.quarantine)["reason"]
    engine.dispose()
    assert len(reasons) == 4 and (reasons == "duplicate_id_in_source").sum() == 1  # the sample plants one


PASSWORD = "S3cretPw-9f2"


def _flow_run_record(flow_run_id) -> tuple[dict, list[str]]:
    """The parameters and log messages Prefect's database holds for a flow run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return run.parameters, [log.message for log in logs]


@pytest.mark.flow
def test_a_source_password_is_kept_out_of_prefect_the_runs_table_and_the_output(prefect_harness, lexicon_settings,
                                                                                 caplog):
    from pydantic import SecretStr

    from flows.nightly import nightly_flow

    source = f"postgresql://etl:{PASSWORD}@127.0.0.1:1/complaints"
    state = nightly_flow(source=SecretStr(source), table="complaints", settings=lexicon_settings, return_state=True)
    assert state.is_failed()
    parameters, logs = _flow_run_record(state.state_details.flow_run_id)
    assert parameters["source"] and PASSWORD not in str(parameters)
    assert logs and PASSWORD not in "\n".join(logs)
    engine = store.connect(lexicon_settings.resolved_database_url)
    run = store.read_table(engine, store.runs).iloc[0]
    engine.dispose()
    assert run["status"] == "failed" and run["source"] == "postgresql://etl:***@127.0.0.1:1/complaints"
    assert PASSWORD not in str(run["error"])
    assert PASSWORD not in caplog.text


@pytest.mark.flow
def test_a_database_password_in_settings_is_not_recorded_by_prefect(prefect_harness, tmp_path, caplog):
    from flows.nightly import nightly_flow
    from pipeline.config import load_settings

    settings = load_settings(work_dir=tmp_path / "work", classifier="lexicon",
                             database_url=f"postgresql+psycopg://etl:{PASSWORD}@127.0.0.1:1/complaints")
    assert PASSWORD not in repr(settings)
    state = nightly_flow(source=str(SAMPLE), settings=settings, return_state=True)
    assert state.is_failed()  # no server there
    parameters, logs = _flow_run_record(state.state_details.flow_run_id)
    assert parameters["settings"]["database_url"] == "**********"
    assert PASSWORD not in str(parameters) + "\n".join(logs)
    assert PASSWORD not in caplog.text


def test_hide_password_covers_urls_alone_and_inside_messages():
    from pipeline.config import hide_password

    assert hide_password("postgresql+psycopg://etl:p%40ss@db:5432/c") == "postgresql+psycopg://etl:***@db:5432/c"
    assert hide_password("postgresql://etl:p@ss:w0rd@db/c") == "postgresql://etl:***@db/c"
    assert (hide_password("cannot read mysql://u:pw@h/d: refused") == "cannot read mysql://u:***@h/d: refused")
    assert hide_password("/data/exports/a:b@c.csv") == "/data/exports/a:b@c.csv"
    assert hide_password("sqlite:////srv/complaints.db") == "sqlite:////srv/complaints.db"


REFUSING_TRIGGER = {  # a real database error on the batch's insert
    "sqlite": ["CREATE TRIGGER refuse BEFORE INSERT ON complaints BEGIN SELECT RAISE(ABORT, 'disk quota exceeded'); END"],
    "postgresql": ["CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'disk quota exceeded'; END $$",
                   "CREATE TRIGGER refuse BEFORE INSERT ON complaints FOR EACH ROW EXECUTE FUNCTION refuse()"],
}


@pytest.mark.flow
def test_a_database_error_carries_no_complaint_text_into_runs_or_prefect_logs(prefect_harness, tmp_path, caplog,
                                                                              database_url):
    """SQLAlchemy puts a failed statement's bound parameters (the batch's texts) into the error message."""
    from flows.nightly import nightly_flow
    from pipeline.config import load_settings

    settings = load_settings(work_dir=tmp_path / "work", classifier="lexicon", keep_raw_rows=True,
                             database_url=database_url)
    engine = store.connect(settings.resolved_database_url)
    with engine.begin() as conn:
        for statement in REFUSING_TRIGGER[engine.dialect.name]:
            conn.execute(sa.text(statement))
    source = tmp_path / "in.csv"
    source.write_text("id,text,created_at\nR1,独一无二的投诉文本：前台态度很差，回电13812345678,2026-11-01 10:00\n",
                      encoding="utf-8")
    state = nightly_flow(source=str(source), settings=settings, return_state=True)
    assert state.is_failed()
    run = store.read_table(engine, store.runs).iloc[0]
    engine.dispose()
    assert run["status"] == "failed" and "disk quota exceeded" in run["error"]
    _, logs = _flow_run_record(state.state_details.flow_run_id)
    written = "\n".join([run["error"], *logs, caplog.text])
    assert "disk quota exceeded" in "\n".join(logs)
    assert "独一无二的投诉文本" not in written and "13812345678" not in written


def test_run_logs_are_redacted_before_any_handler_sees_them(caplog):
    import logging
    import warnings

    from pipeline.nightly.summary import redact_run_logs

    redact_run_logs()
    logger = logging.getLogger("prefect.task_runs")
    try:
        raise ValueError("cannot parse 回电138 1234 5678 via postgresql://etl:pw123@db/c")
    except ValueError:
        with warnings.catch_warnings():  # outside a flow run Prefect's API handler warns it cannot send
            warnings.simplefilter("ignore")
            logger.exception("row %s failed: %s", 7, "客户电话13812345678")
    assert "row 7 failed: 客户电话[手机号]" in caplog.text
    assert "1234 5678" not in caplog.text and "13812345678" not in caplog.text and "pw123" not in caplog.text
    assert "ValueError: cannot parse 回电[手机号] via postgresql://etl:***@db/c" in caplog.text


class _Payload:
    """What a tampered pickle can do when it is loaded: here, leave a file behind."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.mark.slow
def test_a_tampered_artifact_is_refused_before_anything_is_unpickled(tmp_path):
    """The attacker swaps the model and rewrites metadata.json to match: only the pinned hash catches it."""
    import joblib
    import subprocess
    import sys

    from pipeline.model.registry import save_artifact

    marker = tmp_path / "payload-ran"
    folder = tmp_path / "swapped"
    save_artifact(_Payload(str(marker)), {"name": "cause-model"}, folder)  # metadata sha256 matches the file
    marker.unlink(missing_ok=True)  # (dumping does not run it; make sure)
    result = subprocess.run([sys.executable, "-m", "pipeline", "classify-text", "服务员态度很差", "--model", str(folder)],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "not a trusted model" in result.stderr, result.stderr
    assert not marker.exists()
    joblib.load(folder / "model.joblib")  # the same file, unpickled, does run code
    assert marker.exists()


def test_a_model_from_another_scikit_learn_is_refused_and_a_trusted_one_loads(tmp_path):
    import json

    from sklearn.dummy import DummyClassifier

    from pipeline.model.classify import load_trained_model
    from pipeline.model.registry import ModelIntegrityError, save_artifact

    folder = tmp_path / "mine"
    metadata = save_artifact(DummyClassifier().fit([[0], [1]], ["a", "b"]), {"name": "mine"}, folder)
    with pytest.raises(ModelIntegrityError, match="not a trusted model"):
        load_trained_model(folder, trusted=[])
    assert load_trained_model(folder, trusted=[metadata["sha256"]]).labels == ["a", "b"]
    old = {**metadata, "library_versions": {**metadata["library_versions"], "scikit-learn": "0.24.2"}}
    (folder / "metadata.json").write_text(json.dumps(old), encoding="utf-8")
    with pytest.raises(ModelIntegrityError, match="trained with scikit-learn 0.24.2"):
        load_trained_model(folder, trusted=[metadata["sha256"]])


def test_other_libraries_versions_warn_on_a_minor_difference_and_stay_quiet_on_a_patch_release(tmp_path, caplog):
    import json
    import logging

    from sklearn.dummy import DummyClassifier

    from pipeline.model.classify import load_trained_model
    from pipeline.model.registry import save_artifact

    folder = tmp_path / "mine"
    metadata = save_artifact(DummyClassifier().fit([[0], [1]], ["a", "b"]), {"name": "mine"}, folder)
    major, minor, *_ = metadata["library_versions"]["pandas"].split(".")
    for recorded, warned in ((f"{major}.{minor}.999", False), (f"{major}.{int(minor) + 1}.0", True)):
        changed = {**metadata, "library_versions": {**metadata["library_versions"], "pandas": recorded}}
        (folder / "metadata.json").write_text(json.dumps(changed), encoding="utf-8")
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="pipeline.model.registry"):
            load_trained_model(folder, trusted=[metadata["sha256"]])
        said = [r for r in caplog.records if f"trained with pandas {recorded}" in r.getMessage()]
        assert [r.levelno for r in said] == [logging.WARNING if warned else logging.DEBUG]


def test_the_shipped_model_is_trusted_by_default():
    from pipeline.model.classify import load_model
    from pipeline.config import load_settings

    assert load_model(load_settings()).labels


@pytest.mark.flow
def test_the_cli_shows_and_keeps_no_source_password(tmp_path):
    import os
    import subprocess
    import sys

    work, prefect_home = tmp_path / "work", tmp_path / "prefect-home"
    env = {**os.environ, "COMPLAINTS_CLASSIFIER": "lexicon", "PREFECT_HOME": str(prefect_home)}
    env.pop("PREFECT_API_URL", None)
    result = subprocess.run([sys.executable, "-m", "pipeline", "run", f"postgresql://etl:{PASSWORD}@127.0.0.1:1/crm",
                             "--table", "complaints", "--work-dir", str(work)],
                            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0  # nothing listens there
    engine = store.connect(f"sqlite:///{work / 'complaints.db'}")
    assert store.read_table(engine, store.runs)["source"].tolist() == ["postgresql://etl:***@127.0.0.1:1/crm"]
    engine.dispose()
    written = [p.read_bytes() for p in [*work.rglob("*"), *prefect_home.rglob("*")] if p.is_file()]
    assert any(p.name == "prefect.db" for p in prefect_home.rglob("*"))
    assert PASSWORD not in result.stdout + result.stderr
    assert not any(PASSWORD.encode() in data for data in written)
