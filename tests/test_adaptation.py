"""Learning a company's industry: choosing which complaints to label, adapting the shipped model to the
labels, and the labels people type (English or Chinese cause names)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.training.adapt import (AdaptationError, adapt_model, adaptation_weights, select_for_labelling,
                            shipped_training_rows, uncertain_and_diverse, uncertainty)
from pipeline.model.classify import CauseModel, load_trained_model
from pipeline.cli.app import app
from pipeline.config import DATA_DIR, MODELS_DIR
from pipeline.labels import canonical_label
from pipeline.training.evaluation import read_labelled

runner = CliRunner()


@pytest.fixture(scope="module")
def base_model():
    return load_trained_model(MODELS_DIR / "default")


def test_labels_are_read_in_english_or_chinese():
    assert [canonical_label(x) for x in ["管理", "Management", " 人员 ", "随机因素", "不可抗力", "非投诉/待人工", "顾客"]] == \
        ["management", "management", "personnel", "random", "random", "none", "customer"]
    assert canonical_label("refund") == "refund"  # a custom model's own label passes through unchanged


def test_review_import_takes_the_chinese_cause_names_the_report_shows(lexicon_settings, tmp_path):
    from pipeline.storage import store
    from ticket_helpers import process_file, write_complaints

    process_file(lexicon_settings, write_complaints(tmp_path / "in.csv"))
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"complaint_id": ["C1", "C3"], "cause": ["管理", "技术"], "secondary_causes": ["人员、流程", ""],
                  "reviewer": ["王芳", "王芳"]}).to_csv(labels, index=False)
    result = runner.invoke(app, ["review", "import", str(labels), "--work-dir", str(lexicon_settings.work_dir)])
    assert result.exit_code == 0, result.output
    reviews = store.read_table(store.connect(lexicon_settings.resolved_database_url), store.reviews)
    assert reviews.set_index("complaint_id").loc[["C1", "C3"], ["cause", "secondary_causes"]].values.tolist() == \
        [["management", "personnel|process"], ["technology", ""]]


def test_choice_favours_uncertain_texts_and_spreads_over_kinds_of_text():
    rng = np.random.default_rng(0)
    # two tight groups of texts: 50 very uncertain near-copies, 50 a little less uncertain elsewhere
    points = np.vstack([np.tile([1.0, 0.0], (50, 1)) + rng.normal(0, 0.01, (50, 2)),
                        np.tile([0.0, 1.0], (50, 1)) + rng.normal(0, 0.01, (50, 2))])
    unsure = np.concatenate([np.full(50, 0.95), np.full(50, 0.7)])
    chosen = uncertain_and_diverse(points, unsure, 10, seed=0)
    assert len(set(chosen)) == 10 and chosen[0] < 50  # the most uncertain first
    assert (chosen >= 50).sum() >= 3  # not ten copies of the same confusing complaint
    more = uncertain_and_diverse(points, unsure, 5, already=chosen, seed=0)
    assert not set(more) & set(chosen)


@pytest.mark.slow
def test_review_select_writes_the_chosen_complaints_masked_with_empty_labels(tmp_path, base_model):
    source = tmp_path / "pool.csv"
    texts = ["快递三天没更新物流，客服一直说在查，电话13812345678", "银行卡年费没通知就扣了，太不合理",
             "房间很干净，服务很好，下次还来", "外卖送错了，商家说是骑手的问题", "暴雨导致航班取消，改签没人管",
             "APP一直闪退登录不了", "营业员态度恶劣，摔东西", "自己填错地址了，能改吗"] * 3
    pd.DataFrame({"id": [f"P{i}" for i in range(len(texts))], "text": texts}).to_csv(source, index=False)
    output = tmp_path / "to_label.csv"
    result = runner.invoke(app, ["review", "select", "--input", str(source), "--limit", "6", "--output", str(output)])
    assert result.exit_code == 0, result.output
    chosen = pd.read_csv(output, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(chosen.columns[:2]) == ["id", "text"] and len(chosen) == 6 and chosen["id"].is_unique
    assert (chosen["cause"] == "").all() and not chosen["text"].str.contains("13812345678").any()
    assert chosen["text"].nunique() >= 5  # copies of one text are not chosen over and over
    # what was labelled already is not chosen again
    again = runner.invoke(app, ["review", "select", "--input", str(source), "--limit", "6", "--output",
                                str(tmp_path / "next.csv"), "--exclude", str(output)])
    assert again.exit_code == 0, again.output
    assert not set(pd.read_csv(tmp_path / "next.csv", dtype=str)["id"]) & set(chosen["id"])


@pytest.mark.slow
def test_review_select_order_matches_the_model_uncertainty(base_model):
    texts = read_labelled(DATA_DIR / "training" / "heldout.csv")["text"].head(300).tolist()
    order, probabilities = select_for_labelling(base_model, texts, 30)
    unsure = uncertainty(probabilities)
    assert len(set(order)) == 30
    assert unsure[order].mean() > unsure.mean()  # the chosen are less sure than the pool on average


def test_company_rows_carry_their_share_of_the_weight():
    shipped = read_labelled(DATA_DIR / "training" / "train.csv").head(3000)
    weights = adaptation_weights(shipped, 100, 0.3, synthetic_share=0.5)
    assert weights.mean() == pytest.approx(1.0)
    assert weights[-100:].sum() / weights.sum() == pytest.approx(0.3)
    assert np.allclose(weights[-100:], weights[-1])


def test_the_shipped_training_rows_match_the_base_model(base_model):
    rows = shipped_training_rows(base_model.metadata)
    assert len(rows) == base_model.metadata["training_rows"]
    changed = dict(base_model.metadata, training_data={**base_model.metadata["training_data"], "sha256": "0" * 64})
    with pytest.raises(AdaptationError, match="fingerprint differs"):
        shipped_training_rows(changed)


@pytest.mark.slow
def test_an_adapted_model_learns_a_companys_own_rule(base_model):
    """A company whose points-gift complaints it traces to its own programme (management: gifts listed
    without stock): the shipped model reads them as a slow process; after adapting on the company's rows it
    says management for new texts of that kind, and keeps the labels it knew."""
    shipped = read_labelled(DATA_DIR / "training" / "train.csv").sample(2500, random_state=0).reset_index(drop=True)
    items = ["保温杯", "电饭煲", "行李箱", "蓝牙音箱", "雨伞", "毛毯", "台灯", "水杯"]
    rule = [f"会员积分兑换的{item}一直没有发货，已经催了{n}次" for n in range(1, 4) for item in items]
    others = shipped[shipped["source"] != "synthetic"].groupby("cause").head(6)
    company = pd.DataFrame({"text": rule + others["text"].tolist(),
                            "cause": ["management"] * len(rule) + others["cause"].tolist(),
                            "source": "company", "sector": "company"})
    pipeline, policy, report = adapt_model(base_model.metadata, shipped, company, folds=2, company_share=0.3,
                                           n_jobs=1)
    adapted = CauseModel(pipeline, version="adapted", policy=policy, kind="model")
    new = ["会员积分兑换的榨汁机一直没有发货", "会员积分兑换的电动牙刷一直没有发货，催了好几次"]
    before = np.asarray(base_model.labels)[base_model.predict_proba(new).argmax(axis=1)]
    after = np.asarray(adapted.labels)[adapted.predict_proba(new).argmax(axis=1)]
    assert list(before) == ["process", "process"] and list(after) == ["management", "management"]
    assert report["company_rows"] == len(company) and report["cross_validation"]["folds"] == 2
    assert 0.2 <= policy.min_confidence <= 0.95 and adapted.labels == base_model.labels


@pytest.mark.slow
def test_adapting_refuses_labels_the_base_does_not_know_and_too_few_rows(base_model, tmp_path):
    shipped = read_labelled(DATA_DIR / "training" / "train.csv").head(500)
    company = pd.DataFrame({"text": ["退款一直不到账"] * 30, "cause": ["refund"] * 30})
    with pytest.raises(AdaptationError, match="refund"):
        adapt_model(base_model.metadata, shipped, company)
    with pytest.raises(AdaptationError, match="at least"):
        adapt_model(base_model.metadata, shipped, company.head(5).assign(cause="process"))
    labelled = tmp_path / "labels.csv"
    company.to_csv(labelled, index=False)
    result = subprocess.run([sys.executable, "-m", "pipeline", "train", "--base", "default", "--data", str(labelled),
                             "--output", str(tmp_path / "model")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stderr.startswith("error:") and "'refund'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "model").exists()
