"""Row checks: every row either passes on to classification or is quarantined with a reason."""
from __future__ import annotations

import hashlib
import re

import pandas as pd

from pipeline.normalise import has_letters
from pipeline.schemas import QuarantinedRow, QuarantineReason

_CHINESE_DATE = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?")


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Vectorised date parsing: ISO forms in one pass, other common export forms one by one; time-zone
    aware values are converted to UTC. Empty and unparseable values both come back as NaT."""
    cleaned = values.fillna("").astype(str).str.strip().map(
        lambda v: _CHINESE_DATE.sub(lambda m: f"{m[1]}-{int(m[2]):02d}-{int(m[3]):02d} ", v).strip() if "年" in v else v)
    parsed = pd.to_datetime(cleaned, errors="coerce", format="ISO8601", utc=True)
    retry = parsed.isna() & (cleaned != "")
    if retry.any():
        parsed[retry] = pd.to_datetime(cleaned[retry], errors="coerce", format="mixed", utc=True)
    return parsed.dt.tz_convert(None).astype("datetime64[ns]")


def content_hash(text: str) -> str:
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


def validate_rows(frame: pd.DataFrame, seen_ids: set[str], *, max_text_chars: int,
                  text_column: str = "text", date_column: str = "created_at"
                  ) -> tuple[pd.DataFrame, list[QuarantinedRow]]:
    """Split mapped rows into good rows and quarantined ones. ``seen_ids`` carries ids across chunks."""
    quarantined: list[QuarantinedRow] = []
    keep: list[int] = []
    stamps = parse_timestamps(frame["created_at_raw"]) if len(frame) else pd.Series([], dtype="datetime64[ns]")
    for position, row in enumerate(frame.itertuples(index=False)):
        raw = {"id": row.complaint_id, "text": row.text, "created_at": row.created_at_raw,
               "channel": row.channel, **row.metadata}

        def reject(column: str, reason: QuarantineReason, detail: str) -> None:
            quarantined.append(QuarantinedRow(row.source, row.source_row, column, reason, detail, raw))

        if not row.has_text_column:
            reject(text_column, QuarantineReason.MISSING_COLUMN, "the row has no text column")
        elif not row.text.strip():
            reject(text_column, QuarantineReason.EMPTY_TEXT, "text is empty or whitespace")
        elif not has_letters(row.text):
            reject(text_column, QuarantineReason.NO_LETTERS, f"text {row.text[:30]!r} has no letters")
        elif row.complaint_id in seen_ids:
            reject("id", QuarantineReason.DUPLICATE_IN_SOURCE,
                   f"id {row.complaint_id!r} appears earlier in this source")
        elif pd.isna(stamps.iloc[position]) and row.created_at_raw.strip():
            reject(date_column, QuarantineReason.BAD_DATE, f"cannot read {row.created_at_raw!r} as a date")
        else:
            seen_ids.add(row.complaint_id)
            keep.append(position)
    good = frame.iloc[keep].drop(columns=["has_text_column"]).reset_index(drop=True)
    good["created_at"] = stamps.iloc[keep].reset_index(drop=True)
    good["text_truncated"] = good["text"].str.len() > max_text_chars
    good["content_hash"] = [content_hash(t) for t in good["text"]]
    return good, quarantined
