"""The one batch path (pipeline/nightly/batch.py) on a real CSV and a real SQLite file: look-ahead
classification, lookups that search an index, the idle rerun, live progress."""
import logging

import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline.ingest.sources import iter_raw_chunks
from pipeline.model.classify import PARALLEL_MIN_ROWS, classify_texts, load_lexicon_model
from pipeline.nightly.batch import BatchRun
from pipeline.nightly.progress import RunProgress, count_rows, log_every, watching
from pipeline.storage import store

TEXTS = ["服务员态度很差，说话很不耐烦", "排队等了两个小时也没人处理，流程太混乱了", "空调坏了一整晚，电线漏电",
         "乱收费，价格不透明，经理也不管", "热水器坏了，洗澡没有热水", "今天天气不错"]


def _export(path, rows: int):
    pd.DataFrame({"id": [f"K{i:06d}" for i in range(rows)],
                  "text": [f"{TEXTS[i % len(TEXTS)]}（第{i}号）" for i in range(rows)],
                  "created_at": [f"2026-11-{1 + i % 28:02d} 10:00" for i in range(rows)],
                  "channel": "app"}).to_csv(path, index=False)
    return path


def _run(settings, source, run_id, **kwargs) -> BatchRun:
    engine = store.connect(settings.resolved_database_url)
    model = load_lexicon_model(settings.lexicon_path)
    store.start_run(engine, run_id, str(source), model.version, None)
    with BatchRun(settings, engine, model, run_id=run_id, **kwargs) as batches:
        batches.run(iter_raw_chunks(str(source), chunk_size=settings.batch_size))
    return batches


@pytest.mark.slow  # starts the classifier's worker processes
def test_the_next_batch_is_classified_while_the_previous_one_is_stored(lexicon_settings, tmp_path):
    """Batches of 2,500 rows on 2 worker processes: batch n+1 is handed to the workers before batch n is
    written, and what is stored is what the model says for each text, in the source's order."""
    settings = lexicon_settings.model_copy(update={"batch_size": PARALLEL_MIN_ROWS + 500, "workers": 2})
    source = _export(tmp_path / "export.csv", 3 * settings.batch_size + 100)
    events: list[str] = []
    engine = store.connect(settings.resolved_database_url)
    model = load_lexicon_model(settings.lexicon_path)
    store.start_run(engine, "ahead", str(source), model.version, None)
    with BatchRun(settings, engine, model, run_id="ahead",
                  after_batch=lambda records: events.append(f"stored {records['complaint_rows'][0]['complaint_id']}")
                  ) as batches:
        classify = batches._classifier.classify

        def recording(texts):
            events.append(f"classifying {len(texts)}")
            return classify(texts)

        batches._classifier.classify = recording
        counts = batches.run(iter_raw_chunks(str(source), chunk_size=settings.batch_size))
    assert counts.classified == counts.rows_read == 3 * settings.batch_size + 100
    assert events[:2] == ["classifying 2500", "classifying 2500"]  # the second batch before the first is stored
    assert events[2] == "stored K000000"
    stored = store.read_table(engine, store.predictions).merge(store.read_table(engine, store.complaints),
                                                               on="complaint_id")
    texts = pd.read_csv(source)["text"]
    expected = classify_texts(model, texts.tolist())
    by_id = stored.set_index("complaint_id").loc[[f"K{i:06d}" for i in range(len(texts))]]
    assert by_id["cause"].tolist() == expected["cause"].tolist()
    assert by_id["confidence"].round(4).tolist() == expected["confidence"].round(4).tolist()
    assert len(store.read_table(engine, store.tickets)) == len(texts)
    engine.dispose()


def _statements_during(engine, action) -> list[tuple[str, tuple]]:
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    return seen


def test_every_lookup_of_a_batch_searches_an_index_and_the_idle_rerun_reads_only_ids_and_hashes(
        lexicon_settings, tmp_path):
    """Looked up by key, never a scan that grows with the stored table; a rerun over stored rows reads ids
    and content hashes and writes no complaint."""
    settings = lexicon_settings.model_copy(update={"batch_size": 400})
    source = _export(tmp_path / "export.csv", 1000)
    engine = store.connect(settings.resolved_database_url)
    model = load_lexicon_model(settings.lexicon_path)

    def run(run_id):
        store.start_run(engine, run_id, str(source), model.version, None)
        with BatchRun(settings, engine, model, run_id=run_id) as batches:
            batches.run(iter_raw_chunks(str(source), chunk_size=settings.batch_size))
        return batches.counts

    first = _statements_during(engine, lambda: run("first"))
    selects = [(s, p) for s, p in first if s.lstrip().upper().startswith("SELECT")]
    assert any("content_hash" in s for s, _ in selects)  # the stored-rows lookup, at least
    with engine.connect() as conn:
        for statement, parameters in selects:
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
            assert "SCAN" not in plan, (statement, plan)
    again = []
    statements = _statements_during(engine, lambda: again.append(run("rerun")))
    assert again[0].skipped_seen == again[0].rows_read == 1000
    reads = [s for s, _ in statements if s.lstrip().upper().startswith("SELECT")]
    assert reads and all("FROM complaints" in s and "text" not in s.split("FROM")[0].replace("content_hash", "")
                         for s in reads), reads
    assert not any("INSERT INTO complaints" in s or "INSERT INTO predictions" in s for s, _ in statements)
    engine.dispose()


def test_progress_counts_the_file_and_reports_rows_per_second_and_time_left(lexicon_settings, tmp_path, caplog):
    source = _export(tmp_path / "export.csv", 900)
    assert count_rows(str(source)) == 900
    assert count_rows(str(tmp_path / "missing.csv")) is None
    seen: list[tuple[int, int | None]] = []
    progress = RunProgress(total=count_rows(str(source)))
    logger = logging.getLogger("test.progress")
    progress.listeners.append(log_every(logger, seconds=0))
    settings = lexicon_settings.model_copy(update={"batch_size": 300})
    with caplog.at_level(logging.INFO, logger="test.progress"), \
            watching(lambda run: seen.append((run.done, run.total))):
        _run(settings, source, "progress", progress=progress)
    assert seen == [(300, 900), (600, 900), (900, 900)]
    lines = [r.getMessage() for r in caplog.records if r.name == "test.progress"]
    assert len(lines) == 3 and lines[-1].startswith("progress: 900 of 900 (100%) rows,") and "rows/s" in lines[-1]
    assert "left" in lines[0]


def test_classify_and_the_nightly_run_decide_each_row_alike(lexicon_settings, tmp_path):
    """`complaints classify` goes through the same batch path (FileBatchRun), only without the store: the same
    rows pass or are quarantined for the same reasons, and each gets the cause and queue the run stores."""
    from pipeline.nightly.batch import FileBatchRun

    source = _export(tmp_path / "in.csv", 40)
    with open(source, "a", encoding="utf-8") as handle:  # a duplicate id and an empty text
        handle.write("K000000,又是同一个编号,2026-11-20 10:00,app\nc-empty,,2026-11-20 10:00,app\n")
    model = load_lexicon_model(lexicon_settings.lexicon_path)
    with FileBatchRun(lexicon_settings, model) as file_run:
        counts = file_run.run(iter_raw_chunks(str(source), chunk_size=15))
    nightly = _run(lexicon_settings, source, "nightly-run")
    engine = store.connect(lexicon_settings.resolved_database_url)
    stored = store.read_table(engine, store.tickets).set_index("complaint_id")
    quarantined = store.read_table(engine, store.quarantine)
    engine.dispose()
    decided = pd.concat(file_run.results).set_index("id")
    assert counts.as_dict() == nightly.counts.as_dict() and counts.quarantined == 2
    assert sorted(decided.index) == sorted(stored.index)
    assert (decided["cause"] == stored.loc[decided.index, "cause"]).all()
    assert (decided["queue"] == stored.loc[decided.index, "queue"]).all()
    assert sorted(row.reason.value for row in file_run.quarantined) == sorted(quarantined["reason"])


def _mapped_rows_during(monkeypatch, action) -> list[int]:
    """How many rows each call of the per-row mapping (``map_columns``) was given while ``action`` ran."""
    import pipeline.nightly.batch as batch

    sizes, mapping = [], batch.map_columns

    def counting(chunk, *args, **kwargs):
        sizes.append(len(chunk.records))
        return mapping(chunk, *args, **kwargs)

    monkeypatch.setattr(batch, "map_columns", counting)
    action()
    return sizes


def test_a_rerun_maps_and_validates_only_the_rows_not_stored_and_still_catches_changed_ones(
        lexicon_settings, tmp_path, monkeypatch):
    """Stored rows are recognised from their keys and never mapped; a changed text under a stored id, a
    stored id whose date went bad, a repeated id (in a later chunk) and new rows go the full way and end as
    they did before: counts exact, the same quarantine reasons."""
    settings = lexicon_settings.model_copy(update={"batch_size": 10})
    source = _export(tmp_path / "export.csv", 30)
    _run(settings, source, "first")
    rows = pd.read_csv(source, dtype=str, keep_default_na=False)
    rows.loc[3, "text"] = "完全不同的投诉：快递丢了"  # changed under a stored id
    rows.loc[5, "created_at"] = "not a date"  # stored id, same text, unreadable date now
    again = pd.concat([rows, rows.iloc[[7]],  # K000007 again, two chunks later
                       pd.DataFrame({"id": ["K900000", ""], "text": ["新的投诉，服务员态度差", "没有编号的投诉，热水器坏了"],
                                     "created_at": "2026-11-30 10:00", "channel": "app"})])
    again.to_csv(tmp_path / "again.csv", index=False)
    runs = []
    mapped = _mapped_rows_during(monkeypatch, lambda: runs.append(_run(settings, tmp_path / "again.csv", "again")))
    counts = runs[0].counts
    assert counts.as_dict() == {"rows_read": 33, "classified": 2, "quarantined": 3, "skipped_seen": 28,
                                "skipped_before_since": 0}
    assert sum(mapped) == 5  # rows 3, 5, the repeated K000007 and the two new ones; on main: all 33
    engine = store.connect(settings.resolved_database_url)
    quarantined = store.read_table(engine, store.quarantine).query("run_id == 'again'")
    engine.dispose()
    assert sorted(zip(quarantined["source_row"], quarantined["reason"])) == [
        (4, "id_already_stored_with_other_text"), (6, "unparseable_date"), (31, "duplicate_id_in_source")]
    assert sum(runs[0].tally.by_reason.values()) == 3  # the run's tally, which can fail it, saw the same

    idle = _mapped_rows_during(monkeypatch, lambda: runs.append(_run(settings, source, "idle")))
    assert sum(idle) == 0 and runs[-1].counts.skipped_seen == runs[-1].counts.rows_read == 30


def test_rows_without_ids_are_recognised_by_the_same_content_id_on_a_rerun(lexicon_settings, tmp_path, monkeypatch):
    settings = lexicon_settings.model_copy(update={"batch_size": 10})
    source = tmp_path / "no_ids.csv"
    pd.read_csv(_export(tmp_path / "export.csv", 25)).drop(columns=["id"]).to_csv(source, index=False)
    first = _run(settings, source, "first").counts
    runs = []
    mapped = _mapped_rows_during(monkeypatch, lambda: runs.append(_run(settings, source, "rerun")))
    assert first.classified == 25 and sum(mapped) == 0
    assert runs[0].counts.skipped_seen == runs[0].counts.rows_read == 25


def test_stored_rows_older_than_since_are_counted_as_such_without_being_mapped(lexicon_settings):
    """With ``since``, a stored row is skipped as older than the watermark or as seen, as the full path counts
    it; rows stored with another text still go the full way."""
    from datetime import datetime

    from pipeline.ingest.sources import RawChunk
    from pipeline.ingest.validate import content_hash
    from pipeline.nightly.batch import prepare_batch

    cells = [{"id": f"S{i}", "text": TEXTS[i], "created_at": f"2026-11-0{i + 1} 10:00", "channel": "app"}
             for i in range(4)]
    chunk = RawChunk("export.csv", [{"source_row": i + 1, "cells": c} for i, c in enumerate(cells)])
    stored = {c["id"]: content_hash(c["text"]) for c in cells} | {"S3": content_hash("另一个文本")}
    seen: set[str] = set()
    batch = prepare_batch(chunk, lexicon_settings, seen, lambda ids: {i: stored[i] for i in ids if i in stored},
                          since=datetime(2026, 11, 2, 12))
    assert batch.counts.as_dict() == {"rows_read": 4, "classified": 0, "quarantined": 1, "skipped_seen": 1,
                                      "skipped_before_since": 2}
    assert [row.reason.value for row in batch.quarantined] == ["id_already_stored_with_other_text"]
    assert seen == {"S0", "S1", "S2", "S3"}
