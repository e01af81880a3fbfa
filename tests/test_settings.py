"""Settings through the real command line: defaults < settings file < environment < flags, nested fields from
the environment (as JSON and one key at a time), and one work directory that decides where data lives."""
from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from pipeline.config import PROJECT_ROOT, load_settings
from ticket_helpers import process_file, write_complaints

TEXT = "前台服务员态度恶劣，爱答不理"


def complaints(*args, env: dict | None = None, cwd=PROJECT_ROOT):
    """The CLI as a user runs it, with only the COMPLAINTS_* variables given here."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("COMPLAINTS_")}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=cwd,
                          env={**clean, "COMPLAINTS_WORKERS": "1", **(env or {})})


def classified_ids(result, output) -> list[str]:
    assert result.returncode == 0, result.stderr
    return pd.read_csv(output, encoding="utf-8-sig", dtype=str)["id"].tolist()


@pytest.fixture
def export(tmp_path):
    """One complaint whose id sits in a different column for each layer of settings that may name it."""
    path = tmp_path / "export.csv"
    pd.DataFrame({"id": ["DEFAULT"], "file_id": ["FILE"], "env_id": ["ENV"], "flag_id": ["FLAG"],
                  "text": [TEXT]}).to_csv(path, index=False, encoding="utf-8")
    return path


@pytest.mark.slow  # the CLI in a subprocess, several times
def test_each_layer_overrides_the_one_below(export, tmp_path):
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text('[columns]\nid = "file_id"\n', encoding="utf-8")
    output = tmp_path / "out.csv"
    classify = ["classify", "--input", str(export), "--output", str(output), "--lexicon"]
    with_file = [*classify, "--config", str(settings_file)]
    from_env = {"COMPLAINTS_COLUMNS__ID": "env_id"}

    assert classified_ids(complaints(*classify), output) == ["DEFAULT"]
    assert classified_ids(complaints(*with_file), output) == ["FILE"]
    assert classified_ids(complaints(*with_file, env=from_env), output) == ["ENV"]
    assert classified_ids(complaints(*with_file, "--column", "id=flag_id", env=from_env), output) == ["FLAG"]


@pytest.mark.slow  # the CLI in a subprocess, several times
def test_nested_fields_from_the_environment_as_json_merge_with_the_file_key_by_key(tmp_path):
    export = tmp_path / "export.csv"  # no 'text' column: the file's text mapping must survive the environment's
    pd.DataFrame({"file_id": ["FILE"], "env_id": ["ENV"], "内容": [TEXT]}).to_csv(export, index=False)
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text('[columns]\nid = "file_id"\ntext = "内容"\n', encoding="utf-8")
    output = tmp_path / "out.csv"
    classify = ["classify", "--input", str(export), "--output", str(output), "--lexicon"]

    assert classified_ids(complaints(*classify, "--config", str(settings_file),
                                     env={"COMPLAINTS_COLUMNS": '{"id": "env_id"}'}), output) == ["ENV"]
    # the example, without any file
    assert classified_ids(complaints(*classify, env={"COMPLAINTS_COLUMNS": '{"text": "内容", "id": "env_id"}'}),
                          output) == ["ENV"]


@pytest.mark.slow  # the CLI in a subprocess, several times
def test_a_bad_environment_value_is_one_line_naming_the_variable(export, tmp_path):
    classify = ["classify", "--input", str(export), "--output", str(tmp_path / "out.csv"), "--lexicon"]
    broken = complaints(*classify, env={"COMPLAINTS_COLUMNS": '{"text": '})
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    assert broken.stderr.startswith("error: COMPLAINTS_COLUMNS: not valid JSON")
    unknown = complaints(*classify, env={"COMPLAINTS_COLUMNS__TXT": "内容"})
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("error: COMPLAINTS_COLUMNS: columns.txt: Extra inputs are not permitted")
    out_of_range = complaints(*classify, env={"COMPLAINTS_BATCH_SIZE": "0"})
    assert out_of_range.returncode == 1 and "COMPLAINTS_BATCH_SIZE: batch_size:" in out_of_range.stderr


def test_secrets_and_lists_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPLAINTS_DATABASE_URL", "postgresql://etl:s3cret@db/complaints")
    monkeypatch.setenv("COMPLAINTS_WEBHOOKS__OPERATIONS__URL", "https://ops.example/hook")
    monkeypatch.setenv("COMPLAINTS_TRUSTED_MODELS", '["abc"]')
    settings = load_settings(work_dir=tmp_path)
    assert "s3cret" not in repr(settings) and settings.resolved_database_url.endswith("s3cret@db/complaints")
    assert settings.webhooks["operations"].url == "https://ops.example/hook"
    assert settings.trusted_models == ["abc"]


# ---------------------------------------------------------------- one place decides where data lives

# the case in the fast lane, the other read-only commands in the full suite
READ_ONLY_COMMANDS = [("review", "export", "--output", "{tmp}/review.csv")] + [
    pytest.param(command, marks=pytest.mark.slow) for command in [
    ("review", "export-labelled", "--output", "{tmp}/labelled.csv"),
    ("tickets", "list"),
    ("tickets", "export", "--output", "{tmp}/tickets.csv"),
    ("tickets", "sla"),
    ("trends",),
    ("customer-ref", "13912345678"),
    ("data", "demo-updates", "--output", "{tmp}/updates.csv"),
]]


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS, ids=lambda command: " ".join(command[:2]))
def test_a_command_that_reads_the_store_refuses_a_folder_without_one(command, tmp_path):
    empty = tmp_path / "nowhere"
    result = complaints(*(part.format(tmp=tmp_path) for part in command), env={"COMPLAINTS_WORK_DIR": str(empty)})
    assert result.returncode == 1, result.stdout
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"error: no database at {empty / 'complaints.db'}")
    assert "complaints run SOURCE" in errors[0] and "--work-dir" in errors[0]
    assert not empty.exists()  # no empty database (nor its folder) left behind


@pytest.mark.slow  # the CLI in a subprocess, several times
def test_the_work_directory_comes_from_the_environment_or_the_flag(tmp_path):
    runs = tmp_path / "runs"
    process_file(load_settings(work_dir=runs, classifier="lexicon"), write_complaints(tmp_path / "in.csv"))
    from_env = complaints("tickets", "list", env={"COMPLAINTS_WORK_DIR": str(runs)})
    assert from_env.returncode == 0, from_env.stderr
    assert "ticket(s), most urgent first" in from_env.stdout and "TK-" in from_env.stdout
    flag_wins = complaints("tickets", "list", "--work-dir", str(runs), env={"COMPLAINTS_WORK_DIR": str(tmp_path)})
    assert flag_wins.returncode == 0 and flag_wins.stdout == from_env.stdout
