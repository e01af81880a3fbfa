"""Train the shipped default model and write its model card.

    python -m bench.train_default [--features union+lexicon] [--estimator two-stage]

Trains on data/training/train.csv (real + synthetic; labels weighted to a cause mix real industries have,
synthetic rows half of every label's weight) with 5-fold cross-validation for the review thresholds and a
second, industry-held-out cross-validation for the stricter bar on unfamiliar text. Then scores the
held-out real reviews (data/training/heldout.csv — never seen in training or tuning) and, where the
evaluation corpora are beside the checkout, the per-industry dev sets (bench.industries), with bootstrap
95% intervals. Writes models/default/{model.joblib, metadata.json, heldout_metrics.json,
industry_metrics.json, MODEL_CARD.md}.
"""
from __future__ import annotations

import argparse
import json
import time

from bench.industries import evaluation_sets, markdown_table, score_model
from pipeline.model.classify import load_lexicon_model, load_trained_model
from pipeline.config import DATA_DIR, MODELS_DIR
from pipeline.training.devsets import DevSetError
from pipeline.training.model_card import write_model_card
from pipeline.training.evaluation import evaluate_model, read_labelled, train_model

REVIEW_PRECISION = 0.85  # the product's bar for complaints routed without review


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", default="union+lexicon")
    parser.add_argument("--estimator", default="two-stage")  # chosen per industry (models/default/MODEL_CARD.md)
    parser.add_argument("--engine", default="rjieba", help="segmenter the model is trained with (the default engine)")
    args = parser.parse_args()
    out_dir = MODELS_DIR / "default"
    train = read_labelled(DATA_DIR / "training" / "train.csv")
    heldout = read_labelled(DATA_DIR / "training" / "heldout.csv")
    started = time.perf_counter()
    metadata = train_model(train, out_dir=out_dir, feature_set=args.features, estimator=args.estimator, engine=args.engine,
                           name="cause-model", data_source="data/training/train.csv", weighting="prior",
                           review_precision=REVIEW_PRECISION, n_jobs=2)
    print(f"trained {metadata['version']} in {time.perf_counter() - started:.0f} s")
    model = load_trained_model(out_dir)
    report = {"model": evaluate_model(model, heldout), "lexicon_baseline": evaluate_model(load_lexicon_model(), heldout),
              "rows": len(heldout), "class_counts": heldout["cause"].value_counts().to_dict()}
    (out_dir / "heldout_metrics.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    try:
        industries = score_model(model, evaluation_sets())
    except DevSetError as exc:
        print(f"per-industry dev sets skipped: {exc}")
    else:
        (out_dir / "industry_metrics.json").write_text(
            json.dumps({"model": model.version, "industries": industries}, ensure_ascii=False, indent=2), encoding="utf-8")
        print(markdown_table(industries))
    write_model_card(out_dir)
    causes = report["model"]["causes_only"]
    print(f"held-out reviews: macro-F1 (6 causes) {causes['macro_f1']:.3f} {causes['macro_f1_ci95']}, "
          f"accuracy on complaints {causes['accuracy']:.3f} {causes['accuracy_ci95']}, "
          f"none flagged {report['model']['review']['none_flagged_share']:.1%}")


if __name__ == "__main__":
    main()
