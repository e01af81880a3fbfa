"""The CLI contract other tools script against, run as a real subprocess on real files."""
import json
import subprocess
import sys

import pandas as pd
import pytest

from pipeline.config import MODELS_DIR, PROJECT_ROOT

DEFAULT_MODEL_LABELS = json.loads((MODELS_DIR / "default" / "metadata.json").read_text(encoding="utf-8"))["labels"]
FIXED_COLUMNS = ["id", "cause", "confidence", "needs_review", "secondary_causes", "explanation", "remedy", "queue",
                 "unfamiliar"]


def complaints(*args, cwd=PROJECT_ROOT):
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def gbk_input(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "export_gbk.csv"
    rows = [("K1", "前台服务员态度恶劣，爱答不理"), ("K2", "空调坏了一晚上没修好，没有热水"),
            ("K3", ""), ("K4", "台风导致航班取消，酒店拒绝退款"), ("K5", "!!!???")]
    pd.DataFrame(rows, columns=["id", "text"]).to_csv(path, index=False, encoding="gbk")
    return path


@pytest.mark.slow
def test_classify_writes_one_row_per_valid_row_with_the_contract_columns(gbk_input, tmp_path):
    output = tmp_path / "out.csv"
    result = complaints("classify", "--input", str(gbk_input), "--output", str(output))
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(output, encoding="utf-8-sig", keep_default_na=False)
    assert frame.columns.tolist() == FIXED_COLUMNS + [f"p_{label}" for label in DEFAULT_MODEL_LABELS]
    assert frame["id"].tolist() == ["K1", "K2", "K4"]
    assert set(frame["cause"]) <= set(DEFAULT_MODEL_LABELS)
    # invalid rows are reported with file, row and column, and kept in a side file
    assert "row 3, column 'text'" in result.stderr and "row 5, column 'text'" in result.stderr
    invalid = pd.read_csv(tmp_path / "out.invalid.csv", encoding="utf-8-sig")
    assert invalid["reason"].tolist() == ["empty_text", "no_letters"]


@pytest.mark.slow
def test_classify_to_jsonl_with_the_lexicon(gbk_input, tmp_path):
    output = tmp_path / "out.jsonl"
    result = complaints("classify", "--input", str(gbk_input), "--output", str(output), "--lexicon")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == ["K1", "K2", "K4"]
    assert records[0]["cause"] == "personnel" and records[0]["remedy"] == "RS-PER"


@pytest.mark.slow
def test_classify_reads_a_big5_export_as_big5(tmp_path):
    source = tmp_path / "taiwan_big5.csv"
    rows = [("T1", "櫃檯服務員態度惡劣，愛答不理"), ("T2", "冷氣壞了一晚上沒修好，沒有熱水"),
            ("T3", "颱風導致航班取消，飯店拒絕退款")]
    pd.DataFrame(rows, columns=["id", "text"]).to_csv(source, index=False, encoding="big5")
    output = tmp_path / "out.jsonl"
    result = complaints("classify", "--input", str(source), "--output", str(output), "--lexicon")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [r["cause"] for r in records] == ["personnel", "technology", "random"]
    assert not (tmp_path / "out.invalid.csv").exists()

    told = complaints("classify", "--input", str(source), "--output", str(output), "--lexicon", "--encoding", "gb18030")
    assert told.returncode == 0, told.stderr  # an explicit encoding is used as given
    assert [json.loads(line)["cause"] for line in output.read_text(encoding="utf-8").splitlines()] != \
        ["personnel", "technology", "random"]


@pytest.mark.slow
def test_classify_reads_every_sheet_of_a_workbook_or_the_one_named(tmp_path):
    source = tmp_path / "export.xlsx"
    with pd.ExcelWriter(source) as writer:
        pd.DataFrame({"id": [f"O{i}" for i in range(15)], "text": ["前台服务员态度很差"] * 15}).to_excel(
            writer, sheet_name="十月", index=False)
        pd.DataFrame({"id": [f"N{i}" for i in range(10)], "text": ["空调坏了没人修"] * 10}).to_excel(
            writer, sheet_name="十一月", index=False)
    output = tmp_path / "out.csv"
    result = complaints("classify", "--input", str(source), "--output", str(output), "--lexicon")
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(output, encoding="utf-8-sig")) == 25
    result = complaints("classify", "--input", str(source), "--output", str(output), "--lexicon", "--sheet", "十一月")
    assert result.returncode == 0, result.stderr
    assert pd.read_csv(output, encoding="utf-8-sig")["id"].tolist() == [f"N{i}" for i in range(10)]


@pytest.mark.slow
def test_classify_text_prints_cause_remedy_and_masks_pii():
    result = complaints("classify-text", "快递员态度很差还骂人，我的电话13912345678")
    assert result.returncode == 0, result.stderr
    assert "13912345678" not in result.stdout and "[手机号]" in result.stdout
    assert "cause:" in result.stdout and "remedy:" in result.stdout and "queue:" in result.stdout


@pytest.mark.slow
def test_errors_are_one_clear_line_and_a_non_zero_exit(tmp_path):
    result = complaints("classify", "--input", str(tmp_path / "missing.csv"), "--output", str(tmp_path / "o.csv"))
    assert result.returncode == 1
    assert "missing.csv: no such file" in result.stderr
    assert "Traceback" not in result.stderr

    broken = tmp_path / "model"
    broken.mkdir()
    (broken / "model.joblib").write_bytes(b"not a model")
    (broken / "metadata.json").write_text('{"sha256": "0000"}', encoding="utf-8")
    result = complaints("classify-text", "服务差", "--model", str(broken))
    assert result.returncode == 1 and "not a trusted model" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_train_and_evaluate_on_a_company_label_set(tmp_path):
    rows = [("宽带断网三天了", "网络"), ("信号很差打不了电话", "网络"), ("上网速度太慢", "网络"),
            ("手机没有信号", "网络"), ("光纤老是断", "网络"),
            ("多扣了二十元话费", "费用"), ("套餐费用不对", "费用"), ("账单金额有误", "费用"),
            ("莫名其妙扣费", "费用"), ("乱收月租费", "费用")] * 2
    data = tmp_path / "labels.xlsx"
    pd.DataFrame(rows, columns=["内容", "类别"]).to_excel(data, index=False)
    out = tmp_path / "company-model"
    result = complaints("train", "--data", str(data), "--text-column", "内容", "--label-column", "类别",
                        "--output", str(out), "--folds", "3")
    assert result.returncode == 0, result.stderr
    assert "macro-F1" in result.stdout and "confusion matrix" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics["per_class"]) == {"网络", "费用"}
    trusted = tmp_path / "settings.toml"  # a model one trained oneself is trusted explicitly
    sha = json.loads((out / "metadata.json").read_text(encoding="utf-8"))["sha256"]
    assert sha in result.stdout
    trusted.write_text(f'trusted_models = ["{sha}"]\n', encoding="utf-8")
    result = complaints("evaluate", "--data", str(data), "--model", str(out), "--text-column", "内容",
                        "--label-column", "类别", "--config", str(trusted))
    assert result.returncode == 0, result.stderr
    assert "precision" in result.stdout
