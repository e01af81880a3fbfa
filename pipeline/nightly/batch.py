"""The one batch path: raw chunk → rows stored already set aside by their keys (``stored.py``) → the rest
mapped → validated / quarantined → new vs already seen → classified → routed / escalated → stored. ``BatchRun`` runs it over a source; the Prefect flow, the command
line, the benchmarks and the tests all go through it. Every row read ends in exactly one of: classified,
quarantined, skipped as already seen, skipped as older than the watermark.

Free of Prefect, so a batch can run wherever Python runs (a Dask worker).
"""
from __future__ import annotations

import gc
import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import sqlalchemy as sa

from pipeline.storage import store
from pipeline.config import Settings, WebhookTarget
from pipeline.delivery.outbox import escalation_entries, outbox_entries
from pipeline.routing.escalation import BreachRule, CustomerHistory, Escalator, as_customer_key, escalate, with_batch
from pipeline.ingest.sources import RawChunk, map_columns
from pipeline.text.normalise import mask_pii
from pipeline.text.privacy import Privacy
from pipeline.routing.router import Router
from pipeline.ingest.quarantine import QuarantinedRow, QuarantineReason
from pipeline.tickets.build import as_json, build_ticket, encode_remedy
from pipeline.tickets.sla import late_when_built
from pipeline.ingest.validate import QuarantineTally, validate_rows
from pipeline.model.classify import CauseModel, TextWork
from pipeline.model.cluster import open_classifier
from pipeline.nightly.progress import RunProgress
from pipeline.nightly.stored import split_stored
from pipeline.nightly.summary import append_quarantine_file

log = logging.getLogger(__name__)
# a database that went away for a moment (locked, I/O error): the lookup and the batch's write are tried again
LOOKUP_RETRIES, WRITE_RETRIES, RETRY_DELAY_SECONDS = 2, 3, 2.0

COUNT_FIELDS = ("rows_read", "classified", "quarantined", "skipped_seen", "skipped_before_since")


class CountMismatchError(RuntimeError):
    """Rows read ≠ classified + quarantined + skipped: a row went missing. The run is marked failed."""


@dataclass
class RunCounts:
    rows_read: int = 0
    classified: int = 0
    quarantined: int = 0
    skipped_seen: int = 0
    skipped_before_since: int = 0

    def add(self, other: "RunCounts") -> None:
        for name in COUNT_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in COUNT_FIELDS}

    def check(self) -> None:
        accounted = self.classified + self.quarantined + self.skipped_seen + self.skipped_before_since
        if accounted != self.rows_read:
            raise CountMismatchError(
                f"rows read {self.rows_read} ≠ classified {self.classified} + quarantined {self.quarantined}"
                f" + skipped {self.skipped_seen + self.skipped_before_since}")


@dataclass
class PreparedBatch:
    """Rows that still need classifying, with everything decided about the others."""

    new_rows: pd.DataFrame
    quarantined: list[QuarantinedRow] = field(default_factory=list)
    counts: RunCounts = field(default_factory=RunCounts)


def prepare_batch(chunk: RawChunk, settings: Settings, seen_ids: set[str],
                  lookup_stored: Callable[[list[str]], dict[str, str]], since: datetime | None) -> PreparedBatch:
    """Validate a raw chunk and set aside what is already stored (``lookup_stored``: ids → content hashes,
    asked once per chunk).

    Rows stored with the same text are recognised from their keys and never mapped or validated
    (``pipeline/nightly/stored.py``); the rest go the full way. ``seen_ids`` (ids of earlier chunks) grows
    only once the lookup has succeeded: a retry after a failed lookup then sees the chunk as it was, not its
    own ids as duplicates."""
    split = split_stored(chunk, settings, seen_ids, lookup_stored, since)
    chunk, stored = split.rest, split.stored
    frame = map_columns(chunk, settings.columns, split.rest_keys)
    seen_with_chunk = _SeenWithChunk(seen_ids)
    good, quarantined = validate_rows(frame, seen_with_chunk, max_text_chars=settings.max_text_chars,
                                      text_column=settings.columns.text, date_column=settings.columns.created_at,
                                      timezone=settings.timezone)
    quarantined = chunk.quarantined + quarantined
    counts = RunCounts(rows_read=chunk.rows_read + len(split.taken_ids),
                       skipped_before_since=split.skipped_before_since)
    if since is not None and len(good):
        before = good["created_at"].notna() & (good["created_at"] < pd.Timestamp(since))
        counts.skipped_before_since += int(before.sum())
        good = good[~before]
    seen_ids.update(seen_with_chunk.chunk_ids)
    seen_ids.update(split.taken_ids)
    # columns read as lists: iterating a pyarrow-backed column costs ~0.4 µs a value, tolist() a twentieth
    good_ids = good["complaint_id"].tolist()
    already = pd.Series([cid in stored for cid in good_ids], index=good.index, dtype=bool)
    same_text = pd.Series([stored.get(cid) == digest for cid, digest in zip(good_ids, good["content_hash"].tolist())],
                          index=good.index, dtype=bool)
    for row in good[already & ~same_text].itertuples(index=False):
        quarantined.append(QuarantinedRow(row.source, row.source_row, settings.columns.id,
                                          QuarantineReason.ID_CONFLICT,
                                          f"id {row.complaint_id!r} is stored with a different text",
                                          {"id": row.complaint_id, "text": row.text}))
    counts.skipped_seen = int((already & same_text).sum()) + split.skipped_seen
    counts.quarantined = len(quarantined)
    privacy = Privacy.from_settings(settings)
    quarantined = [privacy.quarantined(row) for row in quarantined]
    new_rows = good[~already].reset_index(drop=True)
    # from here on the customer is only a reference, and metadata holds no personal values
    new_rows["customer_key"] = [privacy.customer_ref(m.get(settings.columns.customer)) for m in new_rows["metadata"]]
    new_rows["metadata"] = [privacy.mask_fields(m) for m in new_rows["metadata"]]
    channels = {c: mask_pii(c) for c in set(new_rows["channel"]) if isinstance(c, str)}  # a handful per batch
    new_rows["channel"] = [channels.get(c, c) if isinstance(c, str) else c for c in new_rows["channel"].tolist()]
    counts.classified = len(new_rows)
    return PreparedBatch(new_rows, quarantined, counts)


class _SeenWithChunk:
    """The run's ids seen so far plus this chunk's, without copying the run's (a copy per batch made a run
    quadratic in its size)."""

    def __init__(self, run_ids: set[str]):
        self.run_ids, self.chunk_ids = run_ids, set()

    def __contains__(self, complaint_id: str) -> bool:
        return complaint_id in self.chunk_ids or complaint_id in self.run_ids

    def add(self, complaint_id: str) -> None:
        self.chunk_ids.add(complaint_id)


def build_records(rows: pd.DataFrame, predictions: pd.DataFrame, *, router: Router, model_version: str,
                  run_id: str, now: datetime, escalator: Escalator | None = None,
                  customer_history: CustomerHistory | None = None,
                  webhooks: dict[str, WebhookTarget] | None = None,
                  keep_raw_text: bool = False, breach_rule: BreachRule | None = None) -> dict[str, list[dict]]:
    """Database records for a classified batch: complaints, predictions, tickets, outbox entries and the
    breaches of tickets already past their resolve deadline (``breach_rule``: escalated at once, as the
    deadline sweep would escalate them that night — without reading and rewriting each ticket again).

    ``customer_history``: stored complaints of the batch's customers (``Escalator.history_needed`` says
    which); the batch's own earlier complaints count as well. ``webhooks``: queues whose tickets also get
    a webhook delivery. ``keep_raw_text``: store the unmasked text too (``Settings.keep_raw_rows``).

    Read column by column, each distinct route decided once. The masked texts and the escalation term rules
    come with the predictions when the worker processes did them (``TextWork``), else they are done here:
    the main process, which competes with the workers for the cores, does as little per row as it can."""
    ids, texts, channels = rows["complaint_id"].tolist(), rows["text"].tolist(), rows["channel"].tolist()
    metadata = rows["metadata"].tolist()
    masked = (predictions["text_masked"].tolist() if "text_masked" in predictions
              else [mask_pii(text) for text in texts])
    found = predictions["text_triggers"].tolist() if "text_triggers" in predictions else [None] * len(ids)
    created = [None if pd.isna(at) else at for at in pd.to_datetime(rows["created_at"]).dt.to_pydatetime().tolist()]
    times = [now if at is None else at for at in created]  # escalation.complaint_time
    customer_keys = ([as_customer_key(key) for key in rows["customer_key"].tolist()] if "customer_key" in rows
                     else [None] * len(ids))
    history = with_batch(customer_history or {}, list(zip(customer_keys, times, ids)))
    labels = [c.removeprefix("p_") for c in predictions.columns if c.startswith("p_")]
    probabilities = [dict(zip(labels, values)) for values in
                     predictions[[f"p_{label}" for label in labels]].to_numpy(dtype=float).tolist()]
    # encoded once for the prediction and the ticket: ensure_ascii makes no difference to ASCII labels
    share_probabilities = all(label.isascii() for label in labels)
    causes, needs_review = predictions["cause"].tolist(), predictions["needs_review"].astype(bool).tolist()
    confidences = predictions["confidence"].astype(float).tolist()
    secondary, explanations = predictions["secondary_causes"].tolist(), predictions["explanation"].tolist()
    unfamiliar = (predictions["unfamiliar"].astype(bool).tolist() if "unfamiliar" in predictions
                  else [False] * len(ids))
    coverage = (predictions["coverage"].astype(float).tolist() if "coverage" in predictions
                else [np.nan] * len(ids))
    routes = router.route_many(causes, needs_review,
                               [{"channel": channel or "", **fields} for channel, fields in zip(channels, metadata)])
    source, source_row = rows["source"].tolist(), rows["source_row"].astype(int).tolist()
    hashes, truncated = rows["content_hash"].tolist(), rows["text_truncated"].astype(bool).tolist()
    # each remedy's JSON once per batch (a ticket whose remedy is not among them has its own encoded)
    remedies = {id(route.remedy): route.remedy for route in routes}
    remedy_json = {key: encode_remedy(remedy) for key, remedy in remedies.items()}
    complaint_rows, prediction_rows, ticket_rows, outbox_rows, breach_rows = [], [], [], [], []
    clock = router.sla_clock
    for i, complaint_id in enumerate(ids):
        complaint = {
            "complaint_id": complaint_id, "text_raw": texts[i] if keep_raw_text else masked[i],
            "text_masked": masked[i], "content_hash": hashes[i], "created_at": created[i], "channel": channels[i],
            "customer_key": customer_keys[i], "metadata_json": as_json(metadata[i]), "source": source[i],
            "source_row": source_row[i], "text_truncated": truncated[i], "run_id": run_id, "ingested_at": now,
        }
        complaint_rows.append(complaint)
        prediction = {"cause": causes[i], "confidence": confidences[i], "needs_review": needs_review[i],
                      "secondary_causes": secondary[i], "explanation": explanations[i]}
        probabilities_json = json.dumps(probabilities[i])
        prediction_rows.append({
            "complaint_id": complaint_id, "model_version": model_version, **prediction,
            "probabilities_json": probabilities_json, "unfamiliar": unfamiliar[i],
            "coverage": None if np.isnan(coverage[i]) else coverage[i], "run_id": run_id, "predicted_at": now,
        })
        triggers = escalator.triggers_for(text=texts[i], complaint_id=complaint_id, customer_key=customer_keys[i],
                                          at=times[i], history=history, masked=masked[i],
                                          text_triggers=found[i]) if escalator else []
        decision = escalate(routes[i], triggers)
        received_at = min(times[i], now)  # tickets.sla.clock_start
        deadlines = clock.deadlines(received_at, decision.queue, decision.priority, decision.sla_hours)
        late = late_when_built(breach_rule, clock, due_at=deadlines["due_at"], queue=decision.queue,
                               priority=decision.priority, now=now)
        ticket = build_ticket(complaint=complaint, prediction=prediction, decision=decision,
                              model_version=model_version, probabilities=probabilities[i],
                              escalation_reasons=[t.describe() for t in triggers],
                              escalation_steps=[step for t in triggers for step in t.steps],
                              created_at=now, run_id=run_id, clock=clock, received_at=received_at,
                              deadlines=deadlines, late=late, remedy_json=remedy_json.get(id(decision.remedy)),
                              probabilities_json=probabilities_json if share_probabilities else None)
        ticket_rows.append(ticket)
        outbox_rows.extend(outbox_entries(ticket, webhooks or {}, now))
        if late is not None:
            breach_rows.append(late.record(ticket_id=ticket["ticket_id"], queue=decision.queue, cause=causes[i],
                                           run_id=run_id, now=now))
            if late.escalated and breach_rule.notify_queue:
                outbox_rows.extend(escalation_entries(ticket["ticket_id"], breach_rule.notify_queue, webhooks or {},
                                                      now, key_suffix=f":{breach_rule.code}"))
    return {"complaint_rows": complaint_rows, "prediction_rows": prediction_rows,
            "ticket_rows": ticket_rows, "outbox_rows": outbox_rows, "breach_rows": breach_rows}


def store_batch(engine, batch: PreparedBatch, records: dict[str, list[dict]], *, run_id: str,
                run_counts: RunCounts) -> None:
    store.write_batch(engine, quarantine_rows=store.quarantine_records(batch.quarantined, run_id),
                      run_id=run_id, counts=run_counts.as_dict(), **records)


def _retrying(action: Callable, retries: int, engine: sa.Engine):
    """``action()``, tried again after an operational database error (wrapped by SQLAlchemy or not)."""
    transient = (sa.exc.OperationalError, getattr(engine.dialect.dbapi, "OperationalError", sa.exc.OperationalError))
    for attempt in range(retries + 1):
        try:
            return action()
        except transient as exc:
            if attempt == retries:
                raise
            log.warning("database error, trying again in %g s: %s", RETRY_DELAY_SECONDS, store.redact(str(exc)))
            time.sleep(RETRY_DELAY_SECONDS)


@dataclass
class ClassifyingBatch:
    """A prepared batch whose new rows are being classified in the worker processes."""

    prepared: PreparedBatch
    predictions: Future


class BatchRun:
    """One run over a source, batch by batch, each batch stored in one transaction.

    Holds what lasts the run (ids seen, counts, the quarantine tally), so none of it crosses a Prefect task
    boundary. One batch ahead: the classifier's worker processes classify batch n+1 while this process routes,
    escalates and stores batch n. ``clock``: the time records are stamped with (per batch); ``after_batch``:
    called with each stored batch's records (the flow renews its run lease there); ``progress``: advanced by
    each batch's rows read. Use as a context manager (it owns the worker processes)."""

    def __init__(self, settings: Settings, engine: sa.Engine, model: CauseModel, *, run_id: str,
                 since: datetime | None = None, router: Router | None = None, escalator: Escalator | None = None,
                 quarantine_file: Path | None = None, clock: Callable[[], datetime] = store.utcnow,
                 after_batch: Callable[[dict[str, list[dict]]], None] | None = None,
                 progress: RunProgress | None = None):
        self.settings, self.engine, self.model, self.run_id, self.since = settings, engine, model, run_id, since
        self.router = router or Router.from_settings(settings)
        self.escalator = escalator or Escalator.from_settings(settings)
        self.quarantine_file, self.clock = quarantine_file, clock
        self.after_batch, self.progress = after_batch, progress
        self.counts, self.tally, self.seen_ids = RunCounts(), QuarantineTally(), set()
        # the local pool, or the cluster's workers; they mask each text and find its escalation words too
        self._classifier = open_classifier(settings, model, self._text_work())
        self._ahead = ThreadPoolExecutor(1, thread_name_prefix="classify-ahead")  # waits on the workers

    def __enter__(self) -> "BatchRun":
        return self

    def __exit__(self, *exc) -> None:
        self._ahead.shutdown()
        self._classifier.__exit__(*exc)
        self.seen_ids = set()  # the run's ids (≈ 85 MB at 1M) are not needed once its batches are done

    def run(self, chunks: Iterable[RawChunk]) -> RunCounts:
        """Every chunk through the batch path; the run's counts, checked (rows read = the rows accounted for)."""
        # the libraries' long-lived objects (millions) kept out of the collector's passes while the batches
        # allocate: ≈ 5 µs less per row of the main process (bench.batch_phase)
        gc.freeze()
        try:
            classifying = None
            for chunk in chunks:
                following = self.start_classifying(self.prepare(chunk))
                if classifying is not None:
                    self.store(classifying)
                classifying = following
            if classifying is not None:
                self.store(classifying)
        finally:
            gc.unfreeze()
        self.counts.check()
        return self.counts

    def prepare(self, chunk: RawChunk) -> PreparedBatch:
        return prepare_batch(chunk, self.settings, self.seen_ids, self._stored_hashes, self.since)

    def _stored_hashes(self, complaint_ids: list[str]) -> dict[str, str]:
        return _retrying(lambda: store.stored_hashes(self.engine, complaint_ids), LOOKUP_RETRIES, self.engine)

    def _text_work(self) -> TextWork | None:
        return TextWork(self.escalator, self.settings.max_text_chars)

    def start_classifying(self, batch: PreparedBatch) -> ClassifyingBatch:
        texts = batch.new_rows["text"]
        if self._classifier.work is None:  # else the texts go whole: they are masked and searched whole
            texts = texts.str.slice(0, self.settings.max_text_chars)
        return ClassifyingBatch(batch, self._ahead.submit(self._classifier.classify, texts.tolist()))

    def store(self, classifying: ClassifyingBatch) -> dict[str, list[dict]]:
        """Wait for the batch's predictions, route and escalate, write everything in one transaction."""
        batch, predictions = classifying.prepared, classifying.predictions.result()
        now = self.clock()
        keys, since = self.escalator.history_needed(batch.new_rows, now)
        history = store.customer_history(self.engine, keys, since) if keys else {}
        records = build_records(batch.new_rows, predictions, router=self.router, model_version=self.model.version,
                                run_id=self.run_id, now=now, escalator=self.escalator, customer_history=history,
                                webhooks=self.settings.webhooks, keep_raw_text=self.settings.keep_raw_rows,
                                breach_rule=self.escalator.rules.breach)
        totals = RunCounts(**self.counts.as_dict())
        totals.add(batch.counts)
        _retrying(lambda: store_batch(self.engine, batch, records, run_id=self.run_id, run_counts=totals),
                  WRITE_RETRIES, self.engine)
        self.counts = totals
        self.tally.add(batch.quarantined)
        if self.quarantine_file is not None:
            append_quarantine_file(self.quarantine_file, batch.quarantined)
        if self.after_batch is not None:
            self.after_batch(records)
        if self.progress is not None:
            self.progress.advance(batch.counts.rows_read)
        return records


class FileBatchRun(BatchRun):
    """The batch path without a database, for ``complaints classify``: the same validation, masking and
    look-ahead classification; each batch's rows are routed and kept for the output file instead of stored."""

    def __init__(self, settings: Settings, model: CauseModel, *, router: Router | None = None,
                 progress: RunProgress | None = None):
        super().__init__(settings, None, model, run_id="classify", router=router, progress=progress)
        self.results: list[pd.DataFrame] = []
        self.quarantined: list[QuarantinedRow] = []  # masked, like everything the product writes

    def _stored_hashes(self, complaint_ids: list[str]) -> dict[str, str]:
        return {}  # nothing is stored, so nothing is already there

    def _text_work(self) -> None:
        return None  # nothing is stored or escalated: the texts need only their causes

    def store(self, classifying: ClassifyingBatch) -> None:
        batch, decided = classifying.prepared, classifying.predictions.result()
        rows = batch.new_rows
        routes = self.router.route_many(decided["cause"].tolist(), decided["needs_review"].astype(bool).tolist(),
                                        [{"channel": channel or "", **metadata}
                                         for channel, metadata in zip(rows["channel"], rows["metadata"])])
        decided["id"] = rows["complaint_id"].to_numpy()
        decided["remedy"] = [route.remedy.code for route in routes]
        decided["queue"] = [route.queue for route in routes]
        self.results.append(decided)
        self.counts.add(batch.counts)
        self.tally.add(batch.quarantined)
        self.quarantined += batch.quarantined
        if self.progress is not None:
            self.progress.advance(batch.counts.rows_read)
