"""Shared by ``carousel train | resume | eval``: option parsing from raw arguments, help, errors.

Task options depend on the task named on the command line, so ``carousel train`` reads its own
arguments: ``TASK`` first, then ``--name value``, ``--name=value``, ``--flag`` / ``--no-flag``,
where a name is a task option or a trainer option (``-`` and ``_`` alike).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import typer

BOOL_WORDS = ("true", "false", "yes", "no", "on", "off", "1", "0")
RUN_FLAGS = ("config", "run_dir")


class UsageError(ValueError):
    """A mistake on the command line."""


def is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn user mistakes into one plain message and an exit code, never a traceback.

    A bad value can surface late (a backend that cannot run the chosen cell says so at the first
    step), so every ValueError/TypeError is reported this way; ``CAROUSEL_DEBUG=1`` re-raises.
    Exit codes: 2 for a usage mistake, 1 for a bad checkpoint or a run stopped by non-finite steps.
    """
    from ..train import CheckpointError, NonFiniteError

    try:
        yield
    except (ValueError, TypeError, NonFiniteError, FileNotFoundError) as err:
        if os.environ.get("CAROUSEL_DEBUG"):
            raise
        if isinstance(err, CheckpointError):
            _fail(f"checkpoint problem: {err}", 1)
        elif isinstance(err, NonFiniteError):
            _fail(str(err), 1)
        elif isinstance(err, FileNotFoundError):
            _fail(f"file not found: {err.filename}", 2)
        else:
            _fail(str(err), 2)


def _fail(message: str, code: int) -> None:
    if is_main_process():
        from rich.markup import escape

        console(stderr=True).print(f"[bold red]Error:[/] {escape(message)}")
    raise typer.Exit(code)


def bool_fields(task: str | None) -> set[str]:
    from ..train import TrainConfig, get_task
    from ..train.config import option_fields

    names = {n for n, (_, kind) in option_fields(TrainConfig).items() if kind is bool}
    if task is not None:
        names |= {n for n, (_, kind) in option_fields(get_task(task).Options).items() if kind is bool}
    return names


def parse_train_args(args: list[str]) -> tuple[str | None, dict[str, Any], dict[str, Any], bool]:
    """``(task, run flags {config, run_dir}, option values, wants help)`` from raw arguments."""
    from ..train import task_names

    task = None
    rest = list(args)
    if rest and not rest[0].startswith("-"):
        task = rest.pop(0)
        if task not in task_names():
            from ..train.config import unknown_message

            raise UsageError(unknown_message("task", task, task_names()))
    flags: dict[str, Any] = {}
    values: dict[str, Any] = {}
    wants_help = False
    bools = None
    i = 0
    while i < len(rest):
        token = rest[i]
        i += 1
        if token in ("--help", "-h"):
            wants_help = True
            continue
        if not token.startswith("--") or token == "--":
            raise UsageError(f"unexpected argument {token!r}; options look like --name value (the task, if given, comes first)")
        name, eq, value = token[2:].partition("=")
        key = name.replace("-", "_")
        if key in RUN_FLAGS:
            if not eq:
                if i >= len(rest):
                    raise UsageError(f"--{name} needs a value")
                value, i = rest[i], i + 1
            flags[key] = value
            continue
        if bools is None:
            bools = bool_fields(task or _task_from_config(flags.get("config")))
        if key in bools and not eq:
            if i < len(rest) and rest[i].lower() in BOOL_WORDS:
                value, i = rest[i], i + 1
            else:
                value = "true"
        elif key.startswith("no_") and key[3:] in bools and not eq:
            key, value = key[3:], "false"
        elif not eq:
            if i >= len(rest) or (rest[i].startswith("--") and not _is_number(rest[i])):
                raise UsageError(f"--{name} needs a value")
            value, i = rest[i], i + 1
        values[key] = value
    return task, flags, values, wants_help


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _task_from_config(path: str | None) -> str | None:
    if path is None:
        return None
    from ..train import read_config_file

    return read_config_file(path)[0]


def option_rows(cls: type) -> list[tuple[str, str, str]]:
    """``(--name, default, help [choices])`` for every field of an options dataclass."""
    from ..train.config import choices_of

    rows = []
    for f in dataclasses.fields(cls):
        ch = choices_of(f)
        help_text = f.metadata.get("help", "") + (f" [{', '.join(ch)}]" if ch else "")
        rows.append((f"--{f.name.replace('_', '-')}", repr(f.default) if isinstance(f.default, str) else str(f.default), help_text))
    return rows


def print_train_help(task: str | None) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ..train import TrainConfig, cell_names, get_task, task_names
    from ..train.cells import cell_summary

    out = console()
    out.print("Usage: carousel train TASK [--option value ...] [--config run.toml] [--run-dir DIR]\n", markup=False)
    out.print(
        "Train TASK; options come from the command line, a TOML config ([task] name = ..., [train] ...) "
        "or both (the command line wins).",
        markup=False,
    )
    out.print("Run flags: --config FILE (TOML, or an earlier run's config.json), --run-dir DIR (default runs/TASK-TIME).\n", markup=False)
    names = [task] if task else list(task_names())
    for name in names:
        cls = get_task(name)
        table = Table(title=escape(f"task {name}: {cls.summary()}"), title_justify="left", show_edge=False)
        for col in ("option", "default", "meaning"):
            table.add_column(col)
        for row in option_rows(cls.Options):
            table.add_row(*map(escape, row))
        out.print(table)
    table = Table(title="trainer options (every task)", title_justify="left", show_edge=False)
    for col in ("option", "default", "meaning"):
        table.add_column(col)
    for row in option_rows(TrainConfig):
        table.add_row(*map(escape, row))
    out.print(table)
    out.print("\ncells: " + ", ".join(f"{c} ({cell_summary(c)})" for c in cell_names()), markup=False)


def overview() -> str:
    """Text for ``carousel --help``: every task, cell and option."""
    from ..train import TrainConfig, cell_names, get_task, task_names
    from ..train.config import option_fields

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
    from pathlib import Path

    from ..train import latest_checkpoint

    last = latest_checkpoint(Path(run_dir) / "checkpoints")
    where = f"the last checkpoint is {last}" if last else "no checkpoint was written yet"
    if is_main_process():
        console(stderr=True).print(f"interrupted; {where}. Continue with: carousel resume {run_dir}")
    raise typer.Exit(130)
