"""Tickets: one per classified complaint, with a deterministic id so reruns never duplicate one."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime

from pipeline.clock import local_iso
from pipeline.routing.router import Remedy, RoutingDecision
from pipeline.tickets.sla import BuiltLate, SlaClock, SlaRules, clock_start

OPEN = "open"
as_json = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(…, ensure_ascii=False) without an encoder per call


def ticket_id_for(complaint_id: str) -> str:
    return "TK-" + hashlib.sha256(complaint_id.encode("utf-8")).hexdigest()[:16]


def encode_remedy(remedy: Remedy) -> str:
    """A remedy as ticket payloads hold it: the same for every ticket with the remedy (≈ 0.4 KB of each)."""
    return as_json({"code": remedy.code, "title_zh": remedy.title_zh, "title_en": remedy.title_en,
                    "owner_role": remedy.owner_role, "immediate": remedy.immediate, "preventive": remedy.preventive})


def build_ticket(*, complaint: dict, prediction: dict, decision: RoutingDecision, model_version: str,
                 probabilities: dict[str, float], escalation_reasons: list[str], created_at: datetime,
                 run_id: str, escalation_steps: list[str] | None = None, clock: SlaClock | None = None,
                 received_at: datetime | None = None, deadlines: dict | None = None,
                 late: BuiltLate | None = None, probabilities_json: str | None = None,
                 remedy_json: str | None = None) -> dict:
    """A ticket row; ``payload`` is what receivers (files, webhooks) get. ``decision`` is the route after
    escalation; ``escalation_steps`` are the fired rules' extra immediate actions. The deadlines run from
    the complaint's own time on ``clock`` (around the clock without one). The row's times are UTC like
    every stored time; the payload shows them in the clock's time zone with the offset. ``received_at``:
    ``clock_start`` of the complaint's time, and ``deadlines``: ``clock.deadlines`` of the ticket, when the
    caller has them already. ``late``: the ticket is past its resolve deadline already (``late_when_built``);
    escalated, its priority, reasons and steps are the breach rule's, as the deadline sweep would have made them.
    ``probabilities_json`` (``probabilities`` encoded) and ``remedy_json`` (``encode_remedy`` of the decision's
    remedy): when the caller has them already, spliced into the payload as they are."""
    ticket_id = ticket_id_for(complaint["complaint_id"])
    if received_at is None:
        received_at = clock_start(complaint.get("created_at"), created_at)
    clock = clock or SlaClock(SlaRules(), "UTC")
    zone = clock.zone.key
    deadlines = deadlines or clock.deadlines(received_at, decision.queue, decision.priority, decision.sla_hours)
    due_at = deadlines["due_at"]
    priority = decision.priority
    if late is not None and late.escalated:
        priority = late.priority_after
        escalation_reasons = escalation_reasons + [late.reason]
        escalation_steps = (escalation_steps or []) + list(late.steps)
    head = as_json({
        "ticket_id": ticket_id,
        "complaint_id": complaint["complaint_id"],
        "text": complaint["text_masked"],
        "channel": complaint.get("channel"),
        "customer_ref": complaint.get("customer_key"),  # for call-back: `complaints customer-ref` finds it
        "complaint_created_at": local_iso(complaint.get("created_at"), zone),
        "cause": prediction["cause"],
        "secondary_causes": [c for c in prediction["secondary_causes"].split("|") if c],
        "confidence": prediction["confidence"],
        "needs_review": bool(prediction["needs_review"]),
    })
    tail = as_json({
        "queue": decision.queue,
        "priority": priority,
        "due_at": local_iso(due_at, zone),
        "acknowledge_due_at": local_iso(deadlines["acknowledge_due_at"], zone),
        "escalation_reasons": escalation_reasons,
        "escalation_steps": escalation_steps or [],
        "model_version": model_version,
        "status": OPEN,
    })
    # the text of the whole payload dict encoded at once (tests/test_ticket_json.py), with the parts that
    # the caller encoded once for many tickets spliced in
    payload_json = (f'{head[:-1]}, "probabilities": {probabilities_json or as_json(probabilities)}, '
                    f'"explanation": {as_json(prediction["explanation"])}, '
                    f'"remedy": {remedy_json or encode_remedy(decision.remedy)}, {tail[1:]}')
    return {
        "ticket_id": ticket_id, "complaint_id": complaint["complaint_id"], "cause": prediction["cause"],
        "remedy_code": decision.remedy.code, "queue": decision.queue, "priority": priority,
        "due_at": due_at, "escalation_reasons": as_json(escalation_reasons),
        "model_version": model_version, "status": OPEN,
        "payload_json": payload_json, "run_id": run_id, "created_at": created_at,
        "received_at": received_at, "acknowledge_due_at": deadlines["acknowledge_due_at"], "reopened_count": 0,
    }


def flat_ticket(payload: dict) -> dict:
    """A ticket payload as one spreadsheet row (lists joined by newlines)."""
    remedy = payload["remedy"]
    return {
        "ticket_id": payload["ticket_id"], "complaint_id": payload["complaint_id"], "queue": payload["queue"],
        "priority": payload["priority"], "due_at": payload["due_at"], "status": payload["status"],
        "cause": payload["cause"], "confidence": payload["confidence"], "needs_review": payload["needs_review"],
        "secondary_causes": "|".join(payload["secondary_causes"]), "explanation": payload["explanation"],
        "escalation_reasons": "\n".join(payload["escalation_reasons"]),
        "escalation_steps": "\n".join(payload.get("escalation_steps", [])),
        "remedy_code": remedy["code"], "remedy_title_zh": remedy["title_zh"], "remedy_title_en": remedy["title_en"],
        "owner_role": remedy["owner_role"], "immediate_steps": "\n".join(remedy["immediate"]),
        "preventive_steps": "\n".join(remedy["preventive"]), "text": payload["text"],
        "channel": payload["channel"], "customer_ref": payload.get("customer_ref"),
        "complaint_created_at": payload["complaint_created_at"],
        "probabilities": json.dumps(payload["probabilities"], ensure_ascii=False),
        "model_version": payload["model_version"],
    }
