"""Classification on a Dask cluster (``settings.cluster``), behind the same interface as the local
``ParallelClassifier``: a context manager whose ``classify(texts)`` returns the result frame.

Each batch goes to the cluster's workers in slices, one per worker thread. A worker loads the model once,
from the same path as this process, after checking that its file has the sha256 this run loaded and that
the settings trust it; it then segments, vectorises and scores its slices (and does the batch path's
``TextWork``: each text masked, its escalation words found) and sends back only the score frames. The batch is decided here, whole, as in one process (its unfamiliar-share rule looks at every text
of the batch). Everything else (routing, the run lease, writes, the outbox) stays in the flow's process, the one
writer. A worker that dies mid-batch loses nothing: the scheduler still holds its slices (their texts are
in the tasks) and runs them again on another worker; the batch is assembled here from exactly one score
frame per slice, in order.

The workers need this product installed (same versions) and the model file at the same path.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import ConfigError
from pipeline.model.classify import (CauseModel, ParallelClassifier, TextWork, classify_texts, decide_batch,
                                     load_model, score_texts)
from pipeline.model.registry import MODEL_FILE, ModelIntegrityError, file_sha256

CONNECT_TIMEOUT_SECONDS = 10
WORKERS_TIMEOUT_SECONDS = 60  # a scheduler without any worker would leave the run waiting forever

logger = logging.getLogger(__name__)


class ClusterUnreachableError(ConfigError):
    """The Dask scheduler named by the settings cannot be reached, or has no workers: the message names the
    address and what to do (a ConfigError, so the command line shows it as one line)."""


@dataclass(frozen=True)
class ModelSpec:
    """What a worker needs to load the run's model itself: the fields ``load_model`` reads, and the sha256
    of the file this process loaded."""

    classifier: str
    model_path: Path
    lexicon_path: Path
    trusted_models: tuple[str, ...]
    segmenter_engine: str
    artifact: Path
    sha256: str

    @classmethod
    def of(cls, settings, model: CauseModel) -> "ModelSpec":
        if model.kind == "lexicon":
            artifact, sha256 = Path(settings.lexicon_path), file_sha256(settings.lexicon_path)
        else:
            path = Path(settings.model_path)
            artifact, sha256 = (path / MODEL_FILE if path.is_dir() else path), model.metadata["sha256"]
        # absolute paths: a worker's working directory is its own
        return cls(settings.classifier, Path(settings.model_path).resolve(), Path(settings.lexicon_path).resolve(),
                   tuple(settings.trusted_models), settings.segmenter_engine, artifact.resolve(), sha256)


_models: dict[ModelSpec, CauseModel] = {}  # per worker process: each model loaded once
_loading = threading.Lock()


def model_on_worker(spec: ModelSpec) -> CauseModel:
    with _loading:
        if spec not in _models:
            _models[spec] = _load_checked(spec)
        return _models[spec]


def _load_checked(spec: ModelSpec) -> CauseModel:
    import socket

    where = f"{spec.artifact} on worker host {socket.gethostname()}"
    if not spec.artifact.is_file():
        raise ModelIntegrityError(f"{where}: no such file; every worker needs the run's model at the same path")
    actual = file_sha256(spec.artifact)
    if actual != spec.sha256:
        raise ModelIntegrityError(f"{where}: sha256 {actual[:12]}… is not the model this run loaded "
                                  f"({spec.sha256[:12]}…); give every worker the same model file")
    return load_model(spec)  # the trusted_models check runs here as well, before anything is unpickled


def score_slice(spec: ModelSpec, texts: list[str], work: TextWork | None = None) -> pd.DataFrame:
    """Runs on a worker: one slice of a batch scored by the worker's copy of the model (and ``work`` done)."""
    return score_texts(model_on_worker(spec), texts, work)


class ClusterClassifier:
    """Classifies each batch on the Dask cluster at ``address``. Use as a context manager."""

    def __init__(self, model: CauseModel, spec: ModelSpec, address: str, work: TextWork | None = None):
        self.model = model
        self.spec = spec
        self.address = address
        self.work = work
        self._client = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._client is not None:
            self._client.close()

    def _connected(self):
        """The client, connected on the first batch (as the local pool starts its processes then), so that
        an unreachable scheduler fails the run where any classifying error does."""
        if self._client is not None:
            return self._client
        from distributed import Client

        what_to_do = (f"start it with `dask scheduler` and its workers with `dask worker {self.address}`, or "
                      "leave the cluster setting (COMPLAINTS_CLUSTER) empty to classify on this machine")
        try:
            client = Client(self.address, timeout=CONNECT_TIMEOUT_SECONDS, set_as_default=False)
        except OSError as exc:
            raise ClusterUnreachableError(f"cannot reach the Dask scheduler at {self.address}: {what_to_do}") from exc
        try:
            client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_SECONDS)
        except TimeoutError as exc:
            client.close()
            raise ClusterUnreachableError(f"the Dask scheduler at {self.address} has had no worker for "
                                          f"{WORKERS_TIMEOUT_SECONDS} s: {what_to_do}") from exc
        self._client = client
        logger.info("classifying on the Dask cluster at %s (%d worker threads)", self.address, self._threads())
        return client

    def _threads(self) -> int:
        return max(1, sum(self._client.nthreads().values()))

    def classify(self, texts) -> pd.DataFrame:
        texts = list(texts)
        if not texts:
            return classify_texts(self.model, texts, self.work)
        client = self._connected()
        slices = [list(s) for s in np.array_split(np.array(texts, dtype=object), self._threads()) if len(s)]
        # pure=False: no hashing of the texts for a task key; every slice is its own task
        futures = [client.submit(score_slice, self.spec, part, self.work, pure=False) for part in slices]
        return decide_batch(self.model, pd.concat(client.gather(futures), ignore_index=True))


Classifier = ParallelClassifier | ClusterClassifier


def open_classifier(settings, model: CauseModel, work: TextWork | None = None) -> Classifier:
    """The run's classifier: the Dask cluster's workers when ``settings.cluster`` names one, else worker
    processes on this machine; ``work`` done next to the model on either."""
    if settings.cluster:
        return ClusterClassifier(model, ModelSpec.of(settings, model), settings.cluster, work)
    return ParallelClassifier(model, settings.worker_count, work)
