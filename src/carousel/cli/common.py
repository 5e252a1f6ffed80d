"""What every ``carousel`` command shares: the console, one plain line for a user's mistake, the run summary.

A bad value can surface late (a backend that cannot run the chosen cell says so at the first
step), so every ``ValueError``/``TypeError`` of the library is reported as one line and an exit
code, never a traceback; ``CAROUSEL_DEBUG=1`` re-raises. Exit codes: 2 for a usage mistake, 1 for
a bad checkpoint or a run stopped by non-finite steps, 130 for an interrupted run.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import typer
from rich.console import Console
from rich.markup import escape

from ..cells import cell_names
from ..train import CheckpointError, NonFiniteError, TrainConfig, get_task, latest_checkpoint, task_names
from ..train.config import option_fields


class UsageError(ValueError):
    """A mistake on the command line."""


def is_main_process() -> bool:
    """Whether this process prints (rank 0 under torchrun, always otherwise)."""
    return os.environ.get("RANK", "0") == "0"


def console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the library's errors about a user's input into one plain message and an exit code (see the module docstring)."""
    try:
        yield
    except (ValueError, TypeError, NonFiniteError, FileNotFoundError) as err:
        if os.environ.get("CAROUSEL_DEBUG"):
            raise
        if isinstance(err, CheckpointError):
            fail(f"checkpoint problem: {err}", 1)
        elif isinstance(err, NonFiniteError):
            fail(str(err), 1)
        elif isinstance(err, FileNotFoundError):
            fail(f"file not found: {err.filename}", 2)
        else:
            fail(str(err), 2)


def fail(message: str, code: int = 2) -> None:
    """Print ``Error: message`` on standard error (rank 0 only) and exit with ``code``."""
    if is_main_process():
        console(stderr=True).print(f"[bold red]Error:[/] {escape(message)}")
    raise typer.Exit(code)


def overview() -> str:
    """Text for ``carousel --help``: every task, cell and option."""

    def flags(cls: type) -> str:
        return " ".join(f"--{n.replace('_', '-')}" for n in option_fields(cls))

    lines = ["Tasks (carousel train TASK; carousel train TASK --help for defaults and meanings):"]
    for name in task_names():
        cls = get_task(name)
        lines.append(f"  {name}: {cls.summary()}  options: {flags(cls.Options)}")
    lines.append(f"Cells (--cell): {', '.join(cell_names())}")
    lines.append(f"Trainer options (every task): {flags(TrainConfig)}")
    lines.append("Run flags: --config run.toml, --run-dir DIR")
    return "\n\n".join(lines)


def print_summary(summary: dict[str, Any]) -> None:
    """The end of a run in a few lines: steps, losses, why it stopped, where it is."""
    if not is_main_process():
        return
    out = console()
    loss = summary.get("loss")
    best = summary.get("best")
    parts = [f"{summary['steps']} steps", f"last training loss {loss:.5g}" if loss is not None else "last training loss n/a"]
    if best is not None:
        parts.append(f"best validation {best:.5g}")
    if summary.get("skipped"):
        parts.append(f"{summary['skipped']} non-finite steps skipped")
    out.print(", ".join(parts))
    if summary.get("stopped"):
        out.print(f"stopped early: {summary['stopped']}")
    out.print(f"run directory: {summary['run_dir']}" + (f"  (plot: {summary['plot']})" if summary.get("plot") else ""))


def interrupted(run_dir: str) -> None:
    """Say where an interrupted run can be continued from, and exit with 130."""
    last = latest_checkpoint(Path(run_dir) / "checkpoints")
    where = f"the last checkpoint is {last}" if last else "no checkpoint was written yet"
    if is_main_process():
        console(stderr=True).print(f"interrupted; {where}. Continue with: carousel resume {run_dir}")
    raise typer.Exit(130)
