"""Row checks: every row either passes on to classification or is quarantined with a reason."""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.clock import utc_wall_times
from pipeline.config import ColumnMapping, Settings
from pipeline.text.normalise import has_letters, mask_pii
from pipeline.ingest.quarantine import QUARANTINE_ADVICE, QuarantinedRow, QuarantineReason
from pipeline.storage.tables import CHANNEL_LENGTH, ID_LENGTH

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_CHINESE_DATE = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?")


_ZONE_SUFFIX = re.compile(r"\d(?:\s*Z|\s*(?:UTC|GMT)?[+-]\d{2}:?\d{2})$", re.IGNORECASE)


def parse_timestamps(values: pd.Series, timezone: str = "UTC") -> pd.Series:
    """Vectorised date parsing: ISO forms in one pass, other common export forms one by one. Naive UTC comes
    back: time-zone aware values converted, values without a zone read in ``timezone``. Empty and
    unparseable values both come back as NaT."""
    cleaned = values.fillna("").astype(str).str.strip().map(
        lambda v: _CHINESE_DATE.sub(lambda m: f"{m[1]}-{int(m[2]):02d}-{int(m[3]):02d} ", v).strip() if "年" in v else v)
    parsed = pd.to_datetime(cleaned, errors="coerce", format="ISO8601", utc=True)
    retry = parsed.isna() & (cleaned != "")
    if retry.any():
        parsed[retry] = pd.to_datetime(cleaned[retry], errors="coerce", format="mixed", utc=True)
    parsed = parsed.dt.tz_convert(None)
    # a year such as 9999 or 1600 parses (in µs) but has no nanosecond timestamp: unparseable, not a crashed run
    parsed = parsed.where(parsed.between(pd.Timestamp.min, pd.Timestamp.max)).astype("datetime64[ns]")
    naive = ~cleaned.str.contains(_ZONE_SUFFIX) & parsed.notna()
    if timezone != "UTC" and naive.any():
        parsed[naive] = utc_wall_times(parsed[naive], timezone)
    return parsed


SHOWN_CHARS = 40


def shown_value(value: str) -> str:
    """A cell's value as a message may quote it: PII-masked first, then shortened."""
    masked = mask_pii(str(value))
    return masked if len(masked) <= SHOWN_CHARS else masked[:SHOWN_CHARS] + "…"


def _column_names(metadata: dict) -> str:
    # masked: a file without a header row has a data row, maybe a phone number, where the names should be
    return ", ".join(mask_pii(str(name)) for name in metadata) or "none"


def content_hash(text: str) -> str:
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


def validate_rows(frame: pd.DataFrame, seen_ids: set[str], *, max_text_chars: int,
                  text_column: str = "text", date_column: str = "created_at", timezone: str = "UTC"
                  ) -> tuple[pd.DataFrame, list[QuarantinedRow]]:
    """Split mapped rows into good rows and quarantined ones. ``seen_ids`` carries ids across chunks.

    Each check runs over the whole chunk at once (a Python loop per row was most of an idle rerun's batch
    time); a row fails on the first check it fails, in the order below, and only the failing rows are
    visited one by one to say why."""
    stamps = parse_timestamps(frame["created_at_raw"], timezone) if len(frame) else pd.Series([], dtype="datetime64[ns]")
    ids, texts = frame["complaint_id"].astype(object), frame["text"].astype(object)
    blank = (texts.str.strip() == "").to_numpy(dtype=bool)
    lettered = np.fromiter((has_letters(t) for t in texts), dtype=bool, count=len(texts))
    checks = [  # (failed, column, reason) in the order a row is judged
        (~frame["has_text_column"].to_numpy(dtype=bool), text_column, QuarantineReason.MISSING_COLUMN),
        (blank, text_column, QuarantineReason.EMPTY_TEXT),
        (~lettered, text_column, QuarantineReason.NO_LETTERS),
        ((ids.str.len() > ID_LENGTH).to_numpy(dtype=bool), "id", QuarantineReason.VALUE_TOO_LONG),
        (ids.str.contains(CONTROL_CHARACTERS.pattern, regex=True).to_numpy(dtype=bool), "id", QuarantineReason.CONTROL_CHARACTERS),
    ]
    bad_date = (stamps.isna().to_numpy() & (frame["created_at_raw"].astype(object).str.strip() != "").to_numpy(dtype=bool))
    long_channel = np.fromiter((isinstance(c, str) and len(c) > CHANNEL_LENGTH for c in frame["channel"].tolist()),
                               dtype=bool, count=len(frame))
    first_failed = np.full(len(frame), -1)
    for number, (failed, _, _) in reversed(list(enumerate(checks))):
        first_failed[failed] = number
    # the rest: a duplicate of an id seen earlier or kept earlier in this chunk; else a bad date or channel
    duplicate = np.zeros(len(frame), dtype=bool)
    open_rows = np.flatnonzero(first_failed < 0)
    if len(open_rows):
        open_ids = ids.to_numpy()[open_rows]
        seen_before = np.fromiter((i in seen_ids for i in open_ids), dtype=bool, count=len(open_rows))
        passes_rest = ~bad_date[open_rows] & ~long_channel[open_rows]
        order = np.arange(len(open_rows))
        first_kept = (pd.Series(np.where(passes_rest & ~seen_before, order, len(order)))
                      .groupby(open_ids).transform("min").to_numpy())
        duplicate[open_rows] = seen_before | (order > first_kept)
    later = len(checks)
    checks += [(duplicate, "id", QuarantineReason.DUPLICATE_IN_SOURCE),
               (bad_date, date_column, QuarantineReason.BAD_DATE),
               (long_channel, "channel", QuarantineReason.VALUE_TOO_LONG)]
    for number in range(later, len(checks)):
        first_failed[(first_failed < 0) & checks[number][0]] = number
    failed_rows = np.flatnonzero(first_failed >= 0)  # itertuples: plain Python values, as the database wants them
    quarantined = [_rejected(row, checks[number][1:]) for row, number in
                   zip(frame.iloc[failed_rows].itertuples(index=False), first_failed[failed_rows])]
    keep = np.flatnonzero(first_failed < 0)
    for complaint_id in ids.to_numpy()[keep]:
        seen_ids.add(complaint_id)
    good = frame.iloc[keep].drop(columns=["has_text_column"]).reset_index(drop=True)
    good["created_at"] = stamps.iloc[keep].reset_index(drop=True)
    good["text_truncated"] = good["text"].str.len() > max_text_chars
    good["content_hash"] = [content_hash(t) for t in good["text"].tolist()]  # tolist: pyarrow iterates slowly
    good["text"] = good["text"].str.replace("\x00", "", regex=False)  # meaningless, and PostgreSQL refuses it
    return good, quarantined


def _rejected(row, failure: tuple[str, QuarantineReason]) -> QuarantinedRow:
    """The quarantined row for the first check ``row`` failed, with what people need to fix it."""
    column, reason = failure
    raw = {"id": row.complaint_id, "text": row.text, "created_at": row.created_at_raw, "channel": row.channel,
           **row.metadata}
    shown_id = shown_value(row.complaint_id)
    if reason == QuarantineReason.MISSING_COLUMN:
        detail = f"no column {column!r}; columns not mapped: {_column_names(row.metadata)}"
    elif reason == QuarantineReason.EMPTY_TEXT:
        detail = "text is empty or whitespace"
    elif reason == QuarantineReason.NO_LETTERS:  # not echoed: often a bare phone number
        detail = f"the text ({len(row.text.strip())} characters) has no letters"
    elif reason == QuarantineReason.VALUE_TOO_LONG and column == "id":
        detail = (f"id {shown_id!r} has {len(row.complaint_id)} characters, more than the {ID_LENGTH} "
                  "an id may have")
    elif reason == QuarantineReason.CONTROL_CHARACTERS:
        detail = f"id {shown_id!r} holds a NUL or another control character"
    elif reason == QuarantineReason.DUPLICATE_IN_SOURCE:
        detail = f"id {shown_id!r} appears earlier in this source"
    elif reason == QuarantineReason.BAD_DATE:
        detail = f"cannot read {shown_value(row.created_at_raw)!r} as a date"
    else:  # VALUE_TOO_LONG, channel
        detail = (f"channel {shown_value(row.channel)!r} has {len(row.channel)} characters, more than the "
                  f"{CHANNEL_LENGTH} a channel may have")
    return QuarantinedRow(row.source, row.source_row, column, reason, detail, raw)


class MostlyQuarantinedError(ValueError):
    """Nearly every row of a source was quarantined for one reason: a column mapping, the encoding or the
    export itself is wrong. The message names what to change."""


# Row fields ``validate_rows`` puts in a quarantined row's ``raw`` besides the source's other columns.
_PRODUCT_FIELDS = ("id", "text", "created_at", "channel")


def _fix_for(row: QuarantinedRow, columns: ColumnMapping) -> str:
    """What to change when (nearly) every row was quarantined like ``row``."""
    field_name = next((name for name, column in columns.model_dump().items() if column == row.column), row.column)

    def remap(name: str, column: str = "NAME") -> str:
        return f'--column {name}={column} or, in the settings file, [columns] {name} = "{column}"'

    if row.reason == QuarantineReason.MISSING_COLUMN:  # the text column: its likeliest stand-in holds the longest text
        others = {name: str(value) for name, value in row.raw.items() if name not in _PRODUCT_FIELDS}
        likeliest = max(others, key=lambda name: len(others[name]), default=None)
        guess = mask_pii(likeliest) if likeliest and has_letters(others[likeliest]) else "NAME"
        return f"map the {field_name} column: " + remap(field_name, guess)
    if row.reason in (QuarantineReason.EMPTY_TEXT, QuarantineReason.NO_LETTERS):
        return f"is '{row.column}' the complaint text? map the right column: " + remap("text")
    if row.reason == QuarantineReason.VALUE_TOO_LONG:
        return f"is '{row.column}' the complaint's {field_name}? map the right column: " + remap(field_name)
    if row.reason in (QuarantineReason.DUPLICATE_IN_SOURCE, QuarantineReason.ID_CONFLICT,
                      QuarantineReason.CONTROL_CHARACTERS):
        return f"is '{row.column}' the complaint id? map the right column: " + remap("id")
    if row.reason == QuarantineReason.BAD_DATE:
        return f"is '{row.column}' the complaint date? map the right column ({remap('created_at')}) or export ISO dates"
    if row.reason in (QuarantineReason.UNREADABLE_FILE, QuarantineReason.NO_KEY):
        return QUARANTINE_ADVICE[row.reason]
    if row.reason == QuarantineReason.UNDECODABLE:
        return "give the file's encoding: --encoding big5 (or gb18030, utf-16 …), or encoding = \"…\" in the settings file"
    return "check the file's separator and quoting (CSV: commas, TSV/TXT: tabs)"


@dataclass
class QuarantineTally:
    """Quarantine reasons over a whole run, to tell a wrong mapping or export from a few bad rows."""

    by_reason: Counter = field(default_factory=Counter)
    first: dict[QuarantineReason, QuarantinedRow] = field(default_factory=dict)

    def add(self, rows: list[QuarantinedRow]) -> None:
        for row in rows:
            self.by_reason[row.reason] += 1
            self.first.setdefault(row.reason, row)

    def check(self, rows_read: int, settings: Settings, kept_in: Path | None = None) -> None:
        """Raise ``MostlyQuarantinedError`` when at least ``quarantine_failure_share`` of the rows were
        quarantined; the message names the commonest reason and what to change for it."""
        quarantined = sum(self.by_reason.values())
        if not rows_read or quarantined < settings.quarantine_failure_share * rows_read:
            return
        reason, count = self.by_reason.most_common(1)[0]
        row = self.first[reason]
        how_many = f"all {rows_read}" if quarantined == rows_read else f"{quarantined} of {rows_read}"
        share = "" if count == quarantined else f", {count} of them"
        kept = f"; the rows are kept in {kept_in}" if kept_in else ""
        raise MostlyQuarantinedError(f"{row.source}: {how_many} rows were quarantined{share} as {reason.value} "
                                     f"({row.detail}) — {_fix_for(row, settings.columns)}{kept}")
