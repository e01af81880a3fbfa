"""The trained cause model: one scikit-learn Pipeline from raw text to calibrated probabilities.

normalise → (jieba words TF-IDF ∪ character n-gram TF-IDF ∪ lexicon scores) → linear classifier.
The segmenter lives inside the Pipeline, so training and nightly inference cannot drift apart.
"""
from __future__ import annotations

import bisect

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.utils.validation import check_is_fitted

from pipeline.model.lexicon import LexiconFeatures, match_terms
from pipeline.labels import NONE_LABEL
from pipeline.text.normalise import TextNormaliser
from pipeline.text.segment import SegmentTransformer, split_on_space

FEATURE_SETS = ("words", "chars", "union", "union+lexicon")
ESTIMATORS = ("logreg", "two-stage", "svm", "cnb")


class ComplaintThenCause(ClassifierMixin, BaseEstimator):
    """Two logistic regressions: is the text a service-failure complaint at all (against ``none_label``),
    and if so, which cause. P(cause) = (1 − P(none)) · P(cause | complaint).

    The cause model learns only from complaints, so the many non-complaints of review and chat data do not
    pull complaints of an unfamiliar industry towards ``none``. A label set without ``none_label`` trains
    the cause model alone.

    ``nb_share`` of P(cause | complaint) comes from a multinomial naive Bayes over the same features (uniform
    class prior, so rare causes are not drowned): it leans on many weak word–cause associations where the
    logistic regression leans on a few strong ones that belong to the training text's industries, and carries
    better to unseen industries (see models/default/MODEL_CARD.md). Features must be non-negative (TF-IDF and
    lexicon scores are)."""

    def __init__(self, *, C: float = 1.0, none_label: str = NONE_LABEL, max_iter: int = 3000, random_state: int = 0,
                 nb_share: float = 0.0, nb_alpha: float = 0.1):
        self.C = C
        self.none_label = none_label
        self.max_iter = max_iter
        self.random_state = random_state
        self.nb_share = nb_share
        self.nb_alpha = nb_alpha

    def _logistic(self) -> LogisticRegression:
        return LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.random_state)

    def fit(self, X, y, sample_weight=None):
        y = np.asarray(y)
        weights = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        self.classes_ = np.unique(y)
        is_none = y == self.none_label
        self.gate_ = self._logistic().fit(X, is_none, sample_weight=weights) if is_none.any() and (~is_none).any() else None
        complaints = ~is_none if self.gate_ is not None else np.ones(len(y), dtype=bool)
        self.cause_ = self._logistic().fit(X[complaints], y[complaints], sample_weight=weights[complaints])
        self.nb_ = None
        if self.nb_share > 0:
            from sklearn.naive_bayes import MultinomialNB

            self.nb_ = MultinomialNB(alpha=self.nb_alpha, fit_prior=False).fit(
                self._nb_features(X[complaints]), y[complaints], sample_weight=weights[complaints])
        return self

    def _nb_features(self, X):
        """The columns the naive Bayes share reads: all of them here (a subclass with other, signed features
        beside the counts gives it only the counts)."""
        return X

    def _cause_probabilities(self, X) -> np.ndarray:
        """P(cause | complaint), columns in ``cause_.classes_`` order."""
        probabilities = self.cause_.predict_proba(X)
        nb = getattr(self, "nb_", None)  # models pickled before naive Bayes joined have none
        if nb is not None:
            order = [list(nb.classes_).index(label) for label in self.cause_.classes_]
            probabilities = ((1 - self.nb_share) * probabilities
                             + self.nb_share * nb.predict_proba(self._nb_features(X))[:, order])
        return probabilities

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "cause_")
        probabilities = np.zeros((X.shape[0], len(self.classes_)))
        columns = {label: j for j, label in enumerate(self.classes_)}
        p_none = self.gate_.predict_proba(X)[:, list(self.gate_.classes_).index(True)] if self.gate_ is not None else 0.0
        cause_probabilities = self._cause_probabilities(X)
        for j, label in enumerate(self.cause_.classes_):
            probabilities[:, columns[label]] = (1 - p_none) * cause_probabilities[:, j]
        if self.gate_ is not None:
            probabilities[:, columns[self.none_label]] = p_none
        return probabilities

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    @property
    def coef_(self) -> np.ndarray:
        """One weight row per class, for explanations: the gate's for ``none``, the cause model's otherwise."""
        cause_rows = self.cause_.coef_
        if cause_rows.shape[0] == 1:  # two causes: sklearn keeps one row for the second class
            cause_rows = np.vstack([-cause_rows[0], cause_rows[0]])
        rows = dict(zip(self.cause_.classes_, cause_rows))
        if self.gate_ is not None:
            gate = self.gate_.coef_[0] if list(self.gate_.classes_).index(True) == 1 else -self.gate_.coef_[0]
            rows[self.none_label] = gate
        return np.vstack([rows[label] for label in self.classes_])


def _word_features(engine: str) -> Pipeline:
    return Pipeline([
        ("segment", SegmentTransformer(engine=engine)),
        ("tfidf", TfidfVectorizer(tokenizer=split_on_space, token_pattern=None, lowercase=False,
                                  ngram_range=(1, 2), min_df=2, sublinear_tf=True)),
    ])


def _char_features() -> TfidfVectorizer:
    return TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True, lowercase=True)


def build_features(feature_set: str, engine: str = "jieba") -> FeatureUnion:
    blocks = {
        "words": [("words", _word_features(engine))],
        "chars": [("chars", _char_features())],
        "union": [("words", _word_features(engine)), ("chars", _char_features())],
        "union+lexicon": [("words", _word_features(engine)), ("chars", _char_features()),
                          ("lexicon", LexiconFeatures())],
    }
    if feature_set not in blocks:
        raise ValueError(f"feature set must be one of {FEATURE_SETS}, got {feature_set!r}")
    return FeatureUnion(blocks[feature_set])


def build_estimator(name: str, *, random_state: int = 0):
    # the other estimators' modules are imported only to build them: sklearn.calibration alone is a fifth
    # of a second of every start (a model that holds one imports it when unpickled)
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.naive_bayes import ComplementNB
    from sklearn.svm import LinearSVC

    if name == "logreg":
        return LogisticRegression(C=10.0, class_weight="balanced", max_iter=3000, random_state=random_state)
    if name == "two-stage":
        # C 1 vs 3 vs 10: level per industry, 1 best on reviews. Naive Bayes share 0.2 (vs 0): six-cause macro-F1
        # on industry-held-out cross-validation 0.748 → 0.768, on the dev industries 0.516 → 0.531
        return ComplaintThenCause(C=1.0, nb_share=0.2, nb_alpha=0.1, random_state=random_state)
    if name == "svm":
        # C chosen by 5-fold CV on the training rows (0.2 / 0.5 / 1: macro-F1 0.515 / 0.525 / 0.530)
        return CalibratedClassifierCV(LinearSVC(C=1.0, class_weight="balanced", random_state=random_state),
                                      cv=3, method="sigmoid")
    if name == "cnb":
        return ComplementNB(alpha=0.3)
    raise ValueError(f"estimator must be one of {ESTIMATORS}, got {name!r}")


def build_pipeline(*, feature_set: str = "union+lexicon", estimator: str = "logreg", engine: str = "jieba",
                   max_chars: int = 2000, random_state: int = 0) -> Pipeline:
    return Pipeline([
        ("normalise", TextNormaliser(max_chars=max_chars)),
        ("features", build_features(feature_set, engine)),
        ("classifier", build_estimator(estimator, random_state=random_state)),
    ])


class FeatureNames:
    """Feature column → the name a reader sees: the word, 「n-gram」 for character n-grams, lexicon:<label>.
    A name is made when asked for: explaining a text names a handful of columns, and writing out all
    350,000 names up front cost a fifth of a second of every start-up."""

    def __init__(self, pipeline: Pipeline):
        self._starts, self._blocks = [], []  # per feature block: first column, (terms by column, prefix, suffix)
        start = 0
        for name, block in pipeline.named_steps["features"].transformer_list:
            if name == "words":
                terms, marks = _terms_by_column(block.named_steps["tfidf"].vocabulary_), ("", "")
            elif name == "chars":
                terms, marks = _terms_by_column(block.vocabulary_), ("「", "」")
            else:
                terms, marks = block.get_feature_names_out(), ("", "")
            self._starts.append(start)
            self._blocks.append((terms, *marks))
            start += len(terms)

    def __getitem__(self, column: int) -> str:
        index = bisect.bisect_right(self._starts, column) - 1
        terms, prefix, suffix = self._blocks[index]
        return f"{prefix}{terms[column - self._starts[index]]}{suffix}"


def _terms_by_column(vocabulary: dict[str, int]) -> np.ndarray:
    """A vectoriser's terms in column order, as ``get_feature_names_out`` gives them (placing each term at
    its column is several times faster than sorting them)."""
    terms = np.empty(len(vocabulary), dtype=object)
    terms[np.fromiter(vocabulary.values(), dtype=np.intp, count=len(vocabulary))] = list(vocabulary)
    return terms


def _cached_feature_names(pipeline: Pipeline) -> FeatureNames:
    """Feature names, indexed once per fitted pipeline and process."""
    classifier = pipeline.named_steps["classifier"]
    if getattr(classifier, "explained_feature_names_", None) is None:
        classifier.explained_feature_names_ = FeatureNames(pipeline)
    return classifier.explained_feature_names_


def class_weights_matrix(classifier) -> np.ndarray:
    """(n_classes, n_features) weights whose product with a feature row says how much each feature
    pushed each class: coefficients for linear models, log-probabilities for naive Bayes."""
    if hasattr(classifier, "calibrated_classifiers_"):  # CalibratedClassifierCV
        return np.mean([c.estimator.coef_ for c in classifier.calibrated_classifiers_], axis=0)
    if hasattr(classifier, "feature_log_prob_"):  # ComplementNB
        return classifier.feature_log_prob_
    return classifier.coef_


def explain_from_features(pipeline: Pipeline, features, labels, normalised_texts=None,
                          top_n: int = 5) -> list[list[str]]:
    """For each row of already-computed features, the terms that pushed its label most: words, character
    n-grams, and for the lexicon block the lexicon terms found in the text. Features with no letter
    (digits, punctuation) say nothing to a reader and are skipped."""
    classifier = pipeline.named_steps["classifier"]
    classes = list(classifier.classes_)
    features = sparse.csr_matrix(features)
    weights = class_weights_matrix(classifier)
    if weights.shape[0] == 1:  # binary logistic regression keeps one row for the positive class
        weights = np.vstack([-weights[0], weights[0]])
    names = _cached_feature_names(pipeline)
    blocks = dict(pipeline.named_steps["features"].transformer_list)
    lexicon = blocks["lexicon"].lexicon_ if "lexicon" in blocks else None
    explanations = []
    for i, label in enumerate(labels):
        start, end = features.indptr[i], features.indptr[i + 1]
        indices, values = features.indices[start:end], features.data[start:end]
        contributions = values * weights[classes.index(label), indices]
        terms: list[str] = []
        for j in np.argsort(-contributions):
            if contributions[j] <= 0 or len(terms) >= top_n:
                break
            name = str(names[indices[j]])
            if name.startswith("lexicon:"):
                if lexicon is not None and normalised_texts is not None and name == f"lexicon:{label}":
                    terms += [t for t, _ in match_terms(normalised_texts[i], {label: lexicon.get(label, {})}).get(label, [])]
            else:
                _add_readable_term(terms, name)
        explanations.append(list(dict.fromkeys(terms))[:top_n])
    return explanations


def _add_readable_term(terms: list[str], feature: str) -> None:
    """Add a word or character n-gram as a reader would want it: 「」 marks and bigram spaces dropped; single
    characters and anything holding digits or punctuation say little and are skipped; a term inside one already listed adds
    nothing, and a longer term replaces the shorter one it contains."""
    term = feature.strip("「」").replace(" ", "")
    if len(term) < 2 or not term.isalpha() or any(term in kept for kept in terms):
        return
    shorter = [kept for kept in terms if kept in term]
    if shorter:
        terms[terms.index(shorter[0])] = term
        terms[:] = [kept for kept in terms if kept not in shorter[1:]]
    else:
        terms.append(term)


def use_segmenter_engine(pipeline: Pipeline, engine: str) -> bool:
    """Switch a fitted pipeline's segmenter between jieba and rjieba without retraining (the vocabulary
    stays; rjieba segments 97.6% of real reviews identically). Returns whether the pipeline segments."""
    for name, block in pipeline.named_steps["features"].transformer_list:
        if name == "words":
            block.named_steps["segment"].set_params(engine=engine).fit(None)
            return True
    return False


def vocabulary_coverage(pipeline: Pipeline, normalised_texts, features) -> np.ndarray | None:
    """Per text, the share of its distinct character 2–3-grams that the model knows (its character
    vocabulary): near 1 for text like the training data, low for a new industry's jargon or another
    language. None when the model has no character block."""
    offset = 0
    for name, block in pipeline.named_steps["features"].transformer_list:
        if name == "chars":
            features = sparse.csr_matrix(features)
            if getattr(block, "multi_char_mask_", None) is None:  # cached on the fitted vectoriser, once per process
                mask = np.zeros(features.shape[1])
                for gram, column in block.vocabulary_.items():
                    mask[offset + column] = float(len(gram) >= 2)
                block.multi_char_mask_ = mask
            known = (features != 0) @ block.multi_char_mask_
            seen = np.array([_distinct_multi_char_grams(text) for text in normalised_texts])
            return np.where(seen > 0, known / np.maximum(seen, 1), 1.0)
        offset += _block_width(name, block)
    return None


def _distinct_multi_char_grams(text: str) -> int:
    """Distinct character 2- and 3-grams as the character vectoriser sees the text (lower case, runs of
    white space as one space)."""
    text = " ".join(text.lower().split())
    return len({text[i:i + 2] for i in range(len(text) - 1)} | {text[i:i + 3] for i in range(len(text) - 2)})


def _block_width(name: str, block) -> int:
    if name == "words":
        return len(block.named_steps["tfidf"].vocabulary_)
    if name == "chars":
        return len(block.vocabulary_)
    return len(block.get_feature_names_out())
