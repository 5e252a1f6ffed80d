"""``carousel resume RUN_DIR``: continue a run from its latest checkpoint, exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..train import latest_checkpoint, resume_run
from . import app
from .common import UsageError, console, interrupted, is_main_process, print_summary, user_errors


@app.command()
def resume(
    run_dir: str = typer.Argument(..., help="the run directory (holds config.json and checkpoints/)"),
    steps: Optional[int] = typer.Option(None, help="train to this many steps in total instead of the recorded number"),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="show the progress bar"),
) -> None:
    """Continue a run from its latest checkpoint, as if it had never stopped."""
    with user_errors():
        if steps is not None and steps < 1:
            raise UsageError(f"expected --steps to be an integer >= 1 (the run's total), got {steps}")
        fresh = (Path(run_dir) / "config.json").is_file() and latest_checkpoint(Path(run_dir) / "checkpoints") is None
        try:
            summary = resume_run(run_dir, steps=steps, progress=progress)
        except KeyboardInterrupt:
            interrupted(run_dir)
        if fresh and is_main_process():
            console().print("the run had no checkpoint yet; it was trained again from step 0", markup=False)
        print_summary(summary)
