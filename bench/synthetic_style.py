"""Does "written like a synthetic text" tell the model anything about the cause? It should not.

    python -m bench.synthetic_style

1. A style classifier learns to tell synthetic training texts from real ones (character n-grams, 5-fold
   out-of-fold scores): how recognisable the synthetic style is (ROC AUC).
2. Cause from style alone: a multinomial model predicts the cause from that out-of-fold style score only.
   Its log-loss against the label prior says how much cause information the style carries — under the
   raw rows, and under the training weights the default model uses (which give synthetic rows the same
   share of every label, so the answer should be ≈ 0).
"""
from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline

from pipeline.config import DATA_DIR
from pipeline.training.evaluation import read_labelled, training_weights


def cause_information(style_score: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """Share of the label prior's log-loss that the style score removes (0: none, 1: all)."""
    classes = np.unique(labels)
    prior = np.array([weights[labels == c].sum() for c in classes]) / weights.sum()
    baseline = log_loss(labels, np.tile(prior, (len(labels), 1)), labels=classes, sample_weight=weights)
    model = LogisticRegression(max_iter=1000)
    bins = np.minimum((style_score * 10).astype(int), 9)  # ten bins: any shape of dependence, not just a slope
    features = np.eye(10)[bins]
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    predicted = cross_val_predict(model, features, labels, cv=folds, method="predict_proba",
                                  params={"sample_weight": weights})
    return float(1 - log_loss(labels, predicted, labels=classes, sample_weight=weights) / baseline)


def main() -> None:
    train = read_labelled(DATA_DIR / "training" / "train.csv")
    texts, labels = train["text"].tolist(), train["cause"].to_numpy()
    is_synthetic = (train["source"] == "synthetic").to_numpy()
    style = make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True),
                          LogisticRegression(C=3, max_iter=2000))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    style_score = cross_val_predict(style, texts, is_synthetic, cv=folds, method="predict_proba")[:, 1]
    print(f"{len(train)} training rows, {is_synthetic.sum()} synthetic")
    print(f"style classifier (synthetic vs real), out-of-fold ROC AUC: {roc_auc_score(is_synthetic, style_score):.3f}")
    raw = cause_information(style_score, labels, np.ones(len(labels)))
    weighted = cause_information(style_score, labels, training_weights(labels, train["source"].to_numpy()))
    print(f"cause information in the style score: {raw:.1%} of the prior's log-loss with raw rows, "
          f"{weighted:.1%} under the default model's training weights")
    print("\n| label | real rows | synthetic rows | mean style score, real | mean style score, synthetic |")
    print("|---|---|---|---|---|")
    for label in np.unique(labels):
        real, synthetic = (labels == label) & ~is_synthetic, (labels == label) & is_synthetic
        print(f"| {label} | {real.sum()} | {synthetic.sum()} | {style_score[real].mean():.2f} | "
              f"{style_score[synthetic].mean():.2f} |")


if __name__ == "__main__":
    main()
