"""How good is a model in each industry? Scores it on our labelled dev sets and the held-out reviews.

    python -m bench.industries [--model models/default] [--json OUT]

Dev sets: real complaints from industries outside the training data (restaurants, banking, online-shop
chats, telecom work orders), labelled twice under LABELING.md and adjudicated (data/devsets/). Their texts
stay in the evaluation folder (COMPLAINTS_EVALUATION_DIR, default ../shared/evaluation) and are only ever
scored. Per industry: six-cause macro-F1 and accuracy on the complaints, macro-F1 over all seven labels,
and the routing view — share of complaints routed without review and how often those routes are right
(every auto-routed row counts, a non-complaint routed to a queue is wrong) — with 95% bootstrap intervals.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from pipeline.model.classify import CauseModel, classify_texts, load_trained_model
from pipeline.config import DATA_DIR, MODELS_DIR
from pipeline.training.devsets import load_dev_sets
from pipeline.model.cause_model import use_segmenter_engine
from pipeline.training.model_card import write_adapted_model_card, write_model_card
from pipeline.labels import CAUSES, NONE_LABEL
from pipeline.training.evaluation import bootstrap_interval, cause_macro_f1, read_labelled

LABELS = [*CAUSES, NONE_LABEL]


def industry_scores(y_true, decided: pd.DataFrame) -> dict:
    """The figures the product's bar is stated in, for one set of labelled rows."""
    y_true = np.asarray(y_true)
    y_pred = decided["cause"].to_numpy()
    auto = ~decided["needs_review"].to_numpy()
    complaints = np.isin(y_true, CAUSES)
    yt, yp = y_true[complaints], y_pred[complaints]
    right_when_auto = (y_pred == y_true)[auto]
    return {
        "rows": int(len(y_true)),
        "complaints": int(complaints.sum()),
        "causes_macro_f1": float(cause_macro_f1(yt, yp)),
        "causes_macro_f1_ci95": bootstrap_interval(yt, yp, cause_macro_f1),
        "causes_accuracy": float(accuracy_score(yt, yp)),
        "causes_accuracy_ci95": bootstrap_interval(yt, yp, accuracy_score),
        "macro_f1_7": float(f1_score(y_true, y_pred, labels=LABELS, average="macro", zero_division=0)),
        "accuracy_7": float(accuracy_score(y_true, y_pred)),
        "auto_routed_rows": int(auto.sum()),
        "auto_routed_share_of_complaints": float((auto & complaints).sum() / max(complaints.sum(), 1)),
        "auto_routed_accuracy": float(right_when_auto.mean()) if auto.any() else None,
        "auto_routed_accuracy_ci95": (bootstrap_interval(right_when_auto, right_when_auto, lambda t, _: t.mean())
                                      if auto.sum() > 1 else None),
        "none_flagged_share": float(decided["needs_review"].to_numpy()[~complaints].mean()) if (~complaints).any() else None,
    }


def evaluation_sets() -> dict[str, pd.DataFrame]:
    dev = load_dev_sets()
    sets = {industry: rows.reset_index(drop=True) for industry, rows in dev.groupby("industry", sort=True)}
    sets["reviews (held-out)"] = read_labelled(DATA_DIR / "training" / "heldout.csv")
    return sets


def score_model(model: CauseModel, sets: dict[str, pd.DataFrame]) -> dict[str, dict]:
    """Each set classified as one batch (as a run of that industry would be); the dev industries together
    are the union of their sets' decisions."""
    results, decisions = {}, {}
    for name, rows in sets.items():
        decisions[name] = classify_texts(model, rows["text"].tolist())
        results[name] = industry_scores(rows["cause"].to_numpy(), decisions[name])
    unseen = [name for name in sets if name != "reviews (held-out)"]
    if unseen:
        results["all dev industries"] = industry_scores(
            np.concatenate([sets[name]["cause"].to_numpy() for name in unseen]),
            pd.concat([decisions[name] for name in unseen], ignore_index=True))
    return results


def _ci(pair) -> str:
    return f"[{pair[0]:.2f}, {pair[1]:.2f}]" if pair else ""


def markdown_table(results: dict[str, dict]) -> str:
    lines = ["| set | rows | complaints | six-cause macro-F1 | accuracy (complaints) | 7-label macro-F1 | "
             "7-label accuracy | auto-routed (share of complaints) | auto-routed accuracy | non-complaints to review |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        auto_acc = (f"{r['auto_routed_accuracy']:.3f} {_ci(r['auto_routed_accuracy_ci95'])}"
                    if r["auto_routed_accuracy"] is not None else "–")
        none_share = f"{r['none_flagged_share']:.0%}" if r["none_flagged_share"] is not None else "–"
        lines.append(f"| {name} | {r['rows']} | {r['complaints']} | {r['causes_macro_f1']:.3f} {_ci(r['causes_macro_f1_ci95'])} | "
                     f"{r['causes_accuracy']:.3f} {_ci(r['causes_accuracy_ci95'])} | {r['macro_f1_7']:.3f} | "
                     f"{r['accuracy_7']:.3f} | "
                     f"{r['auto_routed_share_of_complaints']:.0%} | {auto_acc} | {none_share} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=str(MODELS_DIR / "default"))
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--engine", choices=("jieba", "rjieba"), help="segment with this engine instead of the trained one")
    parser.add_argument("--write", action="store_true",
                        help="store the figures as the model's industry_metrics.json and rewrite its model card")
    args = parser.parse_args()
    model = load_trained_model(args.model)
    if args.engine and use_segmenter_engine(model.estimator, args.engine):
        model.version = f"{model.version}+{args.engine}"
    results = score_model(model, evaluation_sets())
    print(f"model {model.version}\n")
    print(markdown_table(results))
    figures = {"model": model.version, "industries": results}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(figures, handle, ensure_ascii=False, indent=2)
    if args.write:
        model_dir = Path(args.model).parent if Path(args.model).is_file() else Path(args.model)
        (model_dir / "industry_metrics.json").write_text(json.dumps(figures, ensure_ascii=False, indent=2),
                                                         encoding="utf-8")
        adaptation = model.metadata.get("adaptation")
        card = (write_adapted_model_card(model_dir, MODELS_DIR / "default") if adaptation
                else write_model_card(model_dir))
        print(f"\n→ {model_dir / 'industry_metrics.json'}, {card}")


if __name__ == "__main__":
    main()
