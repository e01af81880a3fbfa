"""How much does an industry the model never saw cost? Leave one review domain out.

    python -m bench.domain_shift

The real texts come from three domains (book shop, hotel, laptop), told apart here by their vocabulary.
For each domain, the default recipe is trained on the training rows of the other two (plus every synthetic
row) and scored on that domain's held-out rows; the same rows scored by the model trained on all training
rows give the in-domain reference. The gap estimates what a new industry loses before its own labels.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from bench.compare_models import scores
from pipeline.model.classify import CauseModel, ReviewPolicy, classify_texts
from pipeline.config import DATA_DIR
from pipeline.model.cause_model import build_pipeline
from pipeline.labels import CAUSES
from pipeline.training.evaluation import read_labelled

DOMAIN_WORDS = {
    "book": ("书", "作者", "内容", "读", "文字", "故事", "出版", "印刷"),
    "hotel": ("酒店", "房间", "宾馆", "前台", "入住", "早餐", "服务员", "携程"),
    "laptop": ("电脑", "笔记本", "系统", "屏", "键盘", "内存", "驱动", "散热", "电池", "硬盘"),
}


def domain_of(text: str) -> str:
    counts = {domain: sum(text.count(w) for w in words) for domain, words in DOMAIN_WORDS.items()}
    best = max(counts, key=counts.get)
    tied = sum(count == counts[best] for count in counts.values()) > 1
    return "" if counts[best] == 0 or tied else best


def cause_scores(model_pipeline, rows: pd.DataFrame) -> dict:
    model = CauseModel(model_pipeline, version="shift", policy=ReviewPolicy(), kind="model")
    predicted = classify_texts(model, rows["text"].tolist())["cause"].to_numpy()
    return scores(rows["cause"].to_numpy(), predicted, sorted(set(rows["cause"])))


def main() -> None:
    train = read_labelled(DATA_DIR / "training" / "train.csv")
    heldout = read_labelled(DATA_DIR / "training" / "heldout.csv")
    real = train[train["source"] != "synthetic"].assign(domain=lambda f: f["text"].map(domain_of))
    synthetic = train[train["source"] == "synthetic"]
    heldout = heldout.assign(domain=heldout["text"].map(domain_of))
    everything = build_pipeline().fit(train["text"].tolist(), train["cause"].to_numpy())
    print("| left-out domain | held-out complaints | trained on | six-cause macro-F1 | accuracy on complaints |")
    print("|---|---|---|---|---|")
    for domain in DOMAIN_WORDS:
        test = heldout[heldout["domain"] == domain]
        others = pd.concat([real[(real["domain"] != domain) & (real["domain"] != "")], synthetic])
        without = build_pipeline().fit(others["text"].tolist(), others["cause"].to_numpy())
        n_complaints = int(np.isin(test["cause"], CAUSES).sum())
        for label, fitted in ((f"all domains ({len(train)} rows)", everything),
                              (f"other two + synthetic ({len(others)} rows)", without)):
            result = cause_scores(fitted, test)
            print(f"| {domain} | {n_complaints} | {label} | {result['causes_macro_f1']:.3f} | "
                  f"{result['causes_accuracy']:.3f} |")


if __name__ == "__main__":
    main()
