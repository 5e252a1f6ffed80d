"""What every ``carousel`` command shares: the console, one plain line for a user's mistake, the run summary.

A bad value can surface late (a backend that cannot run the chosen cell says so at the first
step), so every ``ValueError``/``TypeError`` of the library is reported as one line and an exit
code, never a traceback; ``CAROUSEL_DEBUG=1`` re-raises. So is a file-system error (a read-only run
directory, a file where a folder is expected): one line naming the path. Exit codes: 2 for a usage
mistake or an unusable path, 1 for a bad checkpoint, a run stopped by non-finite steps or another
operating-system error, 130 for an interrupted run, 0 for a run that is already finished.
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
from ..train import CheckpointError, NonFiniteError, RunFinished, TrainConfig, get_task, latest_checkpoint, task_names
from ..train.config import option_fields
from ..train.run_status import summary_labels


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
    except RunFinished as err:
        if is_main_process():
            console().print(str(err), markup=False)
        raise typer.Exit(0)
    except (ValueError, TypeError, NonFiniteError, OSError) as err:
        if os.environ.get("CAROUSEL_DEBUG"):
            raise
        if isinstance(err, CheckpointError):
            fail(f"checkpoint problem: {err}", 1)
        elif isinstance(err, NonFiniteError):
            fail(str(err), 1)
        elif isinstance(err, OSError):
            fail(os_message(err), 2 if isinstance(err, PATH_ERRORS) else 1)
        else:
            fail(str(err), 2)
    except (MemoryError, RuntimeError) as err:  # after NonFiniteError (a RuntimeError) above
        if os.environ.get("CAROUSEL_DEBUG") or not (isinstance(err, MemoryError) or "can't allocate memory" in str(err)
                                                     or "out of memory" in str(err)):
            raise
        fail(f"not enough memory for these sizes ({str(err).split('. ', 1)[-1].strip() or 'MemoryError'}); "
             "expected sizes that fit this machine: try a smaller --hidden, --batch-size, or the task's --length or --nodes", 2)


PATH_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)


def os_message(err: OSError) -> str:
    """One line for a file-system error: what went wrong with which path (``permission denied: runs/x/config.json``)."""
    if isinstance(err, FileNotFoundError):
        return f"file not found: {err.filename}" if err.filename else str(err)
    where = err.filename if err.filename is not None else ""
    what = {PermissionError: "permission denied (the folder or file is read-only for this user)",
            IsADirectoryError: "expected a file, got a directory", NotADirectoryError: "expected a directory, got a file",
            FileExistsError: "already exists"}.get(type(err), err.strerror or type(err).__name__)
    return f"{what}: {where}" if where else f"{what} ({err})"


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
    said_loss, said_best = summary_labels(summary["run_dir"])  # units: a charlm loss is in nats, its monitor in bits
    parts = [f"{summary['steps']} steps", f"{said_loss} {loss:.5g}" if loss is not None else f"{said_loss} n/a"]
    if best is not None:
        parts.append(f"{said_best} {best:.5g}")
    if summary.get("skipped"):
        parts.append(f"{summary['skipped']} non-finite steps skipped")
    out.print(", ".join(parts))
    if summary.get("stopped"):
        out.print(f"stopped early: {summary['stopped']}")
    out.print(f"run directory: {summary['run_dir']}" + (f"  (plot: {summary['plot']})" if summary.get("plot") else ""))


def interrupted(run_dir: str | Path | None) -> None:
    """Say where an interrupted run stands and how to continue it, and exit with 130."""
    run = None if run_dir is None else Path(run_dir)
    if run is None or not (run / "config.json").is_file():
        message = "interrupted before training started; nothing was saved"
        if run is not None and run.is_dir() and not any(run.iterdir()):
            run.rmdir()  # the empty run directory reserved for it
    else:
        last = latest_checkpoint(run / "checkpoints")
        where = f"the last checkpoint is {last}" if last else "no checkpoint was written yet (resume starts again from step 0)"
        message = f"interrupted; {where}. Continue with: carousel resume {run}"
    if is_main_process():
        console(stderr=True).print(message, markup=False)
    raise typer.Exit(130)


def remove_if_empty(path: Path) -> None:
    """Remove the run directory reserved by ``new_run_dir`` when a failed start left it empty."""
    try:
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    except OSError:
        pass
