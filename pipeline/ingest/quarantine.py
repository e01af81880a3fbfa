"""Why a row was set aside, and what to do about it: every quarantined row keeps its reason and advice."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class QuarantineReason(StrEnum):
    EMPTY_TEXT = "empty_text"
    NO_LETTERS = "no_letters"
    UNDECODABLE = "undecodable_bytes"
    MALFORMED_ROW = "malformed_row"
    BAD_DATE = "unparseable_date"
    DUPLICATE_IN_SOURCE = "duplicate_id_in_source"
    ID_CONFLICT = "id_already_stored_with_other_text"
    MISSING_COLUMN = "missing_column"
    VALUE_TOO_LONG = "value_too_long"  # an id or channel longer than the database keeps
    CONTROL_CHARACTERS = "control_characters_in_id"
    NO_KEY = "no_key_value"
    UNREADABLE_FILE = "unreadable_file"


QUARANTINE_ADVICE = {
    QuarantineReason.EMPTY_TEXT: "fill in the complaint text or drop the row at the source",
    QuarantineReason.NO_LETTERS: "the text holds no words (only digits, symbols or emoji); check the export",
    QuarantineReason.UNDECODABLE: "re-export the file as UTF-8 (or fix the bytes in this cell)",
    QuarantineReason.MALFORMED_ROW: "the row does not fit the file's structure; check quoting and separators",
    QuarantineReason.BAD_DATE: "use an ISO date such as 2026-11-23 or 2026-11-23 14:05",
    QuarantineReason.DUPLICATE_IN_SOURCE: "two rows share this id; give each complaint its own id",
    QuarantineReason.ID_CONFLICT: "this id was already stored with a different text; use a new id",
    QuarantineReason.MISSING_COLUMN: "map the column: --column FIELD=NAME, or [columns] in the settings file",
    QuarantineReason.VALUE_TOO_LONG: "shorten the value at the source, or check that the right column is mapped",
    QuarantineReason.CONTROL_CHARACTERS: "fix the id at the source: NUL and control characters cannot be kept in an id",
    QuarantineReason.NO_KEY: "give the row a value in the key column, or read the source by another key "
                             "(setting source_key_column)",
    QuarantineReason.UNREADABLE_FILE: "the whole file was set aside: fix or re-export it under its name and "
                                      "the next run takes it",
}


@dataclass(frozen=True)
class QuarantinedRow:
    source: str
    source_row: int  # 1-based data row (header excluded) or line number for line-based files
    column: str
    reason: QuarantineReason
    detail: str
    raw: dict = field(default_factory=dict)

    def message(self) -> str:
        return (f"{self.source}: row {self.source_row}, column '{self.column}': {self.reason.value}"
                f" ({self.detail}) — {QUARANTINE_ADVICE[self.reason]}")
