"""Cause shares a manager can trust: on simulated data with a known truth, a 60%-accurate classifier and a
400-complaint random audit, the adjusted shares' error is at most half the raw shares' and their 95%
intervals hold the truth; and the audit loop end to end — a blind random draw, labels imported, the
adjusted shares in the report beside the classifier's."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from pipeline.storage import store
from pipeline.reporting.audit import adjusted_shares, post_stratified_shares
from pipeline.cli.app import app
from pipeline.config import load_settings
from pipeline.reporting.report import build_report, render_markdown, write_report_files
from trend_data import synthetic_rows, write_to_store

LABELS = np.array(["personnel", "process", "technology", "management", "customer", "random", "none"])
TRUE_SHARES = np.array([0.18, 0.15, 0.14, 0.12, 0.06, 0.05, 0.30])
# how often each cause is recognised, before scaling to 60% overall: management worst (as on unseen industries)
RECALL_SHAPE = np.array([0.75, 0.6, 0.7, 0.35, 0.5, 0.45, 0.55])


def confusion(rng, kind: str, accuracy: float = 0.6) -> np.ndarray:
    """P(predicted | true) with overall accuracy ``accuracy``. 'lopsided': errors go mostly to none and
    process, as a real classifier's do; 'scattered': each cause's errors spread at random."""
    recall = RECALL_SHAPE * accuracy / (TRUE_SHARES @ RECALL_SHAPE)
    k = len(LABELS)
    matrix = np.zeros((k, k))
    for true in range(k):
        if kind == "lopsided":
            errors = np.full(k, 0.2 / (k - 3))
            errors[[6, 1]] = (0.5, 0.3) if true not in (1, 6) else (0.0, 0.0)
            if true == 6:
                errors[[1, 0]] = (0.5, 0.3)
            if true == 1:
                errors[[6, 0]] = (0.6, 0.2)
        else:
            errors = rng.dirichlet(np.ones(k))
        errors[true] = 0
        matrix[true] = errors / errors.sum() * (1 - recall[true])
        matrix[true, true] = recall[true]
    return matrix


def simulate(seed: int, kind: str, complaints: int = 20_000, audit: int = 400) -> dict:
    rng = np.random.default_rng(seed)
    matrix = confusion(rng, kind)
    truth = rng.choice(len(LABELS), complaints, p=TRUE_SHARES)
    predicted = (rng.random(complaints)[:, None] > matrix[truth].cumsum(axis=1)).sum(axis=1).clip(max=len(LABELS) - 1)
    drawn = rng.choice(complaints, audit, replace=False)
    result = adjusted_shares(pd.Series(LABELS[predicted]),
                             pd.DataFrame({"predicted_cause": LABELS[predicted[drawn]], "label": LABELS[truth[drawn]]}),
                             replicates=500, seed=seed).table.set_index("cause")
    failures = truth[truth != 6]  # the truth among service failures, as the shares are reported
    true = pd.Series(np.bincount(failures, minlength=6)[:6] / len(failures), index=LABELS[:6]).reindex(result.index)
    return {"accuracy": float((predicted == truth).mean()),
            "raw_error": float((result["raw_share"] - true).abs().sum()),
            "adjusted_error": float((result["adjusted_share"] - true).abs().sum()),
            "covered": float(((result["ci_low"] <= true) & (true <= result["ci_high"])).mean()),
            "management": (result.loc["management", "raw_share"], result.loc["management", "adjusted_share"],
                           true["management"])}


@pytest.mark.parametrize("kind", ["lopsided", "scattered"])
def test_adjusted_shares_halve_the_error_of_a_60_percent_accurate_classifier(kind):
    runs = [simulate(seed, kind) for seed in range(20)]
    accuracy = np.mean([r["accuracy"] for r in runs])
    raw = np.mean([r["raw_error"] for r in runs])
    adjusted = np.mean([r["adjusted_error"] for r in runs])
    covered = np.mean([r["covered"] for r in runs])
    print(f"{kind}: accuracy {accuracy:.3f}, summed absolute error of the six shares: raw {raw:.3f}, "
          f"adjusted {adjusted:.3f} (ratio {adjusted / raw:.2f}); 95% intervals hold the truth {covered:.0%}")
    assert 0.59 <= accuracy <= 0.61
    assert adjusted <= 0.5 * raw
    assert covered >= 0.85
    if kind == "lopsided":  # management under-counted by half, as on unseen industries — and put right
        raw_management, adjusted_management, true_management = np.mean([r["management"] for r in runs], axis=0)
        assert raw_management < 0.6 * true_management and abs(adjusted_management - true_management) < 0.01


def test_post_stratification_is_exact_when_the_audit_mirrors_the_population():
    # 3 labels; population predicted 50/30/20; among audited 'a' predictions 80% are a, 20% b, etc.
    predicted = np.array([0] * 10 + [1] * 10 + [2] * 10)
    truth = np.array([0] * 8 + [1] * 2 + [1] * 10 + [2] * 5 + [0] * 5)
    shares, unaudited = post_stratified_shares(np.array([0.5, 0.3, 0.2]), predicted, truth, 3)
    assert shares == pytest.approx([0.5 * 0.8 + 0.2 * 0.5, 0.5 * 0.2 + 0.3, 0.2 * 0.5])
    assert not unaudited.any()
    shares, unaudited = post_stratified_shares(np.array([0.5, 0.3, 0.2]), predicted[:20], truth[:20], 3)
    assert unaudited.tolist() == [False, False, True] and shares[2] == pytest.approx(0.2)  # kept as predicted


@pytest.fixture
def audited_store(tmp_path):
    """Synthetic complaints whose stored (model) cause is wrong 40% of the time, management mostly taken for
    process: the truth is known, so the audit can be labelled by it."""
    rng = np.random.default_rng(5)
    rows = synthetic_rows(seed=11, days=70, per_day=40)
    truth = rows["cause"].to_numpy().copy()
    wrong = rng.random(len(rows)) < 0.4
    rows.loc[wrong, "cause"] = np.where(truth[wrong] == "management", "process",
                                        rng.choice(["none", "process", "personnel"], wrong.sum()))
    settings = load_settings(work_dir=tmp_path / "work")
    engine = store.connect(settings.resolved_database_url)
    write_to_store(engine, rows)
    engine.dispose()
    return settings, dict(zip(rows["complaint_id"], truth))


@pytest.mark.slow
def test_a_blind_random_audit_corrects_the_shares_in_the_report(audited_store, tmp_path):
    settings, truth = audited_store
    runner = CliRunner()
    work = ["--work-dir", str(settings.work_dir)]
    engine = store.connect(settings.resolved_database_url)
    before = build_report(engine, settings)
    assert before.shares is None and "尚无校正：已为审计抽取 0 条" in render_markdown(before)

    export = tmp_path / "audit.csv"
    result = runner.invoke(app, ["review", "export", "--audit", "400", "--seed", "7", "--output", str(export), *work])
    assert result.exit_code == 0, result.output
    drawn = pd.read_csv(export, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert len(drawn) == 400 and drawn["complaint_id"].is_unique
    assert "predicted_cause" not in drawn.columns and "confidence" not in drawn.columns  # blind
    assert (drawn["cause"] == "").all()
    again = runner.invoke(app, ["review", "export", "--audit", "400", "--seed", "7", "--output",
                                str(tmp_path / "second.csv"), *work])
    second = pd.read_csv(tmp_path / "second.csv", encoding="utf-8-sig", dtype=str)
    assert again.exit_code == 0 and not set(second["complaint_id"]) & set(drawn["complaint_id"])  # no repeats

    drawn["cause"] = drawn["complaint_id"].map(truth)
    drawn.to_csv(export, index=False, encoding="utf-8-sig")
    result = runner.invoke(app, ["review", "import", str(export), "--reviewer", "质检组", *work])
    assert result.exit_code == 0 and "imported 400" in result.output, result.output

    report = build_report(engine, settings)
    engine.dispose()
    shares = report.shares.table.set_index("cause")
    window_truth = pd.Series(truth).loc[lambda s: s != "none"].value_counts(normalize=True)
    raw_error = (shares["raw_share"] - window_truth).abs().sum()
    adjusted_error = (shares["adjusted_share"] - window_truth).abs().sum()
    assert adjusted_error < 0.5 * raw_error
    management = shares.loc["management"]
    assert management["raw_share"] < 0.75 * window_truth["management"]
    assert management["ci_low"] <= window_truth["management"] <= management["ci_high"]
    assert report.shares.audit_labels == 400 and report.shares.audit_drawn == 800

    paths = write_report_files(report, tmp_path / "reports", "audited")
    page = paths["html"].read_text(encoding="utf-8")
    mix = page.split('id="mix"')[1].split('id="causes"')[0]
    assert "依据 400 条随机抽取、经人工标注的投诉校正（共抽取 800 条）" in mix
    assert f"<td>管理</td><td class=\"num\">{management['raw_share'] * 100:.1f}%</td>" in mix
    assert "预警用的是分类器的原始计数" in mix  # which shares the alerts use, and why
    sheet = pd.read_excel(paths["xlsx"], sheet_name="adjusted shares")
    assert sheet.set_index("cause").loc["management", "adjusted_share"] == pytest.approx(management["adjusted_share"])
    assert "adjusted shares" in load_workbook(paths["xlsx"], read_only=True).sheetnames
    mix_summary = render_markdown(report).split("## 原因构成")[1].split("##")[0]
    assert f"{management['adjusted_share'] * 100:.1f}%" in mix_summary and "校正后占比" in mix_summary
    english = build_report(store.connect(settings.resolved_database_url), settings, report_language="en")
    assert "Adjusted by 400 randomly drawn complaints" in render_markdown(english)
