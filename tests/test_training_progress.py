"""Training's out-of-fold figures come from cross_val_predict without moving, and training says how far it is."""
import io
import json
import subprocess
import sys
import time

import numpy as np
import pytest
from joblib import Parallel, delayed
from rich.console import Console
from sklearn.base import clone
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from pipeline.cli.training_progress import TrainingDisplay
from pipeline.config import PROJECT_ROOT, load_settings
from pipeline.model.cause_model import build_pipeline, vocabulary_coverage
from pipeline.training.evaluation import FINAL_FIT, apply_weighting, read_labelled
from pipeline.training.folds import out_of_fold_coverage, out_of_fold_probabilities


@pytest.fixture(scope="module")
def sectors_frame():
    """Real and synthetic rows of six sectors, a few per cause: folds fit in seconds."""
    frame = read_labelled(PROJECT_ROOT / "data" / "training" / "train.csv")
    frame = frame[frame["industry"].isin(["reviews", "telecom", "ecommerce", "hotel", "bank", "restaurant"])]
    return frame.groupby(["sector", "cause"]).head(6).reset_index(drop=True)


def hand_written_out_of_fold(pipeline, texts, labels, folds, seed=0, sample_weight=None, groups=None):
    """The loop cross_val_predict replaced, as it was: per fold, fit a clone on the training rows (their
    weights) and predict the test rows with that fold's model."""
    classes = list(np.unique(labels))
    probabilities, coverage = np.zeros((len(texts), len(classes))), np.ones(len(texts))
    if groups is None:
        splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(texts, labels)
    else:
        splits = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(texts, labels, groups)
    texts = np.asarray(texts, dtype=object)

    def fit_fold(train_idx, test_idx):
        fit_params = {} if sample_weight is None else {"classifier__sample_weight": sample_weight[train_idx]}
        fitted = clone(pipeline).fit(list(texts[train_idx]), labels[train_idx], **fit_params)
        normalised = fitted.named_steps["normalise"].transform(list(texts[test_idx]))
        features = fitted.named_steps["features"].transform(normalised)
        return (test_idx, fitted.classes_, fitted.named_steps["classifier"].predict_proba(features),
                vocabulary_coverage(fitted, normalised, features))

    for test_idx, fold_classes, fold_proba, fold_coverage in Parallel(n_jobs=1)(
            delayed(fit_fold)(train_idx, test_idx) for train_idx, test_idx in splits):
        coverage[test_idx] = fold_coverage
        for j, label in enumerate(fold_classes):
            probabilities[test_idx, classes.index(label)] = fold_proba[:, j]
    return np.asarray(classes), probabilities, coverage


@pytest.mark.slow
def test_cross_val_predict_gives_the_hand_written_loops_figures(sectors_frame):
    texts, labels = sectors_frame["text"].tolist(), sectors_frame["cause"].to_numpy()
    # the shipped recipe: the two-stage classifier (it finds 'none' by name) with the prior's row weights
    pipeline = build_pipeline(estimator="two-stage", engine="rjieba")
    weights = apply_weighting(pipeline, labels, sectors_frame["source"].to_numpy(), "prior")
    expected_classes, expected, expected_coverage = hand_written_out_of_fold(pipeline, texts, labels, 3,
                                                                             sample_weight=weights)
    events = []
    classes, probabilities = out_of_fold_probabilities(pipeline, texts, labels, 3, sample_weight=weights,
                                                       progress=lambda *event: events.append(event))
    assert classes.tolist() == expected_classes.tolist()
    assert np.array_equal(probabilities, expected)
    assert np.array_equal(out_of_fold_coverage(pipeline, texts, labels, 3), expected_coverage)
    assert events == [("cross-validation", done, 3) for done in range(4)]

    groups = sectors_frame["sector"].to_numpy()
    _, expected_grouped, _ = hand_written_out_of_fold(pipeline, texts, labels, 3, sample_weight=weights, groups=groups)
    _, grouped = out_of_fold_probabilities(pipeline, texts, labels, 3, sample_weight=weights, groups=groups)
    assert np.array_equal(grouped, expected_grouped)
    assert not np.array_equal(grouped, probabilities)  # holding sectors out is another experiment


@pytest.mark.slow
def test_train_shows_each_stage_with_folds_done_and_segments_as_classify_will(sectors_frame, tmp_path):
    data = tmp_path / "labelled.csv"
    sectors_frame.to_csv(data, index=False)
    result = subprocess.run([sys.executable, "-m", "pipeline", "train", "--data", str(data), "--folds", "3",
                             "--output", str(tmp_path / "model")],
                            capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    finished = [line.split(":")[0] for line in result.stdout.splitlines() if " done in " in line]
    assert finished == ["cross-validation", "vocabulary coverage", "cross-validation, industries held out", FINAL_FIT]
    assert "cross-validation: 3/3 done in" in result.stdout and "done in" not in result.stderr
    # trained with the segmenter classify will run it with (the setting), so it is never switched at load
    metadata = json.loads((tmp_path / "model" / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["segmenter_engine"] == load_settings().segmenter_engine == "rjieba"


def test_the_live_line_says_what_is_done_and_how_long_is_left():
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=150)
    with TrainingDisplay(console, console, final_fit=FINAL_FIT) as progress:
        progress("cross-validation", 0, 4)
        time.sleep(0.2)
        progress("cross-validation", 1, 4)
        progress._bars.refresh()
        live = screen.getvalue()
        assert "1/4" in live and "left" in live and "0:00:00" in live  # done, elapsed, time left
        for done in (2, 3, 4):
            progress("cross-validation", done, 4)
        progress(FINAL_FIT, 0, 1)
        progress._bars.refresh()
        assert "s left" in screen.getvalue().rsplit(FINAL_FIT, 1)[1]  # estimated from the folds' pace
        progress(FINAL_FIT, 1, 1)
    printed = screen.getvalue()
    assert "cross-validation: 4/4 done in" in printed and f"{FINAL_FIT}: 1/1 done in" in printed
