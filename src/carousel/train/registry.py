"""The task registry: ``@register_task`` on a ``Task`` subclass makes it ``carousel train NAME``.

Tasks live in their own modules. Every module in the package ``carousel.train.tasks`` is imported
the first time the registry is read, so a new task is one new file there; a task defined
elsewhere registers itself when its module is imported.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

from .._checks import unknown_message
from .config import TrainConfig
from .task import Task

_TASKS: dict[str, type[Task]] = {}
_discovered = False


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: register ``cls`` under ``cls.name``. Its option names must not clash with the trainer's."""
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TypeError(f"register_task expects a Task subclass, got {cls!r}")
    name = cls.name
    if not name or not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"task class {cls.__name__} needs a name of letters, digits, '-' or '_', got {name!r}")
    if not (dataclasses.is_dataclass(cls.Options) and cls.Options.__dataclass_params__.frozen):
        raise TypeError(f"task {name!r}: Options must be a frozen dataclass, got {cls.Options!r}")
    clash = {f.name for f in dataclasses.fields(cls.Options)} & {f.name for f in dataclasses.fields(TrainConfig)}
    if clash:
        raise ValueError(f"task {name!r}: options {sorted(clash)} clash with trainer options of the same name")
    if cls.mode not in ("min", "max"):
        raise ValueError(f"task {name!r}: mode must be 'min' or 'max', got {cls.mode!r}")
    old = _TASKS.get(name)
    if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"task name {name!r} is taken by {old.__module__}.{old.__qualname__}")
    _TASKS[name] = cls
    return cls


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    tasks = importlib.import_module(f"{__package__}.tasks")  # its modules import this one to register
    for info in pkgutil.iter_modules(tasks.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{tasks.__name__}.{info.name}")


def task_names() -> tuple[str, ...]:
    """Every registered task's name, sorted."""
    _discover()
    return tuple(sorted(_TASKS))


def get_task(name: str) -> type[Task]:
    """The task class registered as ``name``; an unknown name raises ValueError listing the valid ones."""
    _discover()
    if name not in _TASKS:
        raise ValueError(unknown_message("task", name, task_names()))
    return _TASKS[name]
