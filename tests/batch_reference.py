"""The batch path's record building and write as they were before they were made faster (main at e67ce0d),
kept as the reference that ``tests/test_batch_equivalence.py`` compares the stored rows with: one row at a
time, in this process, every text masked and normalised here, SQLAlchemy Core inserts of dicts; the tickets
built past their deadline escalated afterwards by the deadline sweep, as the nightly run did before the
batches escalated them as they built them. Its ticket is built as main's ``build_ticket`` built it (at d99ef96):
the payload one dict encoded whole, its times through pandas, so the faster ticket code is compared, not shared."""
from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pandas as pd

from pipeline.config import WebhookTarget
from pipeline.delivery.outbox import outbox_entries
from pipeline.model.classify import classify_texts
from pipeline.nightly.batch import BatchRun, ClassifyingBatch, PreparedBatch
from pipeline.routing.escalation import CustomerHistory, Escalator, as_customer_key, complaint_time, escalate, with_batch
from pipeline.routing.router import Router
from pipeline.storage import store
from pipeline.text.normalise import mask_pii
from pipeline.clock import to_local
from pipeline.routing.router import RoutingDecision
from pipeline.tickets.build import OPEN, ticket_id_for
from pipeline.tickets.sla import SlaClock, clock_start, escalate_breaches


def reference_build_ticket(*, complaint: dict, prediction: dict, decision: RoutingDecision, model_version: str,
                           probabilities: dict[str, float], escalation_reasons: list[str], created_at: datetime,
                           run_id: str, escalation_steps: list[str], clock: SlaClock) -> dict:
    ticket_id = ticket_id_for(complaint["complaint_id"])
    received_at = clock_start(complaint.get("created_at"), created_at)
    zone = clock.zone.key
    acknowledge_due_at = clock.due(received_at, clock.acknowledge_hours(decision.queue, decision.priority),
                                   decision.queue)
    due_at = clock.due(received_at, decision.sla_hours, decision.queue)

    def local_iso(value):
        local = to_local(value, zone)
        return local.isoformat(timespec="seconds") if local is not None else None

    payload = {
        "ticket_id": ticket_id,
        "complaint_id": complaint["complaint_id"],
        "text": complaint["text_masked"],
        "channel": complaint.get("channel"),
        "customer_ref": complaint.get("customer_key"),
        "complaint_created_at": local_iso(complaint.get("created_at")),
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
        "due_at": local_iso(due_at),
        "acknowledge_due_at": local_iso(acknowledge_due_at),
        "escalation_reasons": escalation_reasons,
        "escalation_steps": escalation_steps,
        "model_version": model_version,
        "status": OPEN,
    }
    return {
        "ticket_id": ticket_id, "complaint_id": complaint["complaint_id"], "cause": prediction["cause"],
        "remedy_code": decision.remedy.code, "queue": decision.queue, "priority": decision.priority,
        "due_at": due_at, "escalation_reasons": json.dumps(escalation_reasons, ensure_ascii=False),
        "model_version": model_version, "status": OPEN,
        "payload_json": json.dumps(payload, ensure_ascii=False), "run_id": run_id, "created_at": created_at,
        "received_at": received_at, "acknowledge_due_at": acknowledge_due_at, "reopened_count": 0,
    }


def reference_build_records(rows: pd.DataFrame, predictions: pd.DataFrame, *, router: Router, model_version: str,
                            run_id: str, now: datetime, escalator: Escalator | None = None,
                            customer_history: CustomerHistory | None = None,
                            webhooks: dict[str, WebhookTarget] | None = None,
                            keep_raw_text: bool = False) -> dict[str, list[dict]]:
    complaint_rows, prediction_rows, ticket_rows, outbox_rows = [], [], [], []
    probability_columns = [c for c in predictions.columns if c.startswith("p_")]
    records = rows.to_dict("records")
    times = [complaint_time(row["created_at"], now) for row in records]
    customer_keys = [as_customer_key(row.get("customer_key")) for row in records]
    history = with_batch(customer_history or {},
                         [(key, at, row["complaint_id"]) for row, key, at in zip(records, customer_keys, times)])
    for row, customer_key, at, prediction in zip(records, customer_keys, times, predictions.to_dict("records")):
        created_at = row["created_at"] if pd.notna(row["created_at"]) else None
        masked = mask_pii(row["text"])
        complaint = {
            "complaint_id": row["complaint_id"], "text_raw": row["text"] if keep_raw_text else masked,
            "text_masked": masked,
            "content_hash": row["content_hash"], "created_at": created_at, "channel": row["channel"],
            "customer_key": customer_key,
            "metadata_json": json.dumps(row["metadata"], ensure_ascii=False), "source": row["source"],
            "source_row": int(row["source_row"]), "text_truncated": bool(row["text_truncated"]),
            "run_id": run_id, "ingested_at": now,
        }
        probabilities = {c.removeprefix("p_"): float(prediction[c]) for c in probability_columns}
        complaint_rows.append(complaint)
        prediction_rows.append({
            "complaint_id": row["complaint_id"], "model_version": model_version, "cause": prediction["cause"],
            "confidence": float(prediction["confidence"]), "needs_review": bool(prediction["needs_review"]),
            "secondary_causes": prediction["secondary_causes"],
            "probabilities_json": json.dumps(probabilities), "explanation": prediction["explanation"],
            "unfamiliar": bool(prediction.get("unfamiliar", False)),
            "coverage": None if pd.isna(prediction.get("coverage", np.nan)) else float(prediction["coverage"]),
            "run_id": run_id, "predicted_at": now,
        })
        fields = {"channel": row["channel"] or "", **row["metadata"]}
        decision = router.route_for_cause(prediction["cause"], bool(prediction["needs_review"]), fields)
        triggers = escalator.triggers_for(text=row["text"], complaint_id=row["complaint_id"],
                                          customer_key=customer_key, at=at, history=history,
                                          masked=masked) if escalator else []
        ticket = reference_build_ticket(complaint=complaint, prediction=prediction,
                                        decision=escalate(decision, triggers), model_version=model_version,
                                        probabilities=probabilities,
                                        escalation_reasons=[t.describe() for t in triggers],
                                        escalation_steps=[step for t in triggers for step in t.steps],
                                        created_at=now, run_id=run_id, clock=router.sla_clock)
        ticket_rows.append(ticket)
        outbox_rows.extend(outbox_entries(ticket, webhooks or {}, now))
    return {"complaint_rows": complaint_rows, "prediction_rows": prediction_rows,
            "ticket_rows": ticket_rows, "outbox_rows": outbox_rows}


def reference_write_batch(engine, *, complaint_rows, prediction_rows, ticket_rows, outbox_rows, quarantine_rows,
                          run_id: str, counts: dict) -> None:
    with engine.begin() as conn:
        for table, rows in ((store.complaints, complaint_rows), (store.predictions, prediction_rows),
                            (store.tickets, ticket_rows), (store.outbox, outbox_rows),
                            (store.quarantine, quarantine_rows)):
            if rows:
                conn.execute(store.insert_or_ignore(conn, table), rows)
        conn.execute(store.runs.update().where(store.runs.c.run_id == run_id).values(**counts))


class ReferenceBatchRun(BatchRun):
    """BatchRun with each batch classified here, in one process, and built and written the reference way;
    after the batches, the deadline sweep at the run's clock."""

    def run(self, chunks):
        counts = super().run(chunks)
        escalate_breaches(self.engine, self.router.sla_clock, self.escalator.rules.breach, now=self.clock(),
                          run_id=self.run_id, webhooks=self.settings.webhooks)
        return counts

    def start_classifying(self, batch: PreparedBatch) -> ClassifyingBatch:
        texts = batch.new_rows["text"].str.slice(0, self.settings.max_text_chars).tolist()
        return ClassifyingBatch(batch, self._ahead.submit(classify_texts, self.model, texts))

    def store(self, classifying: ClassifyingBatch) -> dict[str, list[dict]]:
        batch, predictions = classifying.prepared, classifying.predictions.result()
        now = self.clock()
        keys, since = self.escalator.history_needed(batch.new_rows, now)
        history = store.customer_history(self.engine, keys, since) if keys else {}
        records = reference_build_records(batch.new_rows, predictions, router=self.router,
                                          model_version=self.model.version, run_id=self.run_id, now=now,
                                          escalator=self.escalator, customer_history=history,
                                          webhooks=self.settings.webhooks, keep_raw_text=self.settings.keep_raw_rows)
        self.counts.add(batch.counts)
        reference_write_batch(self.engine, quarantine_rows=store.quarantine_records(batch.quarantined, self.run_id),
                              run_id=self.run_id, counts=self.counts.as_dict(), **records)
        self.tally.add(batch.quarantined)
        return records
