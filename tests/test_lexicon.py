import numpy as np
import pytest

from pipeline.model.classify import classify_texts, load_lexicon_model
from pipeline.model.lexicon import LexiconClassifier, load_lexicon, match_terms


@pytest.fixture(scope="module")
def lexicon_model():
    return load_lexicon_model()


@pytest.mark.parametrize("text,cause", [
    ("前台服务员态度恶劣，还骂人", "personnel"),
    ("办个退款推来推去，手续繁琐，等了半天", "process"),
    ("APP一直闪退，付款失败", "technology"),
    ("霸王条款，乱收费，虚假宣传", "management"),
    ("是我自己填错了地址，没注意", "customer"),
    ("台风天航班取消，暴雨封路", "random"),
])
def test_clear_signals_give_the_cause(lexicon_model, text, cause):
    row = classify_texts(lexicon_model, [text]).iloc[0]
    assert row["cause"] == cause
    assert row["explanation"]  # the deciding terms are named


def test_no_evidence_means_none_and_review(lexicon_model):
    row = classify_texts(lexicon_model, ["这本书的故事情节很吸引人"]).iloc[0]
    assert row["cause"] == "none" and row["needs_review"]


def test_probabilities_sum_to_one_and_cover_every_label():
    classifier = LexiconClassifier().fit()
    probabilities = classifier.predict_proba(["服务态度差", "很好", "台风"])
    assert probabilities.shape == (3, 7)
    assert np.allclose(probabilities.sum(axis=1), 1.0)


def test_longer_term_absorbs_its_substring():
    lexicon = {"personnel": {"态度": 1.0, "态度差": 3.0}}
    assert match_terms("态度差", lexicon) == {"personnel": [("态度差", 3.0)]}


def test_unknown_cause_section_is_refused(tmp_path):
    path = tmp_path / "lexicon.toml"
    path.write_text('[weather]\n"下雨" = 3\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"unknown cause section.*weather"):
        load_lexicon(path)
