"""Rows stored already, recognised from their keys alone, before a chunk is mapped and validated.

An idle rerun (every row stored) or the stored part of an incremental night paid for mapping (a dict per row)
and validating every row only to skip it. Here a chunk's rows are reduced to their keys (``row_keys``: id,
text, date, channel), the chunk's ids are looked up once, and a row is set aside as skipped only when the full
path would have skipped it too: stored under its id with the same content hash (so id and text passed
validation when they were stored, and pass it again), its id appearing once in the chunk and in no earlier
chunk, its date readable (or empty) and its channel not too long. Every other row (new,
changed text, duplicate id, bad date …) goes on through ``map_columns`` and ``validate_rows`` unchanged, so
their quarantine and the counts stay what they were.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

import numpy as np
import pandas as pd

from pipeline.config import Settings
from pipeline.ingest.sources import RawChunk, RowKeys, row_keys
from pipeline.ingest.validate import CONTROL_CHARACTERS, content_hash, parse_timestamps
from pipeline.storage.tables import CHANNEL_LENGTH, ID_LENGTH


@dataclass
class StoredSplit:
    """A chunk with its stored rows taken out."""

    rest: RawChunk  # the rows that still go through mapping and validation (and the chunk's quarantined rows)
    rest_keys: list[RowKeys]  # their row_keys, so they are not read twice
    stored: dict[str, str]  # id → content hash of every stored id of the chunk (the chunk's one lookup)
    taken_ids: list[str] = field(default_factory=list)  # the rows taken out: stored with the same text
    skipped_before_since: int = 0  # of them, older than ``since`` (the full path counts those so)

    @property
    def skipped_seen(self) -> int:
        return len(self.taken_ids) - self.skipped_before_since


def split_stored(chunk: RawChunk, settings: Settings, seen_ids, lookup_stored: Callable[[list[str]], dict[str, str]],
                 since: datetime | None) -> StoredSplit:
    """Take out of ``chunk`` the rows the full path would skip as stored (see the module's docstring).
    ``seen_ids``: ids of the run's earlier chunks (not changed here)."""
    records = chunk.records
    keys = [row_keys(record["cells"], settings.columns) for record in records]
    ids = [key[0] for key in keys]
    # what PostgreSQL refuses in a query (NUL) is never looked up; such ids are quarantined by validation
    askable = [i for i in dict.fromkeys(ids) if i and len(i) <= ID_LENGTH and not CONTROL_CHARACTERS.search(i)]
    stored = lookup_stored(askable) if askable else {}
    if not stored:
        return StoredSplit(chunk, keys, stored)
    times_in_chunk = Counter(ids)
    candidates = [n for n, (complaint_id, text, *_) in enumerate(keys)
                  if complaint_id in stored and times_in_chunk[complaint_id] == 1 and complaint_id not in seen_ids
                  and stored[complaint_id] == content_hash(text)]
    if not candidates:
        return StoredSplit(chunk, keys, stored)
    raw_dates = pd.Series([keys[n][2] for n in candidates], dtype=object)
    readable, before = _readable_dates(raw_dates, settings.timezone, since)
    short_channel = [len(keys[n][3].strip()) <= CHANNEL_LENGTH for n in candidates]
    skipped: set[int] = set()
    split = StoredSplit(chunk, [], stored)
    for position, n in enumerate(candidates):
        if readable[position] and short_channel[position]:
            skipped.add(n)
            split.taken_ids.append(ids[n])
            split.skipped_before_since += int(before is not None and before[position])
    kept = [n for n in range(len(records)) if n not in skipped]
    split.rest = RawChunk(chunk.source, [records[n] for n in kept], chunk.quarantined, chunk.checkpoint)
    split.rest_keys = [keys[n] for n in kept]
    return split


def _readable_dates(raw_dates: pd.Series, timezone: str, since: datetime | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Which dates validation would accept (empty or readable) and, with ``since``, which are older.

    Without ``since`` only readability counts, and an ISO date read directly (pandas' C parser, no stripping,
    no Chinese forms) is one ``parse_timestamps`` reads too; a date it cannot read sends its row the full way,
    where ``parse_timestamps`` decides. With ``since``, ``parse_timestamps`` itself."""
    if since is not None:
        stamps = parse_timestamps(raw_dates, timezone)
        readable = stamps.notna() | (raw_dates.str.strip() == "")
        return readable.to_numpy(dtype=bool), (stamps.notna() & (stamps < pd.Timestamp(since))).to_numpy(dtype=bool)
    parsed = pd.to_datetime(raw_dates, errors="coerce", format="ISO8601", utc=True).dt.tz_convert(None)
    in_range = parsed.between(pd.Timestamp.min, pd.Timestamp.max)  # NaT is not
    return (in_range | (raw_dates == "")).to_numpy(dtype=bool), None
