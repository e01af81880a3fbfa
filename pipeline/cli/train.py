"""``complaints train`` (from scratch, or adapting the shipped model) and ``complaints evaluate``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from pipeline.cli.options import ConfigOption, console, err_console, settings_from_flags


def train(data: list[Path] = typer.Option(..., "--data", help="labelled CSV/XLSX (labels in English or Chinese); "
                                                                 "with --base, repeat it for every round of labels"),
          text_column: str = typer.Option("text", "--text-column"),
          label_column: str = typer.Option("cause", "--label-column"),
          output: Path = typer.Option(Path("models/custom"), "--output", help="artifact folder"),
          base: Optional[str] = typer.Option(None, "--base",
                                             help="'default' (the shipped model) or a model folder: learn the company's "
                                                  "industry on top of it from a few hundred labels"),
          company_share: float = typer.Option(0.3, "--company-share", min=0.05, max=0.95,
                                              help="with --base: share of the training weight the file's rows carry"),
          folds: Optional[int] = typer.Option(None, "--folds", min=2, help="cross-validation folds (5; 3 with --base)"),
          features: str = typer.Option("union+lexicon", "--features", help="words | chars | union | union+lexicon"),
          estimator: str = typer.Option("logreg", "--estimator", help="logreg | two-stage | svm | cnb"),
          engine: Optional[str] = typer.Option(None, "--engine", help="jieba | rjieba (default: the settings' "
                                                                      "segmenter_engine, the one classify uses)"),
          review_precision: Optional[float] = typer.Option(None, "--review-precision", min=0.0, max=1.0,
                                                           help="precision the auto-routed predictions must reach on "
                                                                "cross-validation (0.8; 0.85 with --base); the rest go to review")) -> None:
    """Train on any labelled file with any label set, or (--base) adapt the shipped model to a company's labels;
    cross-validate; save a versioned artifact with its model card."""
    from pipeline.cli.training_progress import TrainingDisplay
    from pipeline.training.evaluation import FINAL_FIT, TrainingDataError, read_labelled, train_model

    if base is not None:
        train_adapted(list(data), base, output, text_column, label_column, company_share, folds or 3,
                      review_precision or 0.85)
        return
    if len(data) > 1:
        raise TrainingDataError("one --data file when training from scratch (several are taken with --base)")
    data_file, folds = data[0], folds or 5
    engine = engine or settings_from_flags(None).segmenter_engine  # trained as it will run: classify segments with the setting
    frame = read_labelled(data_file, text_column, label_column)
    console.print(f"training on {len(frame)} rows, labels: {frame[label_column].value_counts().to_dict()}")
    with TrainingDisplay(err_console, console, final_fit=FINAL_FIT) as progress:
        metadata = train_model(frame, text_column=text_column, label_column=label_column, out_dir=output,
                               folds=folds, feature_set=features, estimator=estimator, engine=engine,
                               name=output.name, data_source=str(data_file), review_precision=review_precision or 0.8,
                               progress=progress)
    print_metrics(metadata["cross_validation"], f"{folds}-fold cross-validation")
    (output / "metrics.json").write_text(json.dumps(metadata["cross_validation"], ensure_ascii=False, indent=2),
                                         encoding="utf-8")
    console.print(f"model {metadata['version']} → {output / 'model.joblib'} (metrics in {output / 'metrics.json'})")
    console.print(f"to use it, trust it in your settings file: trusted_models = [\"{metadata['sha256']}\"]")


def train_adapted(data: list[Path], base: str, output: Path, text_column: str, label_column: str,
                  company_share: float, folds: int, review_precision: float) -> None:
    from pipeline.cli.training_progress import TrainingDisplay
    from pipeline.training.adapt import train_adapted as adapt_and_save
    from pipeline.training.evaluation import FINAL_FIT
    from pipeline.config import MODELS_DIR

    base_dir = MODELS_DIR / "default" if base == "default" else Path(base)
    with TrainingDisplay(err_console, console, final_fit=FINAL_FIT) as progress:
        metadata = adapt_and_save(data, base_dir, output, text_column=text_column, label_column=label_column,
                                  company_share=company_share, folds=folds, review_precision=review_precision,
                                  progress=progress)
    adaptation = metadata["adaptation"]
    if "cross_validation" in adaptation:
        print_metrics(adaptation["cross_validation"], f"the company's {adaptation['company_rows']} rows, "
                                                      f"{folds}-fold cross-validation")
    console.print(f"model {metadata['version']} → {output / 'model.joblib'}, model card {output / 'MODEL_CARD.md'}")
    console.print(f"to use it, in your settings file: model_path = \"{output / 'model.joblib'}\" and "
                  f"trusted_models = [\"{metadata['sha256']}\"]")


def print_metrics(report: dict, title: str) -> None:
    import pandas as pd

    table = Table(title=f"{title}: accuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}")
    for column in ("label", "precision", "recall", "f1", "support"):
        table.add_column(column)
    for label, scores in report["per_class"].items():
        table.add_row(label, f"{scores['precision']:.3f}", f"{scores['recall']:.3f}", f"{scores['f1']:.3f}",
                      str(scores["support"]))
    console.print(table)
    labels = report["confusion_matrix"]["labels"]
    confusion = pd.DataFrame(report["confusion_matrix"]["matrix"], index=labels, columns=labels)
    console.print("confusion matrix (rows = true, columns = predicted):")
    console.print(confusion.to_string())
    if "causes_only" in report:
        causes_only = report["causes_only"]
        console.print(f"six causes only ({causes_only['rows']} rows): macro-F1 {causes_only['macro_f1']:.3f} "
                      f"[{causes_only['macro_f1_ci95'][0]:.3f}, {causes_only['macro_f1_ci95'][1]:.3f}], "
                      f"accuracy {causes_only['accuracy']:.3f}")
    review = report.get("review", {})
    if review.get("none_flagged_share") is not None:
        console.print(f"'none' texts flagged for review: {review['none_flagged_share']:.1%}")


def evaluate(data: Path = typer.Option(..., "--data", help="labelled CSV/XLSX"),
             model: Optional[Path] = typer.Option(None, "--model"),
             lexicon: bool = typer.Option(False, "--lexicon", help="evaluate the lexicon classifier"),
             text_column: str = typer.Option("text", "--text-column"),
             label_column: str = typer.Option("cause", "--label-column"),
             output: Optional[Path] = typer.Option(None, "--output", help="write the metrics as JSON"),
             config: Optional[Path] = ConfigOption) -> None:
    """Precision, recall, F1, confusion matrix and macro-F1 of any model on any labelled file."""
    from pipeline.model.classify import load_model
    from pipeline.training.evaluation import evaluate_model, read_labelled

    settings = settings_from_flags(config, classifier="lexicon" if lexicon else None)
    cause_model = load_model(settings, model)
    frame = read_labelled(data, text_column, label_column)
    report = evaluate_model(cause_model, frame, text_column=text_column, label_column=label_column)
    print_metrics(report, f"{cause_model.version} on {data.name} ({len(frame)} rows)")
    if output:
        output.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
