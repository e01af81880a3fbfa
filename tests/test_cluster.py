"""The nightly run on a real Dask cluster: a scheduler and two worker processes on 127.0.0.1, started from
this environment's own `dask` command. Stored rows are compared with a one-process run of the same input."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import threading
import time
from collections import Counter

import pandas as pd
import pytest

from bench.local_cluster import LocalDaskCluster
from bench.throughput import make_input
from pipeline.config import PROJECT_ROOT, load_settings
from pipeline.model.classify import classify_texts
from pipeline.storage import store

SAMPLE = PROJECT_ROOT / "data" / "samples" / "complaints_sample.csv"
slow = pytest.mark.slow  # starts a Dask scheduler and worker processes (conftest marks the flow tests)

RUN_DEPENDENT = {  # columns that hold the run's id or the time of the run
    "complaints": ["run_id", "ingested_at"],
    "predictions": ["run_id", "predicted_at", "probabilities_json"],
    "tickets": ["run_id", "created_at", "received_at", "due_at", "acknowledge_due_at", "payload_json", "updated_at"],
}


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory):
    with LocalDaskCluster(tmp_path_factory.mktemp("dask"), workers=2, nthreads=1) as cluster:
        yield cluster


@pytest.fixture
def two_workers(dask_cluster):
    """The session's cluster with both workers registered (a nanny restarts a killed one)."""
    dask_cluster.wait_for_workers(2)
    return dask_cluster


def _stored(settings) -> dict[str, pd.DataFrame]:
    engine = store.connect(settings.resolved_database_url)
    try:
        return {name: store.read_table(engine, getattr(store, name)).sort_values(key).reset_index(drop=True)
                for name, key in (("complaints", "complaint_id"), ("predictions", "complaint_id"),
                                  ("tickets", "ticket_id"), ("outbox", "idempotency_key"))}
    finally:
        engine.dispose()


def assert_same_rows(cluster_settings, local_settings) -> dict[str, pd.DataFrame]:
    """Complaints, predictions (confidence and each probability to 1e-9), tickets and the outbox of two runs
    are the same row by row, apart from run ids and times of the run."""
    ours, theirs = _stored(cluster_settings), _stored(local_settings)
    for stored in (ours, theirs):  # the deadline sweep names the hours late at the time of its run
        stored["tickets"]["escalation_reasons"] = stored["tickets"]["escalation_reasons"].str.replace(
            r"\d+", "N", regex=True)
    for name, columns in RUN_DEPENDENT.items():
        pd.testing.assert_frame_equal(ours[name].drop(columns=columns), theirs[name].drop(columns=columns),
                                      check_exact=False, rtol=0, atol=1e-9)
    ours_p, theirs_p = ([json.loads(p) for p in t["predictions"]["probabilities_json"]] for t in (ours, theirs))
    assert all(a.keys() == b.keys() and all(abs(a[k] - b[k]) <= 1e-9 for k in a) for a, b in zip(ours_p, theirs_p))
    outbox_columns = ["ticket_id", "target", "queue", "idempotency_key", "status", "attempts"]
    pd.testing.assert_frame_equal(ours["outbox"][outbox_columns], theirs["outbox"][outbox_columns])
    assert ours["tickets"]["complaint_id"].is_unique and len(ours["tickets"]) == len(ours["complaints"])
    return ours


def _delivered_ticket_ids(settings) -> Counter:
    """How often each ticket was written to the ticket files (a ticket escalated by the deadline sweep twice)."""
    return Counter(json.loads(line)["ticket_id"] for path in settings.tickets_dir.glob("*.jsonl")
                   for line in path.read_text(encoding="utf-8").splitlines())


@slow
def test_a_run_through_the_cluster_stores_what_one_process_stores(two_workers, prefect_harness, tmp_path,
                                                                  database_url):
    """The cluster's run on SQLite and on PostgreSQL; the one-process run on SQLite."""
    from flows.nightly import nightly_flow
    from pipeline.model import cluster as cluster_module

    on_cluster = load_settings(work_dir=tmp_path / "cluster", cluster=two_workers.address, batch_size=100,
                               database_url=database_url)
    one_process = load_settings(work_dir=tmp_path / "local", workers=1, batch_size=100)
    summary = nightly_flow(source=str(SAMPLE), settings=on_cluster)
    local = nightly_flow(source=str(SAMPLE), settings=one_process)
    assert summary["status"] == "completed" and summary["counts"] == local["counts"]
    assert summary["counts"]["classified"] == 400  # the sample's 404 rows less its four planted bad ones
    stored = assert_same_rows(on_cluster, one_process)
    assert len(stored["predictions"]) == 400
    with two_workers.client() as client:  # the workers did the classifying: they hold the loaded model
        assert sum(client.run(lambda: len(cluster_module._models)).values()) >= 1
    assert not cluster_module._models  # and this process never loaded one for the cluster
    delivered = _delivered_ticket_ids(on_cluster)
    assert delivered == _delivered_ticket_ids(one_process) and set(delivered) == set(stored["tickets"]["ticket_id"])


def test_the_cluster_setting_chooses_the_classifier_and_workers_get_absolute_paths(monkeypatch):
    from pipeline.model.classify import ParallelClassifier, load_lexicon_model
    from pipeline.model.cluster import ClusterClassifier, ModelSpec, open_classifier
    from pipeline.model.registry import file_sha256

    model = load_lexicon_model()
    assert isinstance(open_classifier(load_settings(classifier="lexicon"), model), ParallelClassifier)
    monkeypatch.setenv("COMPLAINTS_CLUSTER", "tcp://scheduler:8786")
    monkeypatch.chdir(PROJECT_ROOT)
    settings = load_settings(classifier="lexicon", lexicon_path="data/lexicon/cause_lexicon.toml")
    classifier = open_classifier(settings, model)  # connects on its first batch
    assert isinstance(classifier, ClusterClassifier) and classifier.address == "tcp://scheduler:8786"
    lexicon = PROJECT_ROOT / "data" / "lexicon" / "cause_lexicon.toml"
    assert classifier.spec.lexicon_path == classifier.spec.artifact == lexicon.resolve()
    assert classifier.spec.model_path.is_absolute() and classifier.spec.sha256 == file_sha256(lexicon)
    assert ModelSpec.of(settings, model) == classifier.spec  # hashable and equal: one model per worker


def _familiar_and_unfamiliar(model) -> tuple[list[str], list[str]]:
    """30 sample texts the model knows well enough (no review at the normal bar, some would need it at the
    stricter one) and 30 whose vocabulary it mostly does not know."""
    texts = [t for t in pd.read_csv(SAMPLE, keep_default_na=False)["text"] if t.strip()]
    scored = classify_texts(model, texts)
    policy = model.policy
    known = (scored["coverage"] >= policy.min_coverage) & ~scored["needs_review"]
    familiar = scored.index[known & (scored["confidence"] < policy.unfamiliar_min_confidence)].tolist()
    familiar += scored.index[known & (scored["confidence"] >= policy.unfamiliar_min_confidence)].tolist()
    unfamiliar = scored.index[scored["coverage"] < policy.min_coverage].tolist()
    return [texts[i] for i in familiar[:30]], [texts[i] for i in unfamiliar[:30]]


def test_a_batch_is_decided_whole_however_its_slices_are_scored():
    """Half a batch unfamiliar puts every text of it to the stricter bar; decided slice by slice, the familiar
    half would escape it. Workers score slices; the batch is decided whole."""
    from pipeline.model.classify import decide_batch, load_model, score_texts

    model = load_model(load_settings())
    familiar, unfamiliar = _familiar_and_unfamiliar(model)
    assert len(familiar) == len(unfamiliar) == 30
    whole = classify_texts(model, familiar + unfamiliar)
    assert whole["unfamiliar"].all()
    per_slice = pd.concat([classify_texts(model, familiar), classify_texts(model, unfamiliar)], ignore_index=True)
    assert not per_slice["unfamiliar"].iloc[:30].any()
    assert (whole["needs_review"] != per_slice["needs_review"]).any()
    scored = pd.concat([score_texts(model, familiar), score_texts(model, unfamiliar)], ignore_index=True)
    pd.testing.assert_frame_equal(decide_batch(model, scored), whole)


@slow
def test_the_local_pool_and_the_cluster_decide_each_batch_whole(two_workers):
    from pipeline.model.classify import PARALLEL_MIN_ROWS, ParallelClassifier, load_model
    from pipeline.model.cluster import open_classifier

    settings = load_settings(cluster=two_workers.address)
    model = load_model(settings)
    familiar, unfamiliar = _familiar_and_unfamiliar(model)
    with open_classifier(settings, model) as on_cluster:  # two worker threads: one slice each half
        pd.testing.assert_frame_equal(on_cluster.classify(familiar + unfamiliar),
                                      classify_texts(model, familiar + unfamiliar))
    repeat = PARALLEL_MIN_ROWS // 60 + 1  # enough rows for the pool; its two slices are again the two halves
    texts = familiar * repeat + unfamiliar * repeat
    with ParallelClassifier(model, 2) as pool:
        pd.testing.assert_frame_equal(pool.classify(texts), classify_texts(model, texts))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_scheduler_fails_the_run_with_one_line_naming_it(prefect_harness, tmp_path, monkeypatch):
    from flows.nightly import nightly_flow
    from pipeline.model import cluster as cluster_module

    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT_SECONDS", 2)  # nothing listens: no need to wait 10 s
    address = f"tcp://127.0.0.1:{_free_port()}"
    settings = load_settings(work_dir=tmp_path / "work", cluster=address, classifier="lexicon")
    with pytest.raises(cluster_module.ClusterUnreachableError) as failure:
        nightly_flow(source=str(SAMPLE), settings=settings)
    message = str(failure.value)
    assert "\n" not in message and address in message and "dask scheduler" in message
    assert "COMPLAINTS_CLUSTER" in message
    engine = store.connect(settings.resolved_database_url)
    runs = store.read_table(engine, store.runs)
    assert runs["status"].tolist() == ["failed"] and runs["error"].iloc[0] == message
    assert store.read_table(engine, store.complaints).empty
    engine.dispose()


@slow
def test_workers_refuse_a_model_file_other_than_the_runs_or_an_untrusted_one(two_workers):
    from pipeline.model.classify import load_model
    from pipeline.model.cluster import ModelSpec, score_slice
    from pipeline.model.registry import ModelIntegrityError

    settings = load_settings()
    spec = ModelSpec.of(settings, load_model(settings))
    with two_workers.client() as client:
        with pytest.raises(ModelIntegrityError, match="is not the model this run loaded"):
            client.submit(score_slice, dataclasses.replace(spec, sha256="0" * 64), ["快递三天没到"],
                          pure=False).result()
        with pytest.raises(ModelIntegrityError, match="is not a trusted model"):
            client.submit(score_slice, dataclasses.replace(spec, trusted_models=("0" * 64,)), ["快递三天没到"],
                          pure=False).result()
        frame = client.submit(score_slice, spec, ["快递三天没到", "客服态度很差"], pure=False).result()
    assert len(frame) == 2 and (frame.filter(like="p_").sum(axis=1) - 1).abs().max() < 1e-9
    assert frame["explanation"].notna().all()


def _kill_a_worker_while_it_classifies(cluster, killed: dict) -> None:
    """SIGKILL the worker process that is running a slice of the run (its nanny starts a new one)."""
    with cluster.client() as client:
        pids = client.run(os.getpid)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            for worker, keys in client.processing().items():
                slices = [key for key in keys if str(key).startswith("score_slice")]
                if slices and worker in pids:
                    killed.update(worker=worker, pid=pids[worker], keys=slices, at=time.time())
                    os.kill(pids[worker], signal.SIGKILL)
                    return
            time.sleep(0.02)


@slow
def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(two_workers, prefect_harness, tmp_path):
    from flows.nightly import nightly_flow

    source = tmp_path / "complaints.csv"
    make_input(3000, source)
    # jieba, the slower engine, and a first slice that loads the model: the worker is killed while classifying
    common = dict(batch_size=1500, segmenter_engine="jieba")
    on_cluster = load_settings(work_dir=tmp_path / "cluster", cluster=two_workers.address, **common)
    one_process = load_settings(work_dir=tmp_path / "local", workers=1, **common)
    killed: dict = {}
    killer = threading.Thread(target=_kill_a_worker_while_it_classifies, args=(two_workers, killed))
    killer.start()
    try:
        summary = nightly_flow(source=str(source), settings=on_cluster)
    finally:
        killer.join()
    assert killed, "no worker was seen classifying"
    with pytest.raises(ProcessLookupError):
        os.kill(killed["pid"], 0)
    with two_workers.client() as client:  # each slice the dead worker held was computed again after its death
        story = client.run_on_scheduler(lambda dask_scheduler, keys=killed["keys"]: dask_scheduler.story(*keys))
    recomputed = {entry[0] for entry in story if entry[2] == "memory" and entry[-1] > killed["at"]}
    assert recomputed == set(killed["keys"])

    local = nightly_flow(source=str(source), settings=one_process)
    assert summary["status"] == "completed" and summary["counts"] == local["counts"]
    assert summary["counts"]["classified"] == 3000
    stored = assert_same_rows(on_cluster, one_process)
    assert len(stored["complaints"]) == len(stored["predictions"]) == 3000
    delivered = _delivered_ticket_ids(on_cluster)
    assert delivered == _delivered_ticket_ids(one_process) and set(delivered) == set(stored["tickets"]["ticket_id"])
