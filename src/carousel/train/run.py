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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from .._checks import unknown_message
from .checkpoint_file import CheckpointError, latest_checkpoint, load_checkpoint
from .config import TrainConfig, option_fields, parse_options, to_dict
from .hooks import Hook
from .metrics import truncate_metrics
from .plot import plot_run
from .registry import get_task
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
    cls = get_task(task)
    task_fields, train_fields = option_fields(cls.Options), option_fields(TrainConfig)
    for raw, value in values.items():
        name = raw.replace("-", "_")
        if name in task_fields:
            options[name] = value
        elif name in train_fields:
            train[name] = value
        else:
            raise ValueError(unknown_option(task, raw, list(task_fields), list(train_fields)))
    return RunConfig(task, parse_options(cls.Options, options, what=f"option of task {task!r}"), parse_options(TrainConfig, train, what="trainer option"))


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
    """``(task name, task options, trainer options)`` from a TOML file or a run's ``config.json``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    text = path.read_text(encoding="utf-8")
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
        return raw["task"], dict(raw.get("options", {})), dict(raw.get("train", {}))
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"config file {path} is not valid TOML: {err}") from None
    extra = set(raw) - {"task", "train"}
    if extra:
        raise ValueError(unknown_message("section", sorted(extra)[0], ["task", "train"]) + f" (in {path})")
    task_section = dict(raw.get("task", {}))
    name = task_section.pop("name", None)
    return name, task_section, dict(raw.get("train", {}))


def new_run_dir(task: str, root: str | Path = "runs") -> Path:
    """``root/TASK-YYYYmmdd-HHMMSS`` (with a suffix when taken)."""
    base = Path(root) / f"{task}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The ``RunConfig`` recorded in ``run_dir/config.json``; ``ValueError`` when it is not a run directory."""
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not path.is_file():
        raise ValueError(f"{run_dir} is not a run directory (no config.json); start one with `carousel train TASK`")
    return build_config(None, {}, path)


def _write_config(run_dir: Path, config: RunConfig) -> None:
    tmp = run_dir / ".config.json.tmp"
    tmp.write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(run_dir / "config.json")


def train_run(config: RunConfig, run_dir: str | Path, *, hooks: Sequence[Hook] = ()) -> dict[str, Any]:
    """Start a new run in ``run_dir`` (which must not hold one already) and train it to the end."""
    run_dir = Path(run_dir)
    if (run_dir / "config.json").exists():
        raise ValueError(f"{run_dir} already holds a run; continue it with `carousel resume {run_dir}` or choose another --run-dir")
    trainer = Trainer(config.make_task(), config.train, run_dir=run_dir, hooks=hooks)
    if trainer.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_config(run_dir, config)
    return _finish(trainer, run_dir)


def resume_run(
    run_dir: str | Path, *, steps: int | None = None, progress: bool | None = None, hooks: Sequence[Hook] = ()
) -> dict[str, Any]:
    """Continue the run in ``run_dir`` from its latest checkpoint, exactly as if it had not stopped.

    ``steps`` extends (or shortens) the run; a schedule that depends on the total (cosine,
    linear, step) then changes from here on. ``progress`` turns the bar on or off.
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
    if path is None:
        raise CheckpointError(f"{run_dir} has no checkpoint to resume from (checkpoints/ is empty); start the run again")
    trainer = Trainer(config.make_task(), config.train, run_dir=run_dir, hooks=hooks)
    trainer.load(path)
    if trainer.step >= config.train.steps:
        raise ValueError(f"the run in {run_dir} already finished at step {trainer.step}; pass --steps N (> {trainer.step}) to train further")
    if trainer.is_main:
        truncate_metrics(run_dir / "metrics.jsonl", trainer.step)
        _write_config(run_dir, config)
    return _finish(trainer, run_dir)


def _finish(trainer: Trainer, run_dir: Path) -> dict[str, Any]:
    summary = trainer.fit()
    if trainer.is_main:
        summary["plot"] = plot_run(run_dir)
    summary["run_dir"] = str(run_dir)
    return summary


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
    if path is None or not path.is_file():
        raise CheckpointError(f"{run_dir} has no checkpoint {checkpoint!r} to load")
    return path


def evaluate_run(run_dir: str | Path, *, split: str | None = None, checkpoint: str = "best") -> dict[str, Any]:
    """Score a checkpoint (``"best"``, ``"latest"`` or a file path) of the run in ``run_dir`` on
    ``split`` (every split of the task when None); the result also goes to ``eval.json``."""
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    task = config.make_task()
    splits = task.splits if split is None else (task.check_split(split),)
    path = resolve_checkpoint(run_dir, checkpoint)
    tensors, meta = load_checkpoint(path)
    if meta.get("run", {}).get("task") != config.task:
        raise CheckpointError(f"checkpoint {path} is for task {meta.get('run', {}).get('task')!r}, the run is {config.task!r}")
    torch.manual_seed(config.train.seed)
    model = task.build_model()
    load_model_weights(model, tensors, path)
    model.eval()
    result: dict[str, Any] = {"checkpoint": str(path), "step": meta.get("step"), "splits": {}}
    with torch.no_grad():
        for s in splits:
            result["splits"][s] = {k: float(v) for k, v in task.evaluate(model, s).items()}
    (run_dir / "eval.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result
