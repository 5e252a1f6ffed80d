"""``carousel train TASK [options] [--config run.toml] [--run-dir DIR]``: start a run (see ``carousel.train``).

Every registered task is a sub-command whose options are the task's ``Options`` dataclass and the
trainer's ``TrainConfig``, turned into real command-line parameters: each field's type, its help,
its choices and its default come from its declaration (``carousel.train.option``), and typer reads
them with the library's own conversion (so the messages are those of the Python API). A value
given on the command line overrides the config file; what neither gives keeps the
dataclass default. ``carousel train --config run.toml`` takes the task from the file.
"""

from __future__ import annotations

import inspect
import os
import typing
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.markup import escape
from typer.core import TyperGroup

from ..cells import cell_names, cell_summary
from ..train import TrainConfig, build_config, get_task, new_run_dir, read_config_file, task_names, train_run
from ..train.config import choices_of, convert, option_fields
from .._checks import unknown_message
from . import app
from .common import UsageError, fail, interrupted, overview, print_summary, remove_if_empty, user_errors

RUN_FLAGS = ("config", "run_dir")


class TrainGroup(TyperGroup):
    """The ``train`` group: an unknown task is answered with the valid ones, and without a task the
    config file names it (``carousel train --config run.toml --steps 10``)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args:
            fail(f"no task given; valid tasks: {', '.join(task_names())} (carousel train TASK, or --config FILE)")
        if args[0].startswith("-") and args[0] not in ("--help", "-h"):
            path = _flag_value(args, "--config")
            if path is None:
                fail(f"no task given; valid tasks: {', '.join(task_names())} (carousel train TASK, or --config FILE)")
            with user_errors():
                task = read_config_file(path)[0]
                if task is None:
                    raise UsageError(f"{path} names no task ([task] name = ...); give one: carousel train TASK --config {path}")
                if task not in task_names():
                    raise UsageError(unknown_message("task", task, task_names()) + f" (in {path})")
            args = [task, *args]
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in task_names() and not args[0].startswith("-"):
            fail(unknown_message("task", args[0], task_names()))
        return super().resolve_command(ctx, args)


def _flag_value(args: list[str], flag: str) -> str | None:
    for i, token in enumerate(args):
        if token == flag and i + 1 < len(args):
            return args[i + 1]
        if token.startswith(flag + "="):
            return token[len(flag) + 1 :]
    return None


train_app = typer.Typer(
    cls=TrainGroup,
    help="Train a task: carousel train TASK [--option value ...] [--config run.toml] [--run-dir DIR]. "
    "carousel train TASK --help lists its options.",
    pretty_exceptions_enable=False,
)
app.add_typer(train_app, name="train")


def _parameter(name: str, field: Any, kind: Any, panel: str) -> inspect.Parameter:
    """A keyword parameter typer reads as ``--name``: the field's type, help, choices and default, and
    the library's own conversion and messages (``expected an integer for steps, got 'many'``)."""
    args = typing.get_args(kind)
    if args and type(None) in args:  # Optional[X]: the option's type is X
        kind = next(a for a in args if a is not type(None))
    flag = "--" + name.replace("_", "-")
    help_text = escape(f"{field.metadata.get('help', '')} [default: {field.default}]")  # help text is rich markup
    if kind is bool:
        option = typer.Option(None, f"{flag}/--no-{flag[2:]}", help=help_text, show_default=False, rich_help_panel=panel)
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=Optional[bool])
    choices = choices_of(field)

    def parse(text: str) -> Any:
        try:
            value = convert(text, kind, name)
            if choices is not None and value not in choices:
                raise ValueError(unknown_message(name.replace("_", " "), value, choices))
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None
        return value

    metavar = f"<{'|'.join(choices)}>" if choices is not None else f"<{kind.__name__}>"
    option = typer.Option(None, flag, parser=parse, metavar=metavar, help=help_text, show_default=False, rich_help_panel=panel)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=Optional[kind])


def task_command(task: str) -> Callable[..., None]:
    """The ``carousel train TASK`` command: one parameter per task and trainer option, and the run flags."""
    cls = get_task(task)
    params = [_parameter(n, f, k, "Task options") for n, (f, k) in option_fields(cls.Options).items()]
    params += [_parameter(n, f, k, "Trainer options") for n, (f, k) in option_fields(TrainConfig).items()]
    params += [
        inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path], default=typer.Option(
            None, "--config", help="TOML file (\\[task] name = ..., \\[train] ...) or an earlier run's config.json; "
            "the command line wins", rich_help_panel="Run")),
        inspect.Parameter("run_dir", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str], default=typer.Option(
            None, "--run-dir", help="run directory (default runs/TASK-TIME)", rich_help_panel="Run")),
    ]

    def command(**given: Any) -> None:
        config_file, run_dir = given.pop("config"), given.pop("run_dir")
        values = {k: v for k, v in given.items() if v is not None}
        _train(task, values, config_file, run_dir)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__name__ = task
    command.__doc__ = cls.summary()
    return command


def _train(task: str, values: dict[str, Any], config_file: Path | None, run_dir: str | None) -> None:
    with user_errors():
        config = build_config(task, values, config_file)
        reserved = None
        if run_dir is not None and not run_dir.strip():
            raise UsageError("expected a directory for --run-dir, got an empty path (leave it out for runs/TASK-TIME)")
        if run_dir is None:
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                raise UsageError("a distributed run needs --run-dir DIR, the same for every process")
            reserved = new_run_dir(config.task)  # created exclusively: runs started in the same second get their own
            run_dir = str(reserved)
        try:
            summary = train_run(config, run_dir)
        except KeyboardInterrupt:
            interrupted(run_dir)
        except Exception:
            if reserved is not None:
                remove_if_empty(reserved)
            raise
        print_summary(summary)


_CELLS = "cells: " + "; ".join(f"{c} ({cell_summary(c)})" for c in cell_names())
for _name in task_names():
    train_app.command(name=_name, help=get_task(_name).summary(), epilog=_CELLS)(task_command(_name))

app.info.epilog = overview()  # `carousel --help` lists every task, cell and option
