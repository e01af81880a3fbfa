"""Right in an unfamiliar industry: source/label weights, curated synthetic text, the two-stage model,
honest abstention on text unlike the training data, and the per-industry dev sets."""
import hashlib

import numpy as np
import pandas as pd
import pytest

from pipeline.model.classify import ReviewPolicy, classify_texts, decide, load_trained_model
from pipeline.config import PROJECT_ROOT
from pipeline.training.datasets import curate_synthetic
from pipeline.training.devsets import DevSetError, load_dev_sets
from pipeline.model.cause_model import ComplaintThenCause, build_estimator, build_pipeline, class_weights_matrix
from pipeline.training.reserved import is_reserved
from pipeline.nightly.summary import familiarity_note
from pipeline.training.evaluation import TARGET_CLASS_PRIOR, read_labelled, train_model, training_weights
from pipeline.training.model_card import describe_two_stage
from pipeline.reporting.trends import Window, build_trends, unfamiliar_warning
from pipeline.config import TrendSettings

from tests.trend_data import synthetic_rows

TRAIN = PROJECT_ROOT / "data" / "training" / "train.csv"


def test_training_weights_give_each_label_its_prior_and_synthetic_rows_the_same_share_of_every_label():
    labels = np.array(["none"] * 50 + ["process"] * 30 + ["random"] * 20)
    sources = np.array(["real"] * 45 + ["synthetic"] * 5 + ["real"] * 10 + ["synthetic"] * 20
                       + ["real"] * 2 + ["synthetic"] * 18)
    weights = training_weights(labels, sources, prior={"none": 0.5, "process": 0.3, "random": 0.2}, synthetic_share=0.5)
    assert weights.mean() == pytest.approx(1.0)
    for label, share in (("none", 0.5), ("process", 0.3), ("random", 0.2)):
        rows = labels == label
        assert weights[rows].sum() / weights.sum() == pytest.approx(share)
        # the source says nothing about the label: synthetic rows hold half of every label's weight
        assert weights[rows & (sources == "synthetic")].sum() / weights[rows].sum() == pytest.approx(0.5)
    plain = training_weights(labels, sources, prior={"none": 0.5, "process": 0.3, "random": 0.2}, synthetic_share=None)
    assert len(set(plain[labels == "random"].round(9))) == 1


def test_curation_drops_invalid_labels_reserved_texts_copies_and_near_copies():
    def unreserved(template: str, suffix: str = "") -> list[str]:  # texts the reserve rule keeps, with and without suffix
        return [t for t in (template.format(i) for i in range(300)) if not is_reserved(t) and not is_reserved(t + suffix)]

    existing = unreserved("快递{}天了还没到，客服一直说在路上", "！")[:1]
    free = unreserved("第{}次点外卖，骑手把汤洒了一半，餐盒也压扁了", "。")
    reserved = next(t for t in (f"银行卡被扣了{i}元年费却没人通知我" for i in range(200)) if is_reserved(t))
    new = pd.DataFrame({
        "id": ["a", "b", "c", "d", "e", "f"],
        "text": [free[0], reserved, existing[0] + "！", free[0] + "。", free[1], "信号差"],
        "cause": ["process", "management", "process", "process", "process", "tech"],
        "secondary_causes": ["", "", "", "", "", ""], "industry": ["x"] * 6, "channel": ["review"] * 6,
    })
    kept, drops = curate_synthetic(new, existing)
    assert kept["id"].tolist() == ["a"]
    assert drops == {"invalid_label": 1, "too_short": 0, "reserved": 1, "duplicate": 2, "near_duplicate": 1}
    assert (kept["source"] == "synthetic").all()


def test_unfamiliar_text_must_reach_the_stricter_confidence_before_it_is_routed():
    probabilities = np.array([[0.8, 0.1, 0.1], [0.8, 0.1, 0.1]])
    policy = ReviewPolicy(min_confidence=0.6, unfamiliar_min_confidence=0.9, min_coverage=0.5)
    decided = decide(probabilities, ["process", "technology", "none"], policy, coverage=np.array([0.8, 0.3]))
    assert decided["unfamiliar"].tolist() == [False, True]
    assert decided["needs_review"].tolist() == [False, True]


def test_a_batch_mostly_unlike_the_training_data_is_held_to_the_stricter_bar_as_a_whole():
    probabilities = np.tile([0.8, 0.1, 0.1], (40, 1))
    coverage = np.array([0.3] * 20 + [0.9] * 20)
    policy = ReviewPolicy(min_confidence=0.6, unfamiliar_min_confidence=0.9, min_coverage=0.5,
                          unfamiliar_batch_share=0.3)
    decided = decide(probabilities, ["process", "technology", "none"], policy, coverage)
    assert decided["unfamiliar"].all() and decided["needs_review"].all()
    few = decide(probabilities[:5], ["process", "technology", "none"], policy, coverage[:5])  # too few to judge a batch
    assert few["unfamiliar"].all()  # each of these five is unfamiliar on its own
    mostly_known = decide(probabilities, ["process", "technology", "none"], policy, np.array([0.3] * 4 + [0.9] * 36))
    assert mostly_known["unfamiliar"].sum() == 4


@pytest.fixture(scope="module")
def industry_frame():
    """Real and synthetic rows from several industries, small enough to train in seconds."""
    frame = read_labelled(TRAIN)
    frame = frame[frame["industry"].isin(["reviews", "telecom", "ecommerce", "hotel", "bank", "restaurant"])]
    return frame.groupby(["sector", "cause"]).head(25).reset_index(drop=True)


@pytest.mark.slow
def test_two_stage_model_gives_proper_probabilities_and_explains_every_label(industry_frame):
    pipeline = build_pipeline(estimator="two-stage").fit(industry_frame["text"].tolist(), industry_frame["cause"])
    probabilities = pipeline.predict_proba(["宽带又断网了，报修三天没人来", "这家店的菜很好吃"])
    assert probabilities.shape == (2, 7)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    classifier = pipeline.named_steps["classifier"]
    assert class_weights_matrix(classifier).shape[0] == len(classifier.classes_)
    no_none = ComplaintThenCause().fit(np.eye(4), ["process", "technology", "process", "technology"])
    assert no_none.gate_ is None and no_none.predict_proba(np.eye(4)).sum(axis=1) == pytest.approx(np.ones(4))


def test_naive_bayes_share_mixes_the_cause_probabilities_and_old_models_still_predict():
    rng = np.random.default_rng(0)
    X = rng.poisson(1.0, size=(60, 12)).astype(float)
    y = np.array(["none", "process", "technology"] * 20)
    X[y == "process", :4] += 3  # each cause has words of its own
    X[y == "technology", 4:8] += 3
    plain = ComplaintThenCause().fit(X, y)
    mixed = ComplaintThenCause(nb_share=1.0).fit(X, y)
    p_none = plain.gate_.predict_proba(X)[:, 1]
    nb = mixed.nb_.predict_proba(X)[:, [list(mixed.nb_.classes_).index(c) for c in mixed.cause_.classes_]]
    columns = [list(mixed.classes_).index(c) for c in mixed.cause_.classes_]
    np.testing.assert_allclose(mixed.predict_proba(X)[:, columns], (1 - p_none)[:, None] * nb)
    assert not np.allclose(mixed.predict_proba(X), plain.predict_proba(X))
    np.testing.assert_allclose(ComplaintThenCause(nb_share=0.0).fit(X, y).predict_proba(X), plain.predict_proba(X))
    del plain.nb_  # as unpickled from a model trained before the naive Bayes share existed
    np.testing.assert_allclose(plain.predict_proba(X).sum(axis=1), 1.0)


@pytest.mark.slow
def test_training_with_industries_sets_a_stricter_bar_for_unfamiliar_text(tmp_path, industry_frame):
    metadata = train_model(industry_frame, out_dir=tmp_path / "m", folds=3, estimator="two-stage",
                           weighting="prior", review_precision=0.85)
    policy = metadata["review_policy"]
    assert policy["unfamiliar_min_confidence"] >= policy["min_confidence"]
    assert 0 < policy["min_coverage"] < 1
    assert metadata["weighting"]["prior"] == TARGET_CLASS_PRIOR
    assert metadata["cross_validation"]["industries_held_out"]["groups"] == 6
    # the card says the naive-Bayes share this artifact was trained with, read from its metadata
    share = metadata["estimator_params"]["nb_share"]
    assert share == build_estimator("two-stage").nb_share > 0
    assert f"({share:g} of the cause probabilities" in describe_two_stage(metadata["estimator_params"])
    assert "naive Bayes" not in describe_two_stage({"nb_share": 0.0})
    model = load_trained_model(tmp_path / "m")
    decided = classify_texts(model, ["Lorem ipsum dolor sit amet consectetur", "前台服务员态度很差，爱答不理"])
    assert decided.loc[0, "coverage"] < decided.loc[1, "coverage"]
    assert decided.loc[0, "unfamiliar"]


def test_dev_sets_are_joined_by_id_and_refused_when_the_text_changed(tmp_path):
    corpus = tmp_path / "evaluation" / "dev_pools"
    corpus.mkdir(parents=True)
    (corpus / "banking.tsv").write_text("id\ttext\nb1\t信用卡被降额了\nb2\t利息太高\n", encoding="utf-8")
    labels = tmp_path / "labels.csv"
    digest = hashlib.sha256("信用卡被降额了".encode("utf-8")).hexdigest()
    labels.write_text(f"industry,id,text_sha256,cause\nbanking,b1,{digest},management\n", encoding="utf-8")
    frame = load_dev_sets(labels, tmp_path / "evaluation")
    assert frame[["id", "text", "cause"]].values.tolist() == [["b1", "信用卡被降额了", "management"]]
    (corpus / "banking.tsv").write_text("id\ttext\nb1\t信用卡被降额了！！\n", encoding="utf-8")
    with pytest.raises(DevSetError, match="b1"):
        load_dev_sets(labels, tmp_path / "evaluation")
    with pytest.raises(DevSetError, match="COMPLAINTS_EVALUATION_DIR"):
        load_dev_sets(labels, tmp_path / "nowhere")


def test_shipped_dev_labels_hold_no_text_and_follow_the_taxonomy():
    labels = pd.read_csv(PROJECT_ROOT / "data" / "devsets" / "labels.csv", dtype=str, keep_default_na=False)
    assert "text" not in labels.columns
    assert set(labels["cause"]) <= set(TARGET_CLASS_PRIOR)
    assert labels.groupby("industry").size().min() >= 250
    assert labels[["industry", "id"]].duplicated().sum() == 0


def test_run_summary_and_trend_report_say_when_complaints_look_unfamiliar():
    assert familiarity_note(5, 100) is None
    assert "40 of 100" in familiarity_note(40, 100)
    rows = synthetic_rows(seed=3, days=28, per_day=40)
    window = Window(rows["at"].min().normalize(), rows["at"].max().normalize())
    calm = build_trends(rows.assign(unfamiliar=False), window, TrendSettings())
    assert unfamiliar_warning(calm) is None
    flagged = rows.assign(unfamiliar=np.arange(len(rows)) % 2 == 0)
    assert "50%" in unfamiliar_warning(build_trends(flagged, window, TrendSettings()))
