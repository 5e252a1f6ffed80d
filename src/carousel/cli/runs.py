"""``carousel runs [DIR]``: the run directories in DIR (default ``runs/``), newest first, with where each stands."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..train.run_status import ACTIVE_SECONDS, age_text, list_runs
from . import app
from .common import console, fail

DEFAULT_ROOT = "runs"


@app.command()
def runs(
    folder: Optional[str] = typer.Argument(None, metavar="DIR", help="folder of run directories, or one run directory (default: runs/)"),
) -> None:
    """List run directories: task, status (finished, interrupted, failed, or running? when it wrote
    something in the last few minutes), steps, best validation metric and the age of its last write."""
    root = Path(folder or DEFAULT_ROOT)
    if folder is None and not root.exists():
        console().print(f"no runs yet: {DEFAULT_ROOT}/ does not exist here; start one with `carousel train TASK` (or name a folder: carousel runs DIR)", markup=False)
        return
    try:
        found, skipped = list_runs(root)
    except ValueError as err:
        fail(str(err), 2)
    out = console()
    if not found:
        out.print(f"no run directories in {root}; start one with `carousel train TASK --run-dir DIR`", markup=False)
        if skipped:
            out.print(f"skipped {len(skipped)}: " + "; ".join(skipped), markup=False, style="dim")
        return
    now = time.time()
    table = Table(title=f"{len(found)} run{'s' if len(found) != 1 else ''} in {root}", title_justify="left")
    for col, justify in (("run", "left"), ("task", "left"), ("status", "left"), ("steps", "right"),
                         ("best", "right"), ("last write", "right"), ("why", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    colours = {"finished": "green", "interrupted": "yellow", "failed": "red", "running?": "cyan"}
    for r in found:
        table.add_row(escape(r.path.name), escape(r.task), f"[{colours.get(r.status, 'white')}]{escape(r.status)}[/]",
                      r.steps_text(), escape(r.best_text()), age_text(now - r.updated), escape(r.detail))
    out.print(table)
    if skipped:
        out.print(f"skipped {len(skipped)}: " + "; ".join(skipped), markup=False, style="dim")
    if any(r.status == "running?" for r in found):
        out.print(f"running? = wrote a file in the last {ACTIVE_SECONDS / 60:g} minutes (no process is checked)", style="dim")
