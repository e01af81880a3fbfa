"""Speed never changes results: the batch path (worker processes, records built column-wise, bulk
inserts) stores exactly the rows the reference path stores (``tests/batch_reference.py``: main's code
before the batch phase was made faster, one row at a time in one process). Every table is compared as
SQLite holds it — the stored text of every cell, so a datetime written as '…:00' instead of
'…:00.000000' or a JSON key order that moved fails too."""
import sqlite3
from datetime import datetime

import pandas as pd
import pytest
from pydantic import SecretStr

from batch_reference import ReferenceBatchRun
from pipeline.config import WebhookTarget
from pipeline.ingest.sources import iter_raw_chunks
from pipeline.model.classify import PARALLEL_MIN_ROWS, load_lexicon_model
from pipeline.nightly.batch import BatchRun
from pipeline.storage import store

NOW = datetime(2026, 11, 29, 6, 30, 15, 123456)
TEXTS = [
    "服务员态度很差，说话很不耐烦，我的电话13812345678",
    "排队等了两个小时也没人处理，流程太混乱了，邮箱 a.b@example.com",
    "空调坏了一整晚，电线漏电，孩子被烫伤了送医",
    "乱收费，价格不透明，经理也不管，我要打12315投诉，还要找媒体曝光",
    "熱水器壞了，洗澡沒有熱水，身份證號110101199003071234",
    "今天天气不错",
    "退款&amp;赔偿一直不到账 &lt;急&gt; 订单号 20261128123456789",
    "快递三天没到，客服微信号 abc_12345 一直不回，没有任何人受伤但是很生气",
    "网络卡顿严重，宽带一直断线，已经第三次投诉了，" + "非常非常失望" * 12,
]


def _export(path, rows: int, prefix: str):
    pd.DataFrame({
        "id": [f"{prefix}{i:06d}" for i in range(rows)],
        "text": ["" if i % 97 == 5 else f"{TEXTS[i % len(TEXTS)]}（第{i}号）" for i in range(rows)],
        "created_at": ["" if i % 11 == 0 else  # some months old: past the deadline rule's 30 days, not escalated
                       f"2026-{'09' if i % 13 == 3 else '11'}-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:07"
                       for i in range(rows)],
        "channel": [("app", "12315", "web", "hotline")[i % 4] for i in range(rows)],
        "customer_id": [f"客户{i % 700}" if i % 3 else "" for i in range(rows)],
        "store": [f"门店{i % 5} 电话010-87654321" for i in range(rows)],
    }).to_csv(path, index=False)
    return path


def _stored(database: str) -> dict[str, list[tuple]]:
    """Every row of every table the batches write, as SQLite stores it (no type processing)."""
    tables = {"complaints": "complaint_id", "predictions": "complaint_id", "tickets": "ticket_id",
              "outbox": "idempotency_key", "quarantine": "quarantine_key", "sla_breaches": "ticket_id"}
    with sqlite3.connect(database) as conn:
        stored = {table: conn.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()
                  for table, key in tables.items()}
        # the reference's sweep queues its escalations after every batch's entries: the order of the ids differs
        stored["outbox"] = [row[1:] for row in stored["outbox"]]
        # when a bad row was quarantined is the wall clock, not the run's clock
        stored["quarantine"] = [row[:-1] for row in stored["quarantine"]]
        stored["runs"] = conn.execute("SELECT run_id, rows_read, classified, quarantined, skipped_seen, "
                                      "skipped_before_since FROM runs").fetchall()
    return stored


def _run(run_class, settings, sources) -> dict[str, list[tuple]]:
    engine = store.connect(settings.resolved_database_url)
    model = load_lexicon_model(settings.lexicon_path)
    # the second night's file repeats the first (every row stored) and adds new complaints of the same customers
    for run_id, source in zip(("first", "second"), sources):
        store.start_run(engine, run_id, str(source), model.version, None)
        with run_class(settings, engine, model, run_id=run_id, clock=lambda: NOW) as batches:
            batches.run(iter_raw_chunks(str(source), chunk_size=settings.batch_size))
    engine.dispose()
    return _stored(settings.resolved_database_url.removeprefix("sqlite:///"))


@pytest.mark.slow  # starts the classifier's worker processes
@pytest.mark.parametrize("keep_raw_rows", [False, True])
def test_the_batch_path_stores_exactly_what_the_reference_path_stores(lexicon_settings, tmp_path, keep_raw_rows):
    """Two batches large enough for the worker processes and a small last one classified in this process;
    complaints past their deadline already (escalated as built; the reference's sweep escalates them), texts with personal data, HTML entities, traditional characters, escalation words, over-long texts
    (truncated for the model), missing dates, repeat customers, a channel with a routing override, webhooks
    (two outbox entries per ticket) and bad rows."""
    settings = lexicon_settings.model_copy(update={
        "batch_size": PARALLEL_MIN_ROWS + 100, "workers": 2, "max_text_chars": 60, "keep_raw_rows": keep_raw_rows,
        "pseudonym_key": SecretStr("equivalence-test-key"),
        "webhooks": {"*": WebhookTarget(url="http://127.0.0.1:9/tickets")}})
    first = _export(tmp_path / "first.csv", 2 * settings.batch_size + 150, "E")
    second = tmp_path / "second.csv"
    pd.concat([pd.read_csv(first, dtype=str), pd.read_csv(_export(second, settings.batch_size + 10, "F"), dtype=str)]
              ).to_csv(second, index=False)
    faster = _run(BatchRun, settings.model_copy(update={"work_dir": tmp_path / "faster"}), (first, second))
    reference = _run(ReferenceBatchRun, settings.model_copy(update={"work_dir": tmp_path / "reference"}),
                     (first, second))
    assert len(faster["complaints"]) > 4000 and len(faster["quarantine"]) > 30
    escalated = sum(row[-1] for row in faster["sla_breaches"])  # escalated: delivered again, file and webhook
    assert len(faster["sla_breaches"]) > 1000 and 0 < escalated < len(faster["sla_breaches"])
    assert len(faster["outbox"]) == 2 * (len(faster["tickets"]) + escalated)
    assert any("external_complaint_threat" in row[7] for row in faster["tickets"])  # escalation_reasons
    assert any("repeat" in row[7] for row in faster["tickets"])
    for table in reference:
        assert len(faster[table]) == len(reference[table]), table
        for ours, theirs in zip(faster[table], reference[table]):
            assert ours == theirs, table


def test_the_workers_text_work_leaves_the_scores_as_they_were_and_masks_and_escalates_as_the_main_process_did(
        settings):
    """The trained model reuses the worker's normalisation of each text (cut to the model's length for the
    over-long ones) instead of normalising again: same probabilities, coverage and explanations as without
    the text work; each text masked and its escalation words found as the main process used to."""
    from pipeline.model.classify import TextWork, load_model, score_texts
    from pipeline.routing.escalation import Escalator
    from pipeline.text.normalise import TextNormaliser, mask_pii

    model = load_model(settings)
    assert type(model.estimator.named_steps["normalise"]) is TextNormaliser  # else the reuse is not exercised
    escalator = Escalator.from_settings(settings)
    texts = TEXTS + ["  ", "ＡＢＣ全角字母，電話：１３８１２３４５６７８", "<b>你好</b> http://x.cn 食物中毒" * 9]
    work = TextWork(escalator, max_model_chars=60)
    with_work = score_texts(model, texts, work)
    without = score_texts(model, [text[:60] for text in texts])
    pd.testing.assert_frame_equal(with_work[without.columns], without)
    assert with_work["text_masked"].tolist() == [mask_pii(text) for text in texts]
    assert with_work["text_triggers"].tolist() == [escalator.text_triggers(text) for text in texts]
    assert any(with_work["text_triggers"]) and any(len(text) > 60 for text in texts)
