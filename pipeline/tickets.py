"""Tickets: one per classified complaint, with a deterministic id so reruns never duplicate one."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

from pipeline.route import RoutingDecision

OPEN = "open"


def ticket_id_for(complaint_id: str) -> str:
    return "TK-" + hashlib.sha256(complaint_id.encode("utf-8")).hexdigest()[:16]


def build_ticket(*, complaint: dict, prediction: dict, decision: RoutingDecision, model_version: str,
                 probabilities: dict[str, float], escalation_reasons: list[str], created_at: datetime,
                 run_id: str) -> dict:
    """A ticket row; ``payload`` is what receivers (files, webhooks) get."""
    ticket_id = ticket_id_for(complaint["complaint_id"])
    due_at = created_at + timedelta(hours=decision.sla_hours)
    payload = {
        "ticket_id": ticket_id,
        "complaint_id": complaint["complaint_id"],
        "text": complaint["text_masked"],
        "channel": complaint.get("channel"),
        "complaint_created_at": complaint["created_at"].isoformat() if complaint.get("created_at") else None,
        "cause": prediction["cause"],
        "secondary_causes": [c for c in prediction["secondary_causes"].split("|") if c],
        "confidence": prediction["confidence"],
        "needs_review": bool(prediction["needs_review"]),
        "probabilities": probabilities,
        "explanation": prediction["explanation"],
        "remedy": {"code": decision.remedy.code, "title_zh": decision.remedy.title_zh,
                   "title_en": decision.remedy.title_en, "owner_role": decision.remedy.owner_role,
                   "immediate": decision.remedy.immediate, "preventive": decision.remedy.preventive},
        "queue": decision.queue,
        "priority": decision.priority,
        "due_at": due_at.isoformat(timespec="seconds"),
        "escalation_reasons": escalation_reasons,
        "model_version": model_version,
        "status": OPEN,
    }
    return {
        "ticket_id": ticket_id, "complaint_id": complaint["complaint_id"], "cause": prediction["cause"],
        "remedy_code": decision.remedy.code, "queue": decision.queue, "priority": decision.priority,
        "due_at": due_at, "escalation_reasons": json.dumps(escalation_reasons, ensure_ascii=False),
        "model_version": model_version, "status": OPEN,
        "payload_json": json.dumps(payload, ensure_ascii=False), "run_id": run_id, "created_at": created_at,
    }
