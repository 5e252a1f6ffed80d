"""``carousel eval RUN_DIR``: score a run's best (or latest, or a named) checkpoint."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from ..train import evaluate_run, save_evaluation
from . import app
from .common import console, fail, os_message, user_errors


WIDE = 6  # metrics beyond which the table turns: one row per metric


@app.command(name="eval")
def eval_(
    run_dir: str = typer.Argument(..., help="the run directory (holds config.json and checkpoints/)"),
    split: Optional[str] = typer.Option(None, help="evaluation split (default: every split of the task)"),
    checkpoint: str = typer.Option("best", help="'best', 'latest' or a checkpoint file"),
) -> None:
    """Evaluate a run's checkpoint on the task's evaluation splits; writes RUN_DIR/eval.json."""
    with user_errors():
        result = evaluate_run(run_dir, split=split, checkpoint=checkpoint, save=False)
    table = Table(title=f"{run_dir}: checkpoint at step {result['step']} ({result['checkpoint']})", title_justify="left")
    metrics = sorted({k for values in result["splits"].values() for k in values})
    splits = result["splits"]
    cell = lambda s, m: f"{splits[s][m]:.6g}" if m in splits[s] else ""  # noqa: E731
    if len(metrics) <= WIDE:  # one row per split
        table.add_column("split")
        for m in metrics:
            table.add_column(m, justify="right")
        for s in splits:
            table.add_row(s, *(cell(s, m) for m in metrics))
    else:  # many metrics (genome has 15): one row per metric, so that the table fits a terminal
        table.add_column("metric")
        for s in splits:
            table.add_column(s, justify="right")
        for m in metrics:
            table.add_row(m, *(cell(s, m) for s in splits))
    console().print(table)
    try:  # printed first: a run directory that cannot be written to keeps the results on screen
        path = save_evaluation(run_dir, result)
    except OSError as err:
        fail(f"{os_message(err)}; the results above were not saved", 2)
    console().print(f"written to {path}", markup=False)
