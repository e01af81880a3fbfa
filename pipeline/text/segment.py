"""Word segmentation with jieba (the reference) or rjieba (a faster binding of jieba-rs).

Each ``Segmenter`` owns its tokenizer — the global ``jieba.dt`` is never touched — loads the shipped
user dictionary (UTF-8 ``word freq tag`` lines) and drops stopwords. The tokenizer is not pickled
(jieba's lock cannot be); it is rebuilt lazily after unpickling, so a fitted model pipeline that holds
a segmenter pickles and runs in worker processes.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from sklearn.base import BaseEstimator, TransformerMixin

from pipeline.config import DATA_DIR

DEFAULT_USER_DICT = DATA_DIR / "dictionaries" / "user_dict.txt"
DEFAULT_STOPWORDS = DATA_DIR / "dictionaries" / "stopwords.txt"
ENGINES = ("jieba", "rjieba")


def read_user_dict(path: Path) -> list[tuple[str, int | None, str | None]]:
    """Parse jieba user-dictionary lines: ``word [freq] [tag]``."""
    entries = []
    for line_number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.strip().split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            freq = int(parts[1]) if len(parts) > 1 else None
        except ValueError as exc:
            raise ValueError(f"{path}: line {line_number}: frequency must be an integer, got {parts[1]!r}") from exc
        entries.append((parts[0], freq, parts[2] if len(parts) > 2 else None))
    return entries


def read_stopwords(path: Path) -> frozenset[str]:
    return frozenset(w.strip() for w in Path(path).read_text(encoding="utf-8").splitlines() if w.strip())


class Segmenter:
    """Text → list of tokens (whitespace and stopwords removed). Deterministic for a given dictionary."""

    def __init__(self, *, engine: str = "jieba", user_dict_path: Path | str | None = DEFAULT_USER_DICT,
                 stopwords_path: Path | str | None = DEFAULT_STOPWORDS, hmm: bool = True):
        if engine not in ENGINES:
            raise ValueError(f"segmenter engine must be one of {ENGINES}, got {engine!r}")
        self.engine = engine
        self.user_dict_path = Path(user_dict_path) if user_dict_path else None
        self.stopwords_path = Path(stopwords_path) if stopwords_path else None
        self.hmm = hmm
        # Read the dictionaries now so a pickled segmenter carries them with it (no file needed later).
        self._user_words = read_user_dict(self.user_dict_path) if self.user_dict_path else []
        self._stopwords = read_stopwords(self.stopwords_path) if self.stopwords_path else frozenset()
        self._tokenizer = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_tokenizer"] = None
        return state

    def _build_tokenizer(self):
        if self.engine == "rjieba":
            import rjieba

            tokenizer = rjieba.Jieba()
            for word, freq, tag in self._user_words:
                tokenizer.add_word(word, freq, tag)
            return tokenizer
        import jieba

        logging.getLogger("jieba").setLevel(logging.WARNING)
        tokenizer = jieba.Tokenizer()
        tokenizer.tmp_dir = tempfile.gettempdir()
        tokenizer.initialize()
        for word, freq, tag in self._user_words:
            tokenizer.add_word(word, freq, tag)
        return tokenizer

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = self._build_tokenizer()
        return self._tokenizer

    def raw_cut(self, text: str) -> list[str]:
        if self.engine == "rjieba":
            return self.tokenizer.cut(text, self.hmm)
        return self.tokenizer.lcut(text, HMM=self.hmm)

    def cut(self, text: str) -> list[str]:
        return [t for t in self.raw_cut(text) if t.strip() and t not in self._stopwords]


class SegmentTransformer(TransformerMixin, BaseEstimator):
    """Pipeline step: normalised texts → space-joined tokens, for a whitespace-splitting vectorizer."""

    def __init__(self, *, engine: str = "jieba", user_dict_path: str | None = None,
                 stopwords_path: str | None = None):
        self.engine = engine
        self.user_dict_path = user_dict_path
        self.stopwords_path = stopwords_path

    def fit(self, X, y=None):
        self.segmenter_ = Segmenter(
            engine=self.engine,
            user_dict_path=self.user_dict_path or DEFAULT_USER_DICT,
            stopwords_path=self.stopwords_path or DEFAULT_STOPWORDS,
        )
        return self

    def transform(self, X):
        return [" ".join(self.segmenter_.cut(t)) for t in X]


def split_on_space(text: str) -> list[str]:
    """Tokenizer for vectorizers fed by ``SegmentTransformer`` (module-level so it pickles)."""
    return text.split(" ")
