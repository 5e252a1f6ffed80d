"""``carousel resume RUN_DIR``: continue a run from its latest checkpoint, exactly."""

from __future__ import annotations

from typing import Optional

import typer

from ..train import resume_run
from . import app
from .common import interrupted, print_summary, user_errors


@app.command()
def resume(
    run_dir: str = typer.Argument(..., help="the run directory (holds config.json and checkpoints/)"),
    steps: Optional[int] = typer.Option(None, help="train to this many steps in total instead of the recorded number"),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="show the progress bar"),
) -> None:
    """Continue a run from its latest checkpoint, as if it had never stopped."""
    with user_errors():
        try:
            summary = resume_run(run_dir, steps=steps, progress=progress)
        except KeyboardInterrupt:
            interrupted(run_dir)
        print_summary(summary)
