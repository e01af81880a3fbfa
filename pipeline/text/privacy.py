"""Personal data in what the product keeps: texts masked, personal columns pseudonymised.

Free text (complaint texts, other metadata values, quarantine details) goes through ``mask_pii``.
Columns that name a person or a way to reach one (``Settings.personal_columns``, and the mapped customer
column) keep only a customer reference: a keyed hash (HMAC-SHA256) of the value, the same for the same
customer in every run, so repeat complaints are still found and a known customer's complaints can be
looked up (``complaints customer-ref VALUE``), but the value cannot be read back without the key.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from pipeline.config import column_key
from pipeline.text.normalise import mask_pii
from pipeline.ingest.quarantine import QuarantinedRow

KEY_FILE = "pseudonym.key"
REFERENCE_PREFIX = "C-"


def _key_from_file(path: Path) -> bytes:
    """The work directory's pseudonym key, created (readable by its owner only) on first use."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_hex(32).encode()
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first
            return path.read_bytes().strip()
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(key)
        return key


class Privacy:
    def __init__(self, key: bytes, personal_columns: set[str], keep_raw_rows: bool = False):
        self._key = key
        self.personal_columns = {column_key(c) for c in personal_columns}
        self.keep_raw_rows = keep_raw_rows

    @classmethod
    def from_settings(cls, settings) -> "Privacy":
        key = (settings.pseudonym_key.get_secret_value().encode() if settings.pseudonym_key
               else _key_from_file(settings.work_dir / KEY_FILE))
        return cls(key, set(settings.personal_columns) | {settings.columns.customer}, settings.keep_raw_rows)

    def is_personal(self, column: str) -> bool:
        return column_key(column) in self.personal_columns

    def customer_ref(self, value) -> str | None:
        """A stable pseudonym for a customer identifier (None for an empty one)."""
        text = str(value if value is not None else "").strip()
        if not text:
            return None
        return REFERENCE_PREFIX + hmac.new(self._key, text.encode("utf-8"), hashlib.sha256).hexdigest()[:16]

    def mask_fields(self, fields: dict) -> dict:
        """Metadata (or a raw row) fit to keep: personal columns as customer references, other text masked."""
        return {column: self.customer_ref(value) if self.is_personal(column)
                else mask_pii(value) if isinstance(value, str) else value
                for column, value in fields.items()}

    def quarantined(self, row: QuarantinedRow) -> QuarantinedRow:
        """A quarantined row as it may be kept: masked, unless the settings ask for raw rows."""
        if self.keep_raw_rows:
            return row
        return dataclasses.replace(row, detail=mask_pii(row.detail), raw=self.mask_fields(row.raw))
