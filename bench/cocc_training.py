"""A second industry: `complaints train`'s 5-fold cross-validation on the COCC telecom tickets, with the
corpus's own 8 problem types (a company's own label set). Evaluation only: the model is written to a
temporary folder and deleted; nothing from this corpus is shipped or used by the default model.

    python -m bench.cocc_training [--path ../shared/evaluation/cocc/cocc.tsv] [--features union+lexicon]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pipeline.config import PROJECT_ROOT
from pipeline.training.evaluation import read_labelled, train_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--path", type=Path, default=PROJECT_ROOT.parent / "shared" / "evaluation" / "cocc" / "cocc.tsv")
    parser.add_argument("--features", default="union+lexicon")
    parser.add_argument("--estimator", default="logreg")
    args = parser.parse_args()
    frame = read_labelled(args.path, "text", "problem_type")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        metadata = train_model(frame, label_column="problem_type", out_dir=tmp, feature_set=args.features,
                               estimator=args.estimator, name="cocc-eval")
        seconds = time.perf_counter() - started
    cv = metadata["cross_validation"]
    print(f"COCC {len(frame)} tickets, {len(cv['per_class'])} problem types, features {args.features}, "
          f"{args.estimator}: 5-fold accuracy {cv['accuracy']:.3f} {tuple(round(v, 3) for v in cv['accuracy_ci95'])}, "
          f"macro-F1 {cv['macro_f1']:.3f} {tuple(round(v, 3) for v in cv['macro_f1_ci95'])} ({seconds:.0f} s)")
    for label, m in cv["per_class"].items():
        print(f"  {label}: P {m['precision']:.3f} R {m['recall']:.3f} F1 {m['f1']:.3f} (n={m['support']})")


if __name__ == "__main__":
    main()
