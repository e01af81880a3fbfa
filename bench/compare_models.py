"""Compare the lexicon baseline and feature × estimator choices by 5-fold cross-validated macro-F1.

Trains on data/training/train.csv (real + synthetic), scores only the real rows of each held-out fold.
Writes models/default/comparison.{json,md}; the model card quotes the table.
    python -m bench.compare_models [--folds 5] [--jobs 2]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
from joblib import Parallel, delayed
from sklearn.metrics import accuracy_score, f1_score

from pipeline.classify import ReviewPolicy, decide, load_lexicon_model
from pipeline.config import DATA_DIR, MODELS_DIR
from pipeline.model import ESTIMATORS, FEATURE_SETS, build_pipeline
from pipeline.schemas import CAUSES
from pipeline.training import evaluation_mask, out_of_fold_probabilities, read_labelled


def scores(y_true, y_pred, labels) -> dict:
    complaints = np.isin(y_true, CAUSES)
    return {
        "accuracy": accuracy_score(y_true, y_pred),
        "macro_f1": f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0),
        "causes_macro_f1": f1_score(y_true[complaints], y_pred[complaints], labels=list(CAUSES),
                                    average="macro", zero_division=0),
        "causes_accuracy": accuracy_score(y_true[complaints], y_pred[complaints]),
    }


def evaluate_config(feature_set, estimator, texts, labels, scored, folds):
    started = time.perf_counter()
    classes, oof, _ = out_of_fold_probabilities(build_pipeline(feature_set=feature_set, estimator=estimator),
                                             texts, labels, folds)
    predicted = decide(oof, [str(c) for c in classes], ReviewPolicy())["cause"].to_numpy()
    result = scores(labels[scored], predicted[scored], sorted(set(labels)))
    return {"features": feature_set, "estimator": estimator, **result,
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    frame = read_labelled(DATA_DIR / "training" / "train.csv")
    texts, labels, scored = frame["text"].tolist(), frame["cause"].to_numpy(), evaluation_mask(frame)
    lexicon = load_lexicon_model()
    lexicon_pred = decide(lexicon.predict_proba(texts), lexicon.labels, lexicon.policy)["cause"].to_numpy()
    rows = [{"features": "lexicon (no training)", "estimator": "rules",
             **scores(labels[scored], lexicon_pred[scored], sorted(set(labels))), "seconds": 0.0}]
    rows += Parallel(n_jobs=args.jobs)(delayed(evaluate_config)(f, e, texts, labels, scored, args.folds)
                                       for f in FEATURE_SETS for e in ESTIMATORS)
    out_dir = MODELS_DIR / "default"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "comparison.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    lines = [f"{args.folds}-fold cross-validation on data/training/train.csv, scored on its {int(scored.sum())} "
             "real rows (synthetic rows train only).", "",
             "| features | estimator | macro-F1 (7 labels) | accuracy | macro-F1 (6 causes) | accuracy (complaints) | seconds |",
             "|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: -r["macro_f1"]):
        lines.append(f"| {r['features']} | {r['estimator']} | {r['macro_f1']:.3f} | {r['accuracy']:.3f} | "
                     f"{r['causes_macro_f1']:.3f} | {r['causes_accuracy']:.3f} | {r['seconds']} |")
    (out_dir / "comparison.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
