"""Does more labelled data help? Held-out quality of the default recipe trained on growing shares of the
real training texts (synthetic rows always included).

    python -m bench.learning_curve [--shares 0.25 0.5 0.75 1.0]
"""
from __future__ import annotations

import argparse

import pandas as pd

from bench.compare_models import scores
from pipeline.model.classify import CauseModel, ReviewPolicy, classify_texts
from pipeline.config import DATA_DIR
from pipeline.model.cause_model import build_pipeline
from pipeline.training.evaluation import read_labelled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shares", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    args = parser.parse_args()
    train = read_labelled(DATA_DIR / "training" / "train.csv")
    heldout = read_labelled(DATA_DIR / "training" / "heldout.csv")
    real, synthetic = train[train["source"] != "synthetic"], train[train["source"] == "synthetic"]
    truth = heldout["cause"].to_numpy()
    print("| real training texts | six-cause macro-F1 | accuracy on complaints | 7-label accuracy |")
    print("|---|---|---|---|")
    for share in args.shares:
        subset = pd.concat([real.sample(frac=share, random_state=0), synthetic])
        pipeline = build_pipeline().fit(subset["text"].tolist(), subset["cause"].to_numpy())
        model = CauseModel(pipeline, version="curve", policy=ReviewPolicy(), kind="model")
        predicted = classify_texts(model, heldout["text"].tolist())["cause"].to_numpy()
        result = scores(truth, predicted, sorted(set(truth)))
        print(f"| {int(len(real) * share)} | {result['causes_macro_f1']:.3f} | {result['causes_accuracy']:.3f} | "
              f"{result['accuracy']:.3f} |")


if __name__ == "__main__":
    main()
