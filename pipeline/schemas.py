"""Names shared across stages: the cause labels, record columns and quarantine reasons."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

CAUSES: tuple[str, ...] = ("personnel", "process", "technology", "management", "customer", "random")
NONE_LABEL = "none"  # not a service-failure complaint: goes to manual review, never a cause
# Runs and trend reports warn when more than this share of complaints looks unlike the training data
# (about a tenth of the model's own kind of text does; the model's review policy uses the same share).
UNFAMILIAR_NOTE_SHARE = 0.3
CAUSE_NAMES_ZH = {
    "personnel": "人员", "process": "流程", "technology": "技术", "management": "管理",
    "customer": "顾客", "random": "随机因素", NONE_LABEL: "非投诉/待人工",
}
# What people type for a label in review files and labelled data: the English key, the Chinese name the
# report shows, and the usual variants of it.
LABEL_ALIASES = {
    **{name: key for key, name in CAUSE_NAMES_ZH.items()},
    "人员因素": "personnel", "员工": "personnel", "人为": "personnel",
    "流程因素": "process", "过程": "process", "程序": "process",
    "技术因素": "technology", "设备": "technology", "产品质量": "technology",
    "管理因素": "management", "制度": "management", "政策": "management",
    "顾客因素": "customer", "客户": "customer", "客户原因": "customer", "顾客原因": "customer",
    "随机": "random", "不可抗力": "random", "偶然因素": "random",
    "非投诉": NONE_LABEL, "无": NONE_LABEL, "待人工": NONE_LABEL,
}


def canonical_label(cell: str) -> str:
    """A label as typed (``管理``, ``Management``, ``人员因素``) → its key; unknown text is returned stripped
    and unchanged, for the caller to reject or to keep as a custom label."""
    text = str(cell).strip()
    return LABEL_ALIASES.get(text) or (text.lower() if text.lower() in (*CAUSES, NONE_LABEL) else text)



class QuarantineReason(StrEnum):
    EMPTY_TEXT = "empty_text"
    NO_LETTERS = "no_letters"
    UNDECODABLE = "undecodable_bytes"
    MALFORMED_ROW = "malformed_row"
    BAD_DATE = "unparseable_date"
    DUPLICATE_IN_SOURCE = "duplicate_id_in_source"
    ID_CONFLICT = "id_already_stored_with_other_text"
    MISSING_COLUMN = "missing_column"


QUARANTINE_ADVICE = {
    QuarantineReason.EMPTY_TEXT: "fill in the complaint text or drop the row at the source",
    QuarantineReason.NO_LETTERS: "the text holds no words (only digits, symbols or emoji); check the export",
    QuarantineReason.UNDECODABLE: "re-export the file as UTF-8 (or fix the bytes in this cell)",
    QuarantineReason.MALFORMED_ROW: "the row does not fit the file's structure; check quoting and separators",
    QuarantineReason.BAD_DATE: "use an ISO date such as 2026-11-23 or 2026-11-23 14:05",
    QuarantineReason.DUPLICATE_IN_SOURCE: "two rows share this id; give each complaint its own id",
    QuarantineReason.ID_CONFLICT: "this id was already stored with a different text; use a new id",
    QuarantineReason.MISSING_COLUMN: "map the column: --column FIELD=NAME, or [columns] in the settings file",
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
