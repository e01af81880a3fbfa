"""The evaluation-reserve rule (mirrors shared/tools/reserved.py): such texts never enter training data."""
from __future__ import annotations

import hashlib
import unicodedata

RESERVED_PREFIXES = ("0", "1", "2")


def is_reserved(text: str) -> bool:
    key = unicodedata.normalize("NFKC", text).strip()
    return hashlib.sha256(key.encode("utf-8")).hexdigest().startswith(RESERVED_PREFIXES)
