"""Learning curve of `complaints train --base default` per industry: chosen labels against random ones.

A simulated company per industry: its unlabelled complaints are the industry's *pool* (texts of the
evaluation corpora outside the dev sets, labelled once under LABELING.md: ``data/devsets/pool_labels.csv``);
it labels 50, 100, 200, 400 of them — chosen by `review select`'s strategy, in rounds (each round chosen
with the model adapted on the labels so far, as the README's recipe does), or at random (several seeds) —
and adapts the shipped model on them. Each adapted model is scored on the industry's dev set, which no
round ever sees. Figures: six-cause macro-F1 and accuracy on complaints, the share of complaints routed
without review and how often those are right.

    python -m bench.adaptation [--model models/default] [--budgets 50 100 200 400] [--seeds 3] [--json F]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from bench.industries import industry_scores
from pipeline.training.adapt import adapt_model, model_features, text_points, uncertain_and_diverse, uncertainty
from pipeline.model.classify import CauseModel, classify_texts, load_trained_model
from pipeline.config import DATA_DIR, MODELS_DIR
from pipeline.training.devsets import load_dev_sets
from pipeline.training.evaluation import read_labelled

POOL_LABELS = DATA_DIR / "devsets" / "pool_labels.csv"
REVIEW_PRECISION = 0.85


def scores(model: CauseModel, test) -> dict:
    """The bar's figures for one model on one industry's dev set (``bench.industries``' own scoring)."""
    figures = industry_scores(test["cause"].to_numpy(), classify_texts(model, test["text"].tolist()))
    return {"macro_f1": figures["causes_macro_f1"], "accuracy": figures["causes_accuracy"],
            "routed_share": figures["auto_routed_share_of_complaints"],
            "routed_right": figures["auto_routed_accuracy"]}


def adapted(base_model: CauseModel, shipped, company, folds: int) -> CauseModel:
    pipeline, policy, _ = adapt_model(base_model.metadata, shipped, company, folds=folds,
                                      review_precision=REVIEW_PRECISION)
    return CauseModel(pipeline, version="adapted", policy=policy, kind="model")


def curve(base_model, shipped, pool, test, budgets, strategy: str, seed: int) -> list[dict]:
    """Scores after each budget of labels (the review policy stays the base model's: choosing it costs a
    cross-validation per point, done once per strategy in ``main`` at ``--review-at`` labels)."""
    order = np.random.default_rng(seed).permutation(len(pool))
    chosen = strategy == "chosen"
    points = text_points(model_features(base_model.estimator, pool["text"]), seed=seed) if chosen else None
    labelled = np.zeros(0, dtype=int)
    current = base_model
    rows = [{"labels": 0, **scores(base_model, test)}]
    for budget in budgets:
        budget = min(budget, len(pool))
        if strategy == "random":
            labelled = order[:budget]
        else:
            unsure = uncertainty(current.predict_proba(pool["text"].tolist()))
            labelled = np.concatenate([labelled, uncertain_and_diverse(points, unsure, budget - len(labelled),
                                                                       already=labelled, seed=seed)])
        current = adapted(base_model, shipped, pool.iloc[labelled], folds=0)
        rows.append({"labels": budget, **scores(current, test), "chosen": labelled.tolist()})
    return rows


def mean_rows(runs: list[list[dict]]) -> list[dict]:
    averaged = []
    for position in range(len(runs[0])):
        rows = [run[position] for run in runs]
        entry = {"labels": rows[0]["labels"]}
        for key in ("macro_f1", "accuracy", "routed_share", "routed_right"):
            values = [row[key] for row in rows if row[key] is not None]
            entry[key] = float(np.mean(values)) if values else None
        entry["macro_f1_min"] = float(min(row["macro_f1"] for row in rows))
        averaged.append(entry)
    return averaged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(MODELS_DIR / "default"))
    parser.add_argument("--budgets", type=int, nargs="+", default=[50, 100, 200, 400])
    parser.add_argument("--seeds", type=int, default=1, help="random orders averaged for the random strategy")
    parser.add_argument("--review-at", type=int, default=200,
                        help="labels at which the review threshold is chosen by cross-validation, as `train --base` does")
    parser.add_argument("--industries", nargs="*", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    base_model = load_trained_model(args.model)
    shipped = read_labelled(DATA_DIR / "training" / "train.csv")
    pools, tests = load_dev_sets(POOL_LABELS), load_dev_sets()
    results = {}
    print("| industry | strategy | " + " | ".join(f"{b} labels" for b in [0, *args.budgets]) +
          f" | {args.review_at} labels, threshold chosen on them: routed (share of complaints) at accuracy |")
    print("|---|---|" + "---|" * (len(args.budgets) + 2))
    for industry in sorted(set(pools["industry"])):
        if args.industries and industry not in args.industries:
            continue
        pool = pools[pools["industry"] == industry].reset_index(drop=True)
        test = tests[tests["industry"] == industry].reset_index(drop=True)
        results[industry] = {}
        for strategy in ("chosen", "random"):
            started = time.perf_counter()
            seeds = range(args.seeds) if strategy == "random" else range(1)
            runs = [curve(base_model, shipped, pool, test, args.budgets, strategy, seed) for seed in seeds]
            averaged = mean_rows(runs)
            at = next(row for row in runs[0] if row["labels"] == min(args.review_at, len(pool)))
            review = scores(adapted(base_model, shipped, pool.iloc[at["chosen"]], folds=3), test)
            results[industry][strategy] = {"mean": averaged, "review_at": {"labels": args.review_at, **review},
                                           "seconds": round(time.perf_counter() - started, 1)}
            cells = [f"{row['macro_f1']:.3f} ({row['accuracy']:.2f})" for row in averaged]
            print(f"| {industry} (pool {len(pool)}, test {len(test)}) | {strategy} | " + " | ".join(cells) +
                  f" | {review['macro_f1']:.3f}; {review['routed_share']:.0%} at {review['routed_right'] or 0:.0%} |",
                  flush=True)
    print(f"\ncells: six-cause macro-F1 on the industry's dev set (accuracy on complaints); random: mean of "
          f"{args.seeds} order(s)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
