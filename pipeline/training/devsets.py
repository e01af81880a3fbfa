"""Per-industry dev sets: our labels on samples of the evaluation-only corpora, joined with their texts.

The texts under ``shared/evaluation/`` may only *measure* models and choose between them: they are never
trained on, never tuned on, never shipped. So the repository keeps only the labels — id, the text's sha256
and the adjudicated cause — in ``data/devsets/labels.csv``, and the texts are read from the evaluation
folder beside the checkout when a benchmark runs. A text whose hash no longer matches is refused.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import pandas as pd

from pipeline.config import DATA_DIR, PROJECT_ROOT
from pipeline.training.datasets import text_sha256

DEVSET_LABELS = DATA_DIR / "devsets" / "labels.csv"
DEFAULT_EVALUATION_DIR = PROJECT_ROOT.parent / "shared" / "evaluation"
# industry → corpus file under the evaluation folder
DEVSET_SOURCES = {
    "restaurants": "dev_pools/restaurants.tsv",
    "banking": "dev_pools/banking.tsv",
    "ecommerce": "dev_pools/ecommerce_service_chats.tsv",
    "telecom": "cocc/cocc.tsv",
}


class DevSetError(RuntimeError):
    """The evaluation corpora are missing or no longer match the recorded labels."""



def evaluation_dir() -> Path:
    return Path(os.environ.get("COMPLAINTS_EVALUATION_DIR", DEFAULT_EVALUATION_DIR))


def read_corpus(path: Path) -> dict[str, str]:
    with path.open(encoding="utf-8", newline="") as handle:
        return {row["id"]: row["text"] for row in csv.DictReader(handle, dialect="excel-tab")}


def load_dev_sets(labels_path: Path = DEVSET_LABELS, corpus_dir: Path | None = None) -> pd.DataFrame:
    """Adjudicated dev labels with their texts: ``industry, id, text, cause, secondary_causes, ...``."""
    corpus_dir = Path(corpus_dir or evaluation_dir())
    if not corpus_dir.is_dir():
        raise DevSetError(f"{corpus_dir}: the evaluation corpora are not here; set COMPLAINTS_EVALUATION_DIR "
                          "to the shared/evaluation folder")
    labels = pd.read_csv(labels_path, dtype=str, keep_default_na=False)
    texts = []
    corpora: dict[str, dict[str, str]] = {}
    for row in labels.itertuples(index=False):
        if row.industry not in corpora:
            corpora[row.industry] = read_corpus(corpus_dir / DEVSET_SOURCES[row.industry])
        text = corpora[row.industry].get(row.id)
        if text is None or text_sha256(text) != row.text_sha256:
            raise DevSetError(f"{labels_path}: {row.industry} id {row.id}: the text in {corpus_dir} is missing or "
                              "changed (sha256 differs); these labels belong to another version of the corpus")
        texts.append(text)
    return labels.assign(text=texts)
