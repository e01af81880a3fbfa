"""`complaints train` in the terminal: a live line per training stage (units done, elapsed, time left) on
stderr when it is a terminal, and one line on stdout for each stage finished (so a log has them, and
stderr keeps errors alone). Training reports through its ``progress(stage, done, total)`` callback."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from pipeline.nightly.progress import format_duration


class _TimeLeft(ProgressColumn):
    """Time left at the stage's pace so far (rich's own estimate forgets samples older than 30 s, and a
    fold takes longer), or the stage's ``expected`` seconds before its first step is done."""

    def render(self, task: Task) -> Text:
        if task.finished or not task.total:
            return Text("")
        if task.completed:
            left = task.elapsed / task.completed * (task.total - task.completed)
        elif task.fields.get("expected"):
            left = max(task.fields["expected"] - (task.elapsed or 0.0), 0.0)
        else:
            return Text("time left: estimating", style="progress.remaining")
        return Text(f"about {format_duration(left)} left", style="progress.remaining")


class TrainingDisplay:
    """The ``progress`` callback for training functions; use as a context manager around the training.
    ``final_fit``: the stage fitting on all rows, expected to take as long as a cross-validation fold
    scaled to all rows (a fold of k fits on (k − 1)/k of them)."""

    def __init__(self, live: Console, log: Console, final_fit: str):
        self.log = log
        self.final_fit = final_fit
        self._bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), _TimeLeft(), console=live, transient=True,
                              disable=not live.is_terminal)
        self._tasks: dict[str, int] = {}
        self._finished: set[str] = set()
        self._final_fit_seconds: float | None = None  # expected, from the last stage with several steps

    def __enter__(self) -> TrainingDisplay:
        self._bars.start()
        return self

    def __exit__(self, *exc) -> None:
        self._bars.stop()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage in self._finished:
            return
        if stage not in self._tasks:
            expected = self._final_fit_seconds if stage == self.final_fit else None
            self._tasks[stage] = self._bars.add_task(escape(stage), total=total, expected=expected)
        task_id = self._tasks[stage]
        self._bars.update(task_id, completed=done)
        if done >= total:
            elapsed = next(task.elapsed for task in self._bars.tasks if task.id == task_id) or 0.0
            if total > 1:
                self._final_fit_seconds = elapsed / (total - 1)
            self._bars.remove_task(task_id)
            self._finished.add(stage)
            self.log.print(f"{escape(stage)}: {done}/{total} done in {format_duration(elapsed)}", highlight=False)
