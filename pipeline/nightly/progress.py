"""Live progress of a long run: rows done, rows/s and the time left, for the terminal and the Prefect logs.

The batch path reports to a ``RunProgress``; whoever shows it subscribes: the flow logs a line every
``LOG_EVERY_SECONDS``, the command line draws a rich progress bar (``watching``). The total of a file is
counted cheaply before the run (its lines); a database source has none, so it shows no ETA.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

LOG_EVERY_SECONDS = 10.0
_LINE_COUNTED = {".csv": 1, ".tsv": 1, ".txt": 1, ".jsonl": 0, ".ndjson": 0}  # suffix → header lines
_watchers: list[Callable[["RunProgress"], None]] = []


@dataclass
class RunProgress:
    total: int | None  # rows the source holds, when known
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    listeners: list[Callable[["RunProgress"], None]] = field(default_factory=list)

    def advance(self, rows: int) -> None:
        self.done += rows
        for listener in self.listeners + _watchers:
            listener(self)

    @property
    def rows_per_second(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def seconds_left(self) -> float | None:
        if not self.total or not self.rows_per_second:
            return None
        return max(self.total - self.done, 0) / self.rows_per_second

    def describe(self) -> str:
        of = f" of {self.total:,} ({min(self.done / self.total, 1):.0%})" if self.total else ""
        left = self.seconds_left
        eta = f", about {format_duration(left)} left" if left is not None else ""
        return f"{self.done:,}{of} rows, {self.rows_per_second:,.0f} rows/s{eta}"


def format_duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def log_every(logger: logging.Logger | logging.LoggerAdapter, seconds: float = LOG_EVERY_SECONDS
              ) -> Callable[[RunProgress], None]:
    """A listener that logs the progress at most once every ``seconds``."""
    last = [time.monotonic()]

    def listener(progress: RunProgress) -> None:
        now = time.monotonic()
        if now - last[0] >= seconds:
            last[0] = now
            logger.info("progress: %s", progress.describe())

    return listener


@contextmanager
def watching(listener: Callable[[RunProgress], None]) -> Iterator[None]:
    """Every run's progress in this process also goes to ``listener`` (the command line's progress bar)."""
    _watchers.append(listener)
    try:
        yield
    finally:
        _watchers.remove(listener)


def count_rows(source: str) -> int | None:
    """Rows of a CSV/TSV/JSONL file counted by its line breaks (a text with line breaks counts more: the
    ETA errs long), of a Parquet file from its metadata; None for anything else."""
    path = Path(source)
    suffix = path.suffix.lower()
    if not path.is_file():
        return None
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if suffix not in _LINE_COUNTED:
        return None
    lines, last = 0, b"\n"
    with path.open("rb") as handle:
        while block := handle.read(1 << 22):
            lines += block.count(b"\n")
            last = block[-1:]
    lines += last != b"\n"  # a last line without a line break
    return max(lines - _LINE_COUNTED[suffix], 0)
