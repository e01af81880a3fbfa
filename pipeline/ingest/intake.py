"""What a nightly run reads from its source, and what it records as taken.

- **One file**: read whole on every run, as before (rows already stored are skipped as seen).
- **A folder or a glob of export files** (``exports/``, ``'exports/*/complaints-*.csv'``): each file is taken
  once per content, recorded by path and sha256 of its bytes in ``source_files``; a file that arrives later
  is taken by the next run; a file whose content changed under the same path is taken again. Files are read
  in a stable order: name, then modification time. A file that cannot be read is quarantined as a whole
  with its reason and the other files go on.
- **A database URL** (``--table`` or ``--query``): read in order of the key column
  (``pipeline/ingest/sql_source.py``) from above the highest key a completed run took (``source_watermarks``,
  one per URL, table or query, and key column).

Progress is recorded only once the run has completed (``Intake.record``, one transaction). A run that fails
or dies records nothing: the next one reads the same files and rows again, finds the stored ones and skips
them, so nothing is lost, and a rerun after a corrected column mapping sees the quarantined rows again.
"""
from __future__ import annotations

import glob
import hashlib
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa

from pipeline.config import Settings, hide_password
from pipeline.ingest.quarantine import QuarantinedRow, QuarantineReason
from pipeline.ingest.sources import SUPPORTED, RawChunk, SourceError, is_database_url, iter_raw_chunks
from pipeline.ingest.sql_source import KeyReached
from pipeline.model.registry import file_sha256
from pipeline.storage import store

TAKEN = "taken"
QUARANTINED = "quarantined"
_GLOB_CHARS = set("*?[")


def is_export_set(source: str) -> bool:
    """A folder, or a glob pattern (that is not itself an existing file's name)."""
    path = Path(source)
    return path.is_dir() or (not path.exists() and not is_database_url(source) and bool(_GLOB_CHARS & set(source)))


def export_files(source: str) -> list[Path]:
    """A folder's export files (supported types, not hidden, not Office lock files) or a glob's files, in
    the order they are taken: name, then modification time (then the full path, for equal names)."""
    if Path(source).is_dir():
        found = [p for p in Path(source).iterdir()
                 if p.is_file() and p.suffix.lower() in SUPPORTED and not p.name.startswith((".", "~$"))]
    else:
        found = [Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file()]
    return sorted(found, key=lambda p: (p.name, _modified_ns(p), str(p)))


def _modified_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:  # gone since it was listed: its turn comes, and reading it says why it failed
        return 0


@dataclass(frozen=True)
class FileTaken:
    path: str  # absolute
    content_hash: str
    size_bytes: int
    modified_at: datetime  # UTC
    status: str  # taken | quarantined
    rows_read: int
    detail: str | None = None


_KEY_TYPES = {"int": int, "float": float, "decimal": Decimal, "datetime": datetime.fromisoformat,
              "date": date.fromisoformat, "text": str}


def key_as_text(value) -> tuple[str, str]:
    """A key value as stored in ``source_watermarks``: (type, text)."""
    kinds = ((bool, None), (int, "int"), (float, "float"), (Decimal, "decimal"), (datetime, "datetime"),
             (date, "date"), (str, "text"))
    kind = next((name for python_type, name in kinds if isinstance(value, python_type)), None)
    if kind is None:
        raise SourceError(f"the key column holds {type(value).__name__} values; read the source by a column of "
                          "whole numbers, text or times (setting source_key_column)")
    return kind, value.isoformat() if kind in ("datetime", "date") else str(value)


def key_from_text(kind: str, text: str):
    return _KEY_TYPES[kind](text)


class Intake:
    """The rows one run reads from ``source`` (``chunks``), and the record of what it took (``record``)."""

    def __init__(self, engine: sa.Engine, source: str, settings: Settings, *, table: str | None = None,
                 query: str | None = None):
        self.engine, self.source, self.settings, self.table, self.query = engine, source, settings, table, query
        self.files_taken: list[FileTaken] = []
        self.files_already_taken = 0
        self.key_column = settings.source_key_column or settings.columns.id
        self.watermark_before = None
        self.reached: KeyReached | None = None

    def chunks(self) -> Iterator[RawChunk]:
        read = dict(chunk_size=self.settings.batch_size, encoding=self.settings.encoding, sheet=self.settings.sheet)
        if is_database_url(self.source):
            self.watermark_before = self._watermark()
            for chunk in iter_raw_chunks(self.source, table=self.table, query=self.query, key_column=self.key_column,
                                         after=self.watermark_before, **read):
                self.reached = chunk.checkpoint or self.reached
                yield chunk
        elif is_export_set(self.source):
            yield from self._export_chunks(read)
        else:
            yield from iter_raw_chunks(self.source, **read)

    def _export_chunks(self, read: dict) -> Iterator[RawChunk]:
        paths = export_files(self.source)
        taken = self._taken_before([str(p.resolve()) for p in paths])
        for path in paths:
            try:
                stat, content_hash = path.stat(), file_sha256(path)
            except OSError as exc:  # gone or locked: not recorded, so the next run tries it again
                yield _unreadable(path, 0, exc)
                continue
            if (str(path.resolve()), content_hash) in taken:
                self.files_already_taken += 1
                continue
            rows_read, problem = 0, None
            try:
                for chunk in iter_raw_chunks(str(path), **read):
                    rows_read += chunk.rows_read
                    yield chunk
            except Exception as exc:  # noqa: BLE001 - one unreadable file must not stop the others
                problem = exc
                unreadable = _unreadable(path, rows_read, exc)
                rows_read += unreadable.rows_read
                yield unreadable
            if isinstance(problem, OSError):
                continue
            self.files_taken.append(FileTaken(
                str(path.resolve()), content_hash, stat.st_size,
                datetime.fromtimestamp(stat.st_mtime, timezone.utc).replace(tzinfo=None),
                QUARANTINED if problem else TAKEN, rows_read, problem and unreadable.quarantined[0].detail))

    def _taken_before(self, paths: list[str]) -> set[tuple[str, str]]:
        files = store.source_files
        taken: set[tuple[str, str]] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(paths), 500):
                rows = conn.execute(sa.select(files.c.path, files.c.content_hash)
                                    .where(files.c.path.in_(paths[start:start + 500])))
                taken.update((row.path, row.content_hash) for row in rows)
        return taken

    @property
    def source_key(self) -> str:
        return hashlib.sha256(self._described.encode("utf-8")).hexdigest()

    @property
    def _described(self) -> str:
        what = f"table {self.table}" if self.table else f"query {self.query}"
        return f"{hide_password(self.source)} {what} by {self.key_column}"

    def _watermark(self):
        marks = store.source_watermarks
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(marks.c.key_type, marks.c.last_key)
                               .where(marks.c.source_key == self.source_key)).first()
        return key_from_text(row.key_type, row.last_key) if row else None

    def record(self, run_id: str) -> None:
        """What this run took, in one transaction: call once the run has completed."""
        now = store.utcnow()
        with self.engine.begin() as conn:
            if self.files_taken:
                conn.execute(store.source_files.insert(), [  # a parser's message may quote the file: masked
                    {**asdict(taken), "detail": taken.detail and store.redact(taken.detail), "run_id": run_id,
                     "taken_at": now} for taken in self.files_taken])
            if self.reached is not None:
                kind, text = key_as_text(self.reached.last_key)
                marks = store.source_watermarks
                values = dict(source=self._described, key_column=self.key_column, last_key=text, key_type=kind,
                              run_id=run_id, updated_at=now)
                if not conn.execute(marks.update().where(marks.c.source_key == self.source_key)
                                    .values(**values)).rowcount:
                    conn.execute(marks.insert().values(source_key=self.source_key, **values))

    def summary(self) -> dict:
        if is_database_url(self.source):
            last = self.reached.last_key if self.reached else self.watermark_before
            return {"key_column": self.key_column, "started_after": _shown(self.watermark_before),
                    "reached": _shown(last)}
        if is_export_set(self.source):
            return {"files_taken": sum(f.status == TAKEN for f in self.files_taken),
                    "files_quarantined": sum(f.status == QUARANTINED for f in self.files_taken),
                    "files_already_taken": self.files_already_taken}
        return {}


def _shown(key) -> str | None:
    return None if key is None else key_as_text(key)[1]


def _unreadable(path: Path, rows_before: int, exc: Exception) -> RawChunk:
    """The rest of a file that cannot be read, as one quarantined row naming why."""
    where = f"after row {rows_before}" if rows_before else "at all"
    reason = str(exc) if isinstance(exc, SourceError) else f"{type(exc).__name__}: {exc}"
    row = QuarantinedRow(str(path), rows_before + 1, "*", QuarantineReason.UNREADABLE_FILE,
                         f"the file could not be read {where}: {reason}")
    return RawChunk(str(path), [], [row])
