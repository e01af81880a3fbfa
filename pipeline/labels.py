"""The cause labels: their keys, Chinese names and the variants people type for them."""
from __future__ import annotations

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
