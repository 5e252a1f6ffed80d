"""Frozen configuration: the trainer's options, and the reading of options from text (CLI, TOML, JSON).

Every option is a dataclass field declared with ``option(default, help, choices=...)``; the help
and choices travel with the field, so the command line, ``--help`` and config files all read the
same declaration (one place per option). ``parse_options(cls, mapping)`` turns strings or TOML
values into a validated instance and says which names are valid when one is not.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from .._checks import unknown_message

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad")
LR_SCHEDULES = ("constant", "cosine", "linear", "step", "plateau")
DEVICES = ("auto", "cpu", "cuda")


def option(default: Any, help: str, *, choices: Sequence[str] | Callable[[], Sequence[str]] | None = None) -> Any:
    """A dataclass field with its help text and, for strings, its valid choices (a list or a function giving one)."""
    return field(default=default, metadata={"help": help, "choices": choices})


def choices_of(f: dataclasses.Field) -> tuple[str, ...] | None:
    c = f.metadata.get("choices")
    if c is None:
        return None
    return tuple(c() if callable(c) else c)


@dataclass(frozen=True)
class TrainConfig:
    """The trainer's options (the task's own options live in the task's ``Options`` dataclass)."""

    steps: int = option(1000, "optimiser steps in the whole run")
    batch_size: int = option(32, "global batch size (split evenly over distributed ranks)")
    lr: float = option(1e-3, "learning rate")
    optimizer: str = option("adam", "optimiser from torch.optim", choices=OPTIMIZERS)
    weight_decay: float = option(0.0, "weight decay (L2; decoupled for adamw)")
    momentum: float = option(0.0, "momentum (sgd, rmsprop)")
    schedule: str = option("constant", "learning-rate schedule from torch.optim.lr_scheduler", choices=LR_SCHEDULES)
    warmup: int = option(0, "steps of linear warm-up before the schedule")
    minutes: float = option(0.0, "train for this much wall-clock time, the learning rate on a cosine from lr to 0 over it (0: off; needs schedule 'constant'; steps still caps the run; a resumed run goes on with what was left)")
    clip_norm: float = option(1.0, "clip gradients to this global L2 norm (0: off)")
    clip_value: float = option(0.0, "clip every gradient element to [-v, v] (0: off)")
    max_nonfinite: int = option(5, "stop after this many non-finite steps in a row (each is skipped)")
    eval_every: int = option(100, "evaluate on the validation split every N steps (0: only at the end)")
    patience: int = option(0, "early stopping: stop after N evaluations without improvement (0: off)")
    checkpoint_every: int = option(100, "write a checkpoint every N steps (and always at the end)")
    keep: int = option(2, "checkpoints to keep besides the best one")
    log_every: int = option(1, "write training metrics every N steps")
    seed: int = option(0, "random seed for weights, data and dropout")
    device: str = option("auto", "where to train (auto: cuda when available)", choices=DEVICES)
    progress: bool = option(True, "show a live progress bar")
    diagnose_every: int = option(0, "record gradient diagnostics every N steps into RUN_DIR/diagnostics.jsonl (0: off; see carousel diagnose)")

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "max_nonfinite", "keep", "log_every", "checkpoint_every"):
            _positive(name, getattr(self, name))
        for name in ("warmup", "eval_every", "patience", "seed", "diagnose_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"expected {name} to be an integer >= 0, got {type(value).__name__} {value!r}")
            _non_negative(name, value)
        if not isinstance(self.progress, bool):
            raise ValueError(f"expected progress to be True or False, got {type(self.progress).__name__} {self.progress!r}")
        for name in ("lr", "weight_decay", "momentum", "clip_norm", "clip_value", "minutes"):
            check_finite(name, getattr(self, name))
        if not self.lr > 0:
            raise ValueError(f"expected lr > 0, got {self.lr!r}")
        for name in ("weight_decay", "momentum", "clip_norm", "clip_value", "minutes"):
            _non_negative(name, getattr(self, name))
        for f in dataclasses.fields(self):
            ch = choices_of(f)
            if ch is not None and getattr(self, f.name) not in ch:
                raise ValueError(f"unknown {f.name} {getattr(self, f.name)!r}; expected one of: {', '.join(ch)}")
        if self.minutes and (self.schedule != "constant" or self.warmup):
            raise ValueError(f"minutes={self.minutes:g} sets its own learning-rate cosine over the clock; it needs schedule "
                             f"'constant' and warmup 0, got schedule {self.schedule!r} and warmup {self.warmup}")
        if self.warmup and self.warmup >= self.steps:
            raise ValueError(f"expected warmup < steps, got warmup {self.warmup} with steps {self.steps}: the whole run "
                             "would be warm-up and the schedule would never start")
        if self.momentum >= 1:
            raise ValueError(f"expected momentum in [0, 1), got {self.momentum!r}: at 1 or above the velocity grows without bound")
        if self.momentum and self.optimizer not in ("sgd", "rmsprop"):
            raise ValueError(f"expected momentum 0 with optimizer {self.optimizer!r}, which would ignore it (sgd and rmsprop "
                             f"use momentum; adam's betas play that part), got {self.momentum!r}")
        if self.schedule == "plateau" and self.warmup:
            raise ValueError("warmup cannot be combined with schedule 'plateau' (it steps on validation, not on steps)")


def _positive(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"expected {name} to be an integer >= 1, got {value!r}")


def check_finite(name: str, value: Any) -> float:
    """``value`` as a float when it is a finite real number; ``ValueError`` naming ``name`` otherwise
    (``nan`` and ``inf`` are never a usable setting: a NaN learning rate trains nothing, an infinite
    time budget never ends)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number for {name}, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number for {name}, got {value!r}")
    return float(value)


def _non_negative(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"expected {name} >= 0, got {value!r}")


# ---- reading options from text -----------------------------------------------------------------
def option_fields(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    """``{name: (field, type)}`` of a frozen options dataclass, with its resolved annotations."""
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls)}


def convert(value: Any, kind: Any, name: str) -> Any:
    """Convert a CLI string or a TOML/JSON value to ``kind`` (int, float, str, bool, or ``X | None``)."""
    args = typing.get_args(kind)
    if args and type(None) in args:  # Optional[X]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        kind = next(a for a in args if a is not type(None))
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ValueError(f"expected true or false for {name}, got {value!r}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        raise ValueError(f"expected an integer for {name}, got {value!r}")
    if kind is float:
        number: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ValueError(f"expected a number for {name}, got {value!r}")
        return check_finite(name, number)  # every option's nan or inf is a mistake, whatever the option
    if kind is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"expected a string for {name}, got {value!r}")
    raise TypeError(f"option {name} has a type the command line cannot read: {kind!r}")


def parse_options(cls: type, values: Mapping[str, Any], *, what: str = "option") -> Any:
    """Build ``cls`` from ``values`` (names with ``-`` or ``_``); unknown names raise ValueError listing the valid ones."""
    fields = option_fields(cls)
    kwargs = {}
    for raw, value in values.items():
        name = raw.replace("-", "_")
        if name not in fields:
            raise ValueError(unknown_message(what, raw, list(fields)))
        f, kind = fields[name]
        kwargs[name] = convert(value, kind, name)
        ch = choices_of(f)
        if ch is not None and kwargs[name] not in ch:
            raise ValueError(f"unknown {name} {kwargs[name]!r}; expected one of: {', '.join(ch)}")
    return cls(**kwargs)


def to_dict(options: Any) -> dict[str, Any]:
    """A frozen options dataclass as a JSON-able dict."""
    return dataclasses.asdict(options)
