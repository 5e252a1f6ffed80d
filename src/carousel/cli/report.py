"""``carousel report RUN_DIR [--out FILE]``: one self-contained HTML page for a run (``carousel.train.report``)."""

from __future__ import annotations

from typing import Optional

import typer

from ..train.report import write_report
from . import app
from .common import console, fail, user_errors


@app.command()
def report(
    run_dir: str = typer.Argument(..., help="a run directory (from carousel train or carousel demo)"),
    out: Optional[str] = typer.Option(None, "--out", help="where to write the page (default: RUN_DIR/report.html)"),
    compute: bool = typer.Option(True, "--compute/--no-compute", help="for a language model without samples or an "
                                 "activation page, draw them from the best checkpoint"),
) -> None:
    """Write one HTML page for a run: configuration, loss and metric curves, evaluations, diagnostics,
    samples and (for a language model) the activation page. The page needs no network."""
    with user_errors():
        try:
            path = write_report(run_dir, out, compute=compute)
        except (FileExistsError, NotADirectoryError) as err:  # a file where a folder of --out should be
            fail(f"cannot write the report: expected a folder for it, but {err.filename or out} is a file", 2)
        except OSError as err:
            fail(f"cannot write the report{' to ' + str(err.filename) if err.filename else ''}: {err.strerror or err}", 2)
    console().print(f"report: {path}", markup=False)
