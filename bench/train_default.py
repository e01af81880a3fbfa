"""Train the shipped default model and write its model card.

    python -m bench.train_default [--features union+lexicon] [--estimator logreg]

Trains on data/training/train.csv (real + synthetic) with 5-fold cross-validation for the review
thresholds, then scores the held-out real texts in data/training/heldout.csv — never seen in training or
tuning — with bootstrap 95% intervals. Writes models/default/{model.joblib, metadata.json,
heldout_metrics.json, MODEL_CARD.md}.
"""
from __future__ import annotations

import argparse
import json
import time

from pipeline.classify import load_lexicon_model, load_trained_model
from pipeline.config import DATA_DIR, MODELS_DIR
from pipeline.model_card import write_model_card
from pipeline.training import evaluate_model, read_labelled, train_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", default="union+lexicon")
    parser.add_argument("--estimator", default="logreg")  # the 5-fold comparison winner (models/default/comparison.md)
    args = parser.parse_args()
    out_dir = MODELS_DIR / "default"
    train = read_labelled(DATA_DIR / "training" / "train.csv")
    heldout = read_labelled(DATA_DIR / "training" / "heldout.csv")
    started = time.perf_counter()
    metadata = train_model(train, out_dir=out_dir, feature_set=args.features, estimator=args.estimator,
                           name="cause-model", data_source="data/training/train.csv")
    print(f"trained {metadata['version']} in {time.perf_counter() - started:.0f} s")
    model = load_trained_model(out_dir)
    report = {"model": evaluate_model(model, heldout), "lexicon_baseline": evaluate_model(load_lexicon_model(), heldout),
              "rows": len(heldout), "class_counts": heldout["cause"].value_counts().to_dict()}
    (out_dir / "heldout_metrics.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    write_model_card(out_dir)
    causes = report["model"]["causes_only"]
    print(f"held-out: macro-F1 (6 causes) {causes['macro_f1']:.3f} {causes['macro_f1_ci95']}, "
          f"accuracy on complaints {causes['accuracy']:.3f} {causes['accuracy_ci95']}, "
          f"none flagged {report['model']['review']['none_flagged_share']:.1%}")


if __name__ == "__main__":
    main()
