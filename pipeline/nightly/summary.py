"""What a run leaves for people: the quarantine file and the run summary."""
from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import sqlalchemy as sa

from pipeline.storage import store
from pipeline.config import hide_password
from pipeline.labels import UNFAMILIAR_NOTE_SHARE
from pipeline.ingest.quarantine import QUARANTINE_ADVICE, QuarantinedRow
from pipeline.delivery.spreadsheet import guard_csv_cell

class RedactingLogFilter(logging.Filter):
    """Masks personal data and URL passwords in a log record, its arguments and its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = store.redact(record.getMessage()), None
        if record.exc_info:
            record.exc_text = store.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def redact_run_logs() -> None:
    """What the flow and its tasks log (Prefect stores it and shows it in the UI) is redacted first."""
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingLogFilter) for f in logger.filters):
            logger.addFilter(RedactingLogFilter())


QUARANTINE_FILE_COLUMNS = ["source", "row", "column", "reason", "detail", "what_to_do", "raw"]


def append_quarantine_file(path: Path, rows: list[QuarantinedRow]) -> None:
    """Append quarantined rows (UTF-8 with BOM so Excel opens the Chinese text correctly)."""
    if not rows:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    new_file = not path.exists()
    with path.open("a", encoding="utf-8-sig" if new_file else "utf-8", newline="") as handle:
        writer = csv.writer(handle)
        if new_file:
            writer.writerow(QUARANTINE_FILE_COLUMNS)
        for row in rows:
            writer.writerow([guard_csv_cell(cell) for cell in (
                row.source, row.source_row, row.column, row.reason.value, row.detail, QUARANTINE_ADVICE[row.reason],
                json.dumps(row.raw, ensure_ascii=False, default=str))])


def run_summary(engine: sa.Engine, run_id: str, settings, quarantine_file: Path | None) -> dict:
    with engine.connect() as conn:
        run = conn.execute(sa.select(store.runs).where(store.runs.c.run_id == run_id)).mappings().one()
        predictions = store.predictions
        flagged = [sa.func.coalesce(sa.func.sum(sa.case((column.is_(True), 1), else_=0)), 0)
                   for column in (predictions.c.needs_review, predictions.c.unfamiliar)]
        per_cause = conn.execute(  # the run's predictions read once for the three counts (they were read thrice)
            sa.select(predictions.c.cause, sa.func.count(), *flagged)
            .where(predictions.c.run_id == run_id).group_by(predictions.c.cause)).all()
        causes = {cause: count for cause, count, _review, _unfamiliar in per_cause}
        review = sum(int(row[2]) for row in per_cause)
        unfamiliar = sum(int(row[3]) for row in per_cause)
        queues = dict(conn.execute(
            sa.select(store.tickets.c.queue, sa.func.count())
            .where(store.tickets.c.run_id == run_id).group_by(store.tickets.c.queue)).all())
    return {
        "run_id": run_id,
        "status": run["status"],
        "model_version": run["model_version"],
        "counts": {k: run[k] for k in ("rows_read", "classified", "quarantined", "skipped_seen",
                                       "skipped_before_since")},
        "causes": causes,
        "needs_review": review,
        "unfamiliar": unfamiliar,
        "familiarity_note": familiarity_note(unfamiliar, run["classified"] or 0),
        "queues": queues,
        "database": hide_password(settings.resolved_database_url),
        "quarantine_file": str(quarantine_file) if quarantine_file else None,
    }


def familiarity_note(unfamiliar: int, classified: int) -> str | None:
    """What a person should know when many of a run's complaints look unlike the model's training data."""
    if not classified or unfamiliar / classified <= UNFAMILIAR_NOTE_SHARE:
        return None
    return (f"{unfamiliar} of {classified} complaints ({unfamiliar / classified:.0%}) look unlike the model's training "
            "data (another industry, channel or wording): they were routed without review only at a higher "
            "confidence, so more of them wait in the review queue. Labelling a few hundred of them and retraining "
            "makes the model at home here.")
