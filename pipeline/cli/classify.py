"""``complaints classify`` (a file) and ``complaints classify-text`` (one complaint), without the store."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.cli.options import (ColumnOption, ConfigOption, EncodingOption, SheetOption, console, err_console,
                                  settings_from_flags)

# The `classify` output contract: these columns, then one p_<label> column per model label.
CLASSIFY_COLUMNS = ["id", "cause", "confidence", "needs_review", "secondary_causes", "explanation", "remedy", "queue",
                    "unfamiliar"]


def classify(input: Path = typer.Option(..., "--input", help="file with columns id,text (any supported format)"),
             output: Path = typer.Option(..., "--output", help="result file: .csv, .jsonl or .xlsx"),
             model: Optional[Path] = typer.Option(None, "--model", help="model.joblib or its folder"),
             lexicon: bool = typer.Option(False, "--lexicon", help="use the transparent lexicon classifier"),
             encoding: Optional[str] = EncodingOption, sheet: Optional[str] = SheetOption,
             column: Optional[list[str]] = ColumnOption,
             config: Optional[Path] = ConfigOption) -> None:
    """Classify a file: one output row per valid input row; invalid rows are reported, never dropped silently."""
    import pandas as pd

    from pipeline.model.classify import load_model
    from pipeline.ingest.sources import iter_raw_chunks
    from pipeline.nightly.batch import FileBatchRun
    from pipeline.nightly.progress import RunProgress
    from pipeline.nightly.summary import append_quarantine_file
    from pipeline.delivery.spreadsheet import write_table

    settings = settings_from_flags(config, column, classifier="lexicon" if lexicon else None, encoding=encoding,
                                   sheet=sheet)
    cause_model = load_model(settings, model)
    with rows_progress_bar() as progress_bar:
        task_id = progress_bar.add_task("classifying", total=None)
        progress = RunProgress(total=None, listeners=[lambda p: progress_bar.update(task_id, completed=p.done)])
        with FileBatchRun(settings, cause_model, progress=progress) as batches:
            batches.run(iter_raw_chunks(str(input), chunk_size=settings.batch_size, encoding=settings.encoding,
                                        sheet=settings.sheet))
    results, quarantined, rows_read = batches.results, batches.quarantined, batches.counts.rows_read
    frame = pd.concat(results, ignore_index=True) if results else pd.DataFrame()
    columns = CLASSIFY_COLUMNS + [c for c in frame.columns if c.startswith("p_")]
    frame = frame[columns] if len(frame) else pd.DataFrame(
        columns=CLASSIFY_COLUMNS + [f"p_{label}" for label in cause_model.labels])
    write_table(frame, output)
    console.print(f"classified {len(frame)} rows with {cause_model.version} → {output}")
    report = output.with_name(output.stem + ".invalid.csv")
    report.unlink(missing_ok=True)
    if quarantined:
        append_quarantine_file(report, quarantined)
        err_console.print(escape(f"{len(quarantined)} invalid rows not classified, listed in {report}:"))
        for row in quarantined[:10]:
            err_console.print(escape("  " + row.message()))
    batches.tally.check(rows_read, settings, report)


def rows_progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed} rows"),
                    TimeElapsedColumn(), console=err_console, transient=True)


def classify_text(text: str = typer.Argument(..., help="one complaint"),
                  model: Optional[Path] = typer.Option(None, "--model"),
                  lexicon: bool = typer.Option(False, "--lexicon"),
                  config: Optional[Path] = ConfigOption) -> None:
    """Classify one complaint and print the result readably."""
    from pipeline.model.classify import classify_texts, load_model
    from pipeline.text.normalise import mask_pii
    from pipeline.routing.router import Router
    from pipeline.labels import CAUSE_NAMES_ZH

    settings = settings_from_flags(config, classifier="lexicon" if lexicon else None)
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
    probabilities = {c.removeprefix("p_"): row[c] for c in row.index if c.startswith("p_")}
    console.print("probabilities: " + "  ".join(
        f"{label} {p:.2f}" for label, p in sorted(probabilities.items(), key=lambda item: -item[1])))
    console.print(f"remedy: {decision.remedy.code} {decision.remedy.title_zh} / {decision.remedy.title_en}")
    console.print(f"queue: {decision.queue}, priority {decision.priority}, SLA {decision.sla_hours:g} h")
    for step in decision.remedy.immediate:
        console.print(f"  • {step}")
