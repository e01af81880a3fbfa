"""A fast start of the command line loses nothing: same model, same names, same answers as before."""
import io
import re
import subprocess
import sys

import joblib
import numpy as np
import pandas as pd
import pytest

from pipeline.config import MODELS_DIR, PROJECT_ROOT, load_settings
from pipeline.model.cause_model import FeatureNames
from pipeline.model.classify import CauseModel, classify_texts, load_model
from pipeline.model.registry import load_joblib_bytes

TEXTS = ["快递员态度很差还骂人，我的电话13912345678", "空调坏了一晚上没修好，没有热水",
         "台风导致航班取消，酒店拒绝退款", "排队两个小时都没人管，流程太乱了", "东西很好，物流也快"]


@pytest.fixture(scope="module")
def shipped_model() -> CauseModel:
    return load_model(load_settings(None))


def complaints(*args, cwd=PROJECT_ROOT):
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.slow
def test_the_fast_model_load_gives_joblibs_model(shipped_model):
    reference = joblib.load(MODELS_DIR / "default" / "model.joblib")
    assert_same_object(shipped_model.estimator, reference)
    texts = pd.read_csv(PROJECT_ROOT / "data" / "samples" / "complaints_sample.csv")["text"].tolist()
    assert np.array_equal(shipped_model.estimator.predict_proba(texts), reference.predict_proba(texts))


def assert_same_object(loaded, reference, path="model"):
    assert type(loaded) is type(reference), path
    if isinstance(reference, np.ndarray):
        assert loaded.dtype == reference.dtype and loaded.shape == reference.shape, path
        assert np.array_equal(loaded, reference) if loaded.dtype != object else loaded.tolist() == reference.tolist(), path
    elif isinstance(reference, dict):
        assert list(loaded) == list(reference), path
        for key in reference:
            assert_same_object(loaded[key], reference[key], f"{path}[{key!r}]")
    elif isinstance(reference, (list, tuple)):
        assert len(loaded) == len(reference), path
        for index, (a, b) in enumerate(zip(loaded, reference)):
            assert_same_object(a, b, f"{path}[{index}]")
    elif hasattr(reference, "__dict__") and not callable(reference) or hasattr(reference, "get_params"):
        assert_same_object(vars(loaded), vars(reference), f"{path}.")
    else:
        assert loaded == reference, path


def test_a_file_the_fast_load_cannot_take_is_loaded_by_joblib():
    # RandomState's state holds an array that it needs while being unpickled: the fast path cannot serve it
    value = {"state": np.random.RandomState(7), "weights": np.arange(6.0).reshape(2, 3), "names": np.array(["a", None])}
    for compress in (0, 3):
        buffer = io.BytesIO()
        joblib.dump(value, buffer, compress=compress)
        loaded = load_joblib_bytes(buffer.getvalue())
        assert loaded["state"].randint(1000) == np.random.RandomState(7).randint(1000)
        assert np.array_equal(loaded["weights"], value["weights"]) and loaded["names"].tolist() == ["a", None]


@pytest.mark.slow
def test_feature_names_are_the_vectorisers_own(shipped_model):
    names = FeatureNames(shipped_model.estimator)
    expected = []
    for name, block in shipped_model.estimator.named_steps["features"].transformer_list:
        if name == "words":
            expected.extend(block.named_steps["tfidf"].get_feature_names_out())
        elif name == "chars":
            expected.extend(f"「{c}」" for c in block.get_feature_names_out())
        else:
            expected.extend(block.get_feature_names_out())
    assert [names[column] for column in range(len(expected))] == list(expected)


@pytest.mark.slow
def test_classify_text_says_what_classify_writes_for_the_same_text(tmp_path, shipped_model):
    source, output = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame({"id": [f"T{i}" for i in range(len(TEXTS))], "text": TEXTS}).to_csv(source, index=False)
    result = complaints("classify", "--input", str(source), "--output", str(output))
    assert result.returncode == 0, result.stderr
    written = pd.read_csv(output, encoding="utf-8-sig", keep_default_na=False)
    assert written["cause"].tolist() == classify_texts(shipped_model, TEXTS)["cause"].tolist()
    for text, row in zip(TEXTS, written.itertuples()):
        printed = complaints("classify-text", text)
        assert printed.returncode == 0, printed.stderr
        said = " ".join(printed.stdout.split())  # rich wraps long lines at the terminal width
        assert f"cause: {row.cause} " in said and f"confidence {row.confidence:.2f}" in said
        assert f"remedy: {row.remedy} " in said and f"queue: {row.queue}," in said
        assert f"why: {row.explanation or '(no decisive terms)'}" in said
        probabilities = dict(re.findall(r"(\w+) (\d\.\d\d)", said.split("probabilities:")[1].split("remedy:")[0]))
        assert probabilities == {c[2:]: f"{getattr(row, c):.2f}" for c in written.columns if c.startswith("p_")}
        assert ("needs review" in said) == bool(row.needs_review)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["classify-text", "classify"])
def test_classifying_starts_without_prefect_sqlalchemy_jieba_or_the_report(command, tmp_path):
    one_row = tmp_path / "one.csv"
    one_row.write_text("id,text\nc1,服务员态度很差\n", encoding="utf-8")
    arguments = (["classify-text", "服务员态度很差"] if command == "classify-text"
                 else ["classify", "--input", str(one_row), "--output", str(tmp_path / "out.csv")])
    script = (f"import sys; sys.argv = ['complaints', *{arguments!r}]\n"
              "from pipeline.cli import main\n"
              "try:\n    main()\nexcept SystemExit:\n    pass\n"
              "print('MODULES', sorted(sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    assert "cause:" in done.stdout or "classified 1 rows" in done.stdout
    modules = done.stdout.split("MODULES", 1)[1]
    heavy_modules = ["'prefect", "'jieba'", "'jinja2", "'openpyxl", "'flows", "'pipeline.reporting",
                     "'pipeline.training", "'sklearn.calibration"]
    if command == "classify-text":  # classify validates ids against the stored columns' lengths (storage.tables)
        heavy_modules += ["'sqlalchemy", "'pipeline.storage"]
    for heavy in heavy_modules:
        assert heavy not in modules, f"{heavy.strip(chr(39))} imported to classify one complaint"
