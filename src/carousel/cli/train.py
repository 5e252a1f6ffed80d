"""``carousel train TASK [options | --config run.toml]``: start a run (see ``carousel.train``)."""

from __future__ import annotations

import os

import typer

from . import app
from ._training import UsageError, interrupted, overview, parse_train_args, print_summary, print_train_help, user_errors


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "allow_interspersed_args": False},
    add_help_option=False,
    help="Train a task: carousel train TASK [--option value ...] [--config run.toml] [--run-dir DIR]. "
    "carousel train TASK --help lists its options.",
)
def train(ctx: typer.Context) -> None:
    from ..train import build_config, task_names, train_run
    from ..train.run import new_run_dir

    with user_errors():
        task, flags, values, wants_help = parse_train_args(list(ctx.args))
        if wants_help:
            print_train_help(task)
            return
        if task is None and "config" not in flags:
            raise UsageError(f"no task given; valid tasks: {', '.join(task_names())} (carousel train TASK, or --config FILE)")
        config = build_config(task, values, flags.get("config"))
        run_dir = flags.get("run_dir")
        if run_dir is None:
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                raise UsageError("a distributed run needs --run-dir DIR, the same for every process")
            run_dir = str(new_run_dir(config.task))
        try:
            summary = train_run(config, run_dir)
        except KeyboardInterrupt:
            interrupted(run_dir)
        print_summary(summary)


app.info.epilog = overview()  # `carousel --help` lists every task, cell and option
