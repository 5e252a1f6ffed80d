"""Runs: a configuration, a run directory, and the three things one does with them.

A run directory holds::

    config.json                 the full RunConfig (task, its options, trainer options)
    metrics.jsonl               one record per step / evaluation (see carousel.train.metrics)
    checkpoints/step-*.safetensors, checkpoints/best.safetensors
    loss.png                    training loss, gradient norm and validation metric (needs matplotlib)
    eval.json                   written by ``evaluate_run``

``train_run(config, run_dir)`` starts one, ``resume_run(run_dir)`` continues it from its latest
checkpoint, ``evaluate_run(run_dir)`` scores a checkpoint on an evaluation split.
Configuration files are TOML (``[task]`` with ``name`` and the task's options, ``[train]`` with
the trainer's) or the ``config.json`` of an earlier run.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from .._checks import unknown_message
from .checkpoint_file import CheckpointError, latest_checkpoint, list_checkpoints, load_checkpoint
from .config import TrainConfig, option_fields, parse_options, to_dict
from .guard import NonFiniteError
from .hooks import Hook
from .metrics import truncate_metrics
from .plot import plot_run
from .registry import get_task, task_names
from .task import Task
from .trainer import Trainer
from .trainer_checkpoint import load_model_weights


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run: the task's name and options, and the trainer's options."""

    task: str
    options: Any
    train: TrainConfig

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "options": to_dict(self.options), "train": to_dict(self.train)}

    def make_task(self) -> Task:
        return get_task(self.task)(self.options)


def build_config(task: str | None, values: Mapping[str, Any] = {}, file: str | Path | None = None) -> RunConfig:
    """A RunConfig from a config file (optional) overridden by flat ``values`` (command-line options,
    each a task option or a trainer option). Unknown names raise ValueError listing the valid ones."""
    options: dict[str, Any] = {}
    train: dict[str, Any] = {}
    if file is not None:
        file_task, options, train = read_config_file(file)
        if task is not None and file_task is not None and task != file_task:
            raise ValueError(f"the command names task {task!r} but {file} configures task {file_task!r}")
        task = task or file_task
    if task is None:
        raise ValueError("no task given; name one (carousel train TASK) or give a config file with [task] name")
    try:
        cls = get_task(task)
    except ValueError as err:
        raise ValueError(f"{err} (in {file})" if file is not None else str(err)) from None
    task_fields, train_fields = option_fields(cls.Options), option_fields(TrainConfig)
    for raw, value in values.items():
        name = raw.replace("-", "_")
        if name in task_fields:
            options[name] = value
        elif name in train_fields:
            train[name] = value
        else:
            raise ValueError(unknown_option(task, raw, list(task_fields), list(train_fields)))
    try:
        return RunConfig(task, parse_options(cls.Options, options, what=f"option of task {task!r}"),
                         parse_options(TrainConfig, train, what="trainer option"))
    except ValueError as err:
        from_file = (set(options) | set(train)) - {raw.replace("-", "_") for raw in values}
        if file is not None and any(name.replace("-", "_") in str(err) for name in from_file):
            raise ValueError(f"{err} (set in {file})") from None  # a bad value in the file: say which file
        raise


def unknown_option(task: str, given: str, task_fields: list[str], train_fields: list[str]) -> str:
    """``unknown option --hiden for task 'adding' (did you mean --hidden?); task options: ...``."""
    flag = lambda n: "--" + n.replace("_", "-")  # noqa: E731
    close = difflib.get_close_matches(given.replace("-", "_"), task_fields + train_fields, n=1)
    hint = f" (did you mean {flag(close[0])}?)" if close else ""
    return (
        f"unknown option {flag(given)} for task {task!r}{hint}; task options: {', '.join(map(flag, task_fields))}; "
        f"trainer options: {', '.join(map(flag, train_fields))}"
    )


def read_config_file(path: str | Path) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    """``(task name, task options, trainer options)`` from a TOML file or a run's ``config.json``.

    Raises ``ValueError`` naming the file when it is missing, a directory, not UTF-8 text, not
    valid TOML/JSON, or has an unknown section."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"config file {path} is a directory; expected a TOML file or a run's config.json")
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"config file {path} is not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); "
            "expected a TOML file or a run's config.json"
        ) from None
    if path.suffix == ".json":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"config file {path} is not valid JSON: {err}") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("task"), str):
            raise ValueError(f"{path} is not a run config (expected keys 'task', 'options', 'train')")
        extra = set(raw) - {"task", "options", "train"}
        if extra:
            raise ValueError(unknown_message("section", sorted(extra)[0], ["task", "options", "train"]) + f" (in {path})")
        for section in ("options", "train"):
            if not isinstance(raw.get(section, {}), dict):
                raise ValueError(f"{path}: expected '{section}' to be an object of option values, got {raw[section]!r}")
        return raw["task"], dict(raw.get("options", {})), dict(raw.get("train", {}))
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"config file {path} is not valid TOML: {err}") from None
    extra = set(raw) - {"task", "train"}
    if extra:
        raise ValueError(unknown_message("section", sorted(extra)[0], ["task", "train"]) + f" (in {path})")
    for section in ("task", "train"):
        if not isinstance(raw.get(section, {}), dict):
            raise ValueError(f"{path}: expected a [{section}] table, got {section} = {raw[section]!r}")
    task_section = dict(raw.get("task", {}))
    name = task_section.pop("name", None)
    if name is not None and not isinstance(name, str):
        raise ValueError(f"{path}: expected the task's name as a string ([task] name = \"adding\"), got {name!r}")
    return name, task_section, dict(raw.get("train", {}))


def new_run_dir(task: str, root: str | Path = "runs") -> Path:
    """Create and return the run directory ``root/TASK-YYYYmmdd-HHMMSS`` (``-2``, ``-3``, ... when taken).

    The directory is created exclusively (``mkdir`` without ``exist_ok``), so two runs started in
    the same second never share one. Raises ``ValueError`` when ``root`` is a file."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ValueError(f"expected a folder for run directories, but {root} is a file")
    root.mkdir(parents=True, exist_ok=True)
    base = root / f"{task}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 100_000):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise ValueError(f"could not create a new run directory under {root}: every name like {base.name}-N is taken")


def check_run_dir(run_dir: Path) -> None:
    """``ValueError`` unless ``run_dir`` can hold a new run: absent, or a directory without a run's files."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"expected a directory for the run, but {run_dir} is a file; choose another --run-dir")
    if (run_dir / "config.json").exists():
        raise ValueError(f"{run_dir} already holds a run; continue it with `carousel resume {run_dir}` or choose another --run-dir")
    leftovers = [n for n in ("metrics.jsonl", "checkpoints") if (run_dir / n).exists()]
    if leftovers:
        raise ValueError(f"{run_dir} holds {' and '.join(leftovers)} of an earlier run but no config.json; choose another --run-dir")


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The ``RunConfig`` recorded in ``run_dir/config.json``; ``ValueError`` when it is not a run directory."""
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if path.is_dir():
        raise ValueError(f"{path} is a directory; expected the run's config file (a run directory holds config.json)")
    if not path.is_file():
        raise ValueError(f"{run_dir} is not a run directory (no config.json); start one with `carousel train TASK`")
    task = read_config_file(path)[0]
    if task is not None and task not in task_names():
        raise ValueError(
            f"{path} names task {task!r}, which is not registered here; a task defined in your own module "
            f"registers when that module is imported: import it, then call evaluate_run / resume_run "
            f"(registered tasks: {', '.join(task_names())})"
        )
    try:
        return build_config(None, {}, path)
    except ValueError as err:
        if str(path) in str(err):
            raise
        raise ValueError(f"{path}: {err}") from None


def _write_config(run_dir: Path, config: RunConfig) -> None:
    tmp = run_dir / ".config.json.tmp"
    tmp.write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(run_dir / "config.json")


def train_run(config: RunConfig, run_dir: str | Path, *, hooks: Sequence[Hook] = ()) -> dict[str, Any]:
    """Start a new run in ``run_dir`` (absent, or a directory without a run) and train it to the end.

    Nothing is written until the set-up (data, model, optimiser) succeeded; when the run then fails
    with an error before its first checkpoint, the files it wrote are removed again (and ``run_dir``
    itself when this call created it), so no unusable run directory is left behind. Raises
    ``ValueError`` when ``run_dir`` is a file or already holds a run. Ctrl-C (``KeyboardInterrupt``)
    ends the current step, writes a checkpoint and raises ``RunInterrupted``."""
    if not str(run_dir).strip():
        raise ValueError("expected a run directory, got an empty path; give --run-dir DIR or leave it out (runs/TASK-TIME)")
    run_dir = Path(run_dir)
    check_run_dir(run_dir)
    created, before = not run_dir.exists(), set()
    trainer = Trainer(config.make_task(), config.train, run_dir=run_dir, hooks=hooks)
    if trainer.is_main:
        before = set(os.listdir(run_dir)) if run_dir.exists() else set()
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            _write_config(run_dir, config)
        except OSError:
            _remove_new_files(run_dir, before, created)
            raise
    try:
        return _finish(trainer, run_dir)
    except (KeyboardInterrupt, NonFiniteError):
        raise
    except Exception:
        if trainer.is_main and not list_checkpoints(run_dir / "checkpoints"):
            _remove_new_files(run_dir, before, created)
        raise


def _remove_new_files(run_dir: Path, before: set[str], created: bool) -> None:
    """Remove what a failed start wrote into ``run_dir`` (and the folder itself when it was new)."""
    for name in set(os.listdir(run_dir)) - before if run_dir.is_dir() else ():
        path = run_dir / name
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    if created:
        try:
            run_dir.rmdir()
        except OSError:
            pass


class RunFinished(ValueError):
    """``resume_run`` of a run that has nothing left to do (its steps or its time budget are spent).
    Not a failure: the command line prints the message and exits with 0."""


def finished_reason(config: RunConfig, step: int, trained_seconds: float) -> str | None:
    """Why a run at ``step`` after ``trained_seconds`` of training is finished, or None when it is not."""
    if step > config.train.steps:
        return f"it is at step {step}, past the {config.train.steps} steps asked for; pass --steps N (> {step}) to train further"
    if step >= config.train.steps:
        return f"it reached its {config.train.steps} steps; pass --steps N (> {step}) to train further"
    if config.train.minutes and trained_seconds >= 60.0 * config.train.minutes:
        return (f"its time budget of {config.train.minutes:g} minutes is spent ({trained_seconds:.0f} s trained, "
                f"{step} steps); evaluate it (carousel eval) or start a new run to train longer")
    return None


def resume_run(
    run_dir: str | Path, *, steps: int | None = None, progress: bool | None = None, hooks: Sequence[Hook] = ()
) -> dict[str, Any]:
    """Continue the run in ``run_dir`` from its latest checkpoint, exactly as if it had not stopped
    (from step 0 when it stopped before writing one).

    ``steps`` extends (or shortens) the run; a schedule that depends on the total (cosine,
    linear, step) then changes from here on. ``progress`` turns the bar on or off. Raises
    ``RunFinished`` when the run has no steps or time budget left.
    """
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    changes: dict[str, Any] = {}
    if steps is not None:
        changes["steps"] = steps
    if progress is not None:
        changes["progress"] = progress
    if changes:
        config = RunConfig(config.task, config.options, TrainConfig(**{**to_dict(config.train), **changes}))
    path = latest_checkpoint(run_dir / "checkpoints")
    trainer = Trainer(config.make_task(), config.train, run_dir=run_dir, hooks=hooks)
    if path is not None:  # without a checkpoint (stopped before the first one) the run starts again from step 0
        trainer.load(path)
    reason = finished_reason(config, trainer.step, trainer.trained_seconds)
    if reason is not None:
        raise RunFinished(f"the run in {run_dir} is finished at step {trainer.step}: {reason}")
    if trainer.is_main:
        truncate_metrics(run_dir / "metrics.jsonl", trainer.step)
        _write_config(run_dir, config)
    return _finish(trainer, run_dir)


def _finish(trainer: Trainer, run_dir: Path) -> dict[str, Any]:
    try:
        summary = trainer.fit()
    except KeyboardInterrupt:
        raise RunInterrupted(run_dir) from None
    if trainer.is_main:
        summary["plot"] = plot_run(run_dir)
    summary["run_dir"] = str(run_dir)
    return summary


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C ended the run in ``run_dir`` (a checkpoint of the last finished step was written first)."""

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__(str(run_dir))
        self.run_dir = Path(run_dir)


def resolve_checkpoint(run_dir: str | Path, checkpoint: str = "best") -> Path:
    """The checkpoint file ``checkpoint`` names in ``run_dir``: ``"best"`` (the latest step checkpoint
    when the run has no best yet), ``"latest"``, or a file path. Raises ``CheckpointError`` when
    there is none."""
    folder = Path(run_dir) / "checkpoints"
    if checkpoint == "best":
        best = folder / "best.safetensors"
        path = best if best.is_file() else latest_checkpoint(folder)
    elif checkpoint == "latest":
        path = latest_checkpoint(folder)
    else:
        path = Path(checkpoint)
        if not path.is_file():
            raise CheckpointError(f"{run_dir} has no checkpoint {checkpoint!r} to load; expected 'best', 'latest' "
                                  "or the path of a checkpoint file")
    if path is None or not path.is_file():
        raise CheckpointError(f"{run_dir} has no checkpoint {checkpoint!r} to load")
    return path


def load_run_model(run_dir: str | Path, checkpoint: str = "best") -> tuple[Task, nn.Module, Path, dict[str, Any]]:
    """The task of the run in ``run_dir``, its model with the weights of ``checkpoint`` (``"best"``,
    ``"latest"`` or a file path) in evaluation mode, the checkpoint's path and its metadata. Raises
    ``CheckpointError`` when there is no such checkpoint or it belongs to another task."""
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    task = config.make_task()
    path = resolve_checkpoint(run_dir, checkpoint)
    tensors, meta = load_checkpoint(path)
    if meta.get("run", {}).get("task") != config.task:
        raise CheckpointError(f"checkpoint {path} is for task {meta.get('run', {}).get('task')!r}, the run is {config.task!r}")
    torch.manual_seed(config.train.seed)
    model = task.build_model()
    load_model_weights(model, tensors, path)
    model.eval()
    return task, model, path, meta


def evaluate_run(run_dir: str | Path, *, split: str | None = None, checkpoint: str = "best", save: bool = True) -> dict[str, Any]:
    """Score a checkpoint (``"best"``, ``"latest"`` or a file path) of the run in ``run_dir`` on
    ``split`` (every split of the task when None); with ``save`` the result also goes to ``eval.json``
    (``save_evaluation``; the command line prints the result first, so a read-only run keeps it)."""
    task, model, path, meta = load_run_model(run_dir, checkpoint)
    splits = task.splits if split is None else (task.check_split(split),)
    result: dict[str, Any] = {"checkpoint": str(path), "step": meta.get("step"), "splits": {}}
    with torch.no_grad():
        for s in splits:
            result["splits"][s] = {k: float(v) for k, v in task.evaluate(model, s).items()}
    if save:
        save_evaluation(run_dir, result)
    return result


def save_evaluation(run_dir: str | Path, result: dict[str, Any]) -> Path:
    """Write ``result`` (of ``evaluate_run``) to ``run_dir/eval.json``, atomically; returns the path."""
    path = Path(run_dir) / "eval.json"
    tmp = path.with_name(".eval.json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
