"""The trained model: estimator API, artifact integrity, any label set, explanations."""
import json
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from pipeline.model.classify import classify_texts, decide, load_trained_model, ReviewPolicy
from pipeline.model.cause_model import build_pipeline
from pipeline.model.registry import ModelIntegrityError
from pipeline.training.evaluation import TrainingDataError, read_labelled, train_model
from pipeline.config import PROJECT_ROOT

TRAIN = PROJECT_ROOT / "data" / "training" / "train.csv"


@pytest.fixture(scope="session")
def small_training_frame():
    frame = read_labelled(TRAIN)
    frame = frame[frame["source"] != "synthetic"]
    return frame.groupby("cause").head(60).reset_index(drop=True)


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory, small_training_frame):
    out = tmp_path_factory.mktemp("model")
    train_model(small_training_frame, out_dir=out, folds=3, name="test-model")
    return out


def test_pipeline_is_a_proper_estimator():
    pipeline = build_pipeline()
    with pytest.raises(NotFittedError):
        pipeline.predict(["服务差"])
    params = pipeline.get_params()
    assert params["classifier__class_weight"] == "balanced"


@pytest.mark.slow
def test_artifact_metadata_and_predictions(small_model_dir):
    metadata = json.loads((small_model_dir / "metadata.json").read_text(encoding="utf-8"))
    for key in ("version", "sha256", "labels", "library_versions", "training_data", "cross_validation",
                "review_policy"):
        assert key in metadata
    assert 0.0 <= metadata["cross_validation"]["macro_f1"] <= 1.0
    model = load_trained_model(small_model_dir)
    result = classify_texts(model, ["前台服务员态度恶劣，爱答不理", "台风导致航班取消"])
    probability_columns = [c for c in result.columns if c.startswith("p_")]
    assert len(probability_columns) == len(metadata["labels"])
    assert np.allclose(result[probability_columns].sum(axis=1), 1.0, atol=1e-3)
    assert result["explanation"].str.len().gt(0).all()


@pytest.mark.slow
def test_fitted_pipeline_pickles_and_predicts_the_same(small_model_dir):
    model = load_trained_model(small_model_dir)
    texts = ["空调坏了没人修", "价格太贵了不值"]
    clone = pickle.loads(pickle.dumps(model.estimator))
    assert np.allclose(clone.predict_proba(texts), model.predict_proba(texts))


@pytest.mark.slow
def test_tampered_artifact_is_refused(small_model_dir, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("model.joblib", "metadata.json"):
        (copy / name).write_bytes((small_model_dir / name).read_bytes())
    with (copy / "model.joblib").open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ModelIntegrityError, match="checksum"):
        load_trained_model(copy)


@pytest.mark.slow
def test_any_label_set_trains(tmp_path):
    rows = [("宽带断网三天了", "网络问题"), ("信号很差打不了电话", "网络问题"), ("上网速度太慢", "网络问题"),
            ("多扣了二十元话费", "费用问题"), ("套餐费用不对", "费用问题"), ("账单金额有误", "费用问题"),
            ("营业员态度很差", "服务问题"), ("客服不理人", "服务问题"), ("工作人员骂人", "服务问题")] * 3
    frame = pd.DataFrame(rows, columns=["内容", "类别"])
    path = tmp_path / "company.csv"
    frame.to_csv(path, index=False, encoding="gbk")
    labelled = read_labelled(path, "内容", "类别")
    metadata = train_model(labelled, text_column="内容", label_column="类别", out_dir=tmp_path / "m", folds=3)
    assert metadata["labels"] == ["服务问题", "网络问题", "费用问题"]
    model = load_trained_model(tmp_path / "m")
    assert classify_texts(model, ["宽带又断网了"]).iloc[0]["cause"] == "网络问题"


def test_training_data_errors_name_the_column(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("text,label\n服务差,personnel\n", encoding="utf-8")
    with pytest.raises(TrainingDataError, match="no column 'cause'"):
        read_labelled(path)
    frame = pd.DataFrame({"text": ["a", "b", "c"], "cause": ["x", "x", "y"]})
    with pytest.raises(TrainingDataError, match="fewer than 5 examples"):
        train_model(frame, out_dir=tmp_path / "m")


def test_review_policy_flags_low_confidence_small_margin_and_none():
    probabilities = np.array([[0.9, 0.05, 0.05], [0.45, 0.40, 0.15], [0.2, 0.1, 0.7], [0.55, 0.05, 0.40]])
    decided = decide(probabilities, ["process", "technology", "none"], ReviewPolicy(min_confidence=0.5,
                                                                                       min_margin=0.1,
                                                                                       secondary_threshold=0.3))
    assert decided["cause"].tolist() == ["process", "process", "none", "process"]
    assert decided["needs_review"].tolist() == [False, True, True, False]
    assert decided["secondary_causes"].tolist() == ["", "technology", "", ""]


def test_explanation_terms_are_readable():
    from pipeline.model.cause_model import _add_readable_term

    terms: list[str] = []
    for feature in ["「费」", "「元,」", "「0元」", "航班", "「航班取消」", "要求 尽快", "「取消」", "APP"]:
        _add_readable_term(terms, feature)
    assert terms == ["航班取消", "要求尽快", "APP"]
