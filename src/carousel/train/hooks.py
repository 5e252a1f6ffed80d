"""Trainer hooks: watch or steer a run from outside the loop.

* ``Hook``: the base class, one method per event (a step, an evaluation, a checkpoint, the start and
  the end of ``fit``); ``trainer.stop(reason)`` ends a run after the current step;
* ``TimeBudget``: train for a wall-clock time, the learning rate on a cosine over it;
* ``WallClockLimit``: stop after a wall-clock time, the schedule untouched;
* ``DiagnosticsHook``: record diagnostics snapshots (gradient flow, Jacobian spectra, gates) into
  the run directory every N steps (``carousel diagnose RUN_DIR`` plots them).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..diagnostics import Snapshot, append_snapshot, diagnose
from .task import Shard

if TYPE_CHECKING:  # annotations only: the trainer imports this module
    from .trainer import Trainer

DIAGNOSTIC_SEED = 9_176_203  # the fixed diagnostic batch's seed: the same batch in every run of a task


class Hook:
    """Override any of these to watch or steer a run; ``trainer.stop(reason)`` ends it after the step."""

    def on_start(self, trainer: "Trainer") -> None: ...

    def on_step(self, trainer: "Trainer", record: dict[str, Any]) -> None: ...

    def on_eval(self, trainer: "Trainer", record: dict[str, Any]) -> None: ...

    def on_checkpoint(self, trainer: "Trainer", path: Path) -> None: ...

    def on_end(self, trainer: "Trainer") -> None: ...


class TimeBudget(Hook):
    """Train for ``seconds`` of training time: the learning rate follows a cosine from ``lr`` to 0
    over that time, ``lr_t = lr * (1 + cos(pi * elapsed / seconds)) / 2``, then the run stops (and
    the trainer evaluates and checkpoints as at any end). ``elapsed`` is ``trainer.elapsed()``,
    which checkpoints keep, so a resumed run goes on with the budget it had left. Use with
    ``schedule="constant"`` and a large ``steps``. The schedule follows the clock, so such a run is
    not reproducible step for step. Raises ``ValueError`` for a budget that is not positive.
    """

    def __init__(self, seconds: float, lr: float) -> None:
        if not seconds > 0:
            raise ValueError(f"expected a time budget > 0 seconds, got {seconds}")
        self.seconds, self.lr = float(seconds), float(lr)

    def on_step(self, trainer: "Trainer", record: dict[str, Any]) -> None:
        elapsed = trainer.elapsed()
        for group in trainer.optimizer.param_groups:
            group["lr"] = self.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, elapsed / self.seconds)))
        if elapsed >= self.seconds:
            trainer.stop(f"time budget of {self.seconds:g} s reached")


class WallClockLimit(Hook):
    """Stop a run once it has trained for ``seconds`` (``trainer.elapsed()``); the learning-rate
    schedule is left as configured. Raises ``ValueError`` for a limit that is not positive."""

    def __init__(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError(f"expected a time limit > 0 seconds, got {seconds}")
        self.seconds = float(seconds)

    def on_step(self, trainer: "Trainer", record: dict[str, Any]) -> None:
        if trainer.elapsed() >= self.seconds:
            trainer.stop(f"time limit of {self.seconds:g} s reached")


class DiagnosticsHook(Hook):
    """Record diagnostics snapshots while a trainer runs (``Trainer(..., hooks=[DiagnosticsHook(every=500)])``).

    Every ``every`` optimiser steps (and after the first) the hook diagnoses the model on one fixed
    batch, drawn once from the task's own training batches with a seed of its own (the training
    data's position is untouched, so a resumed run stays exact), and appends the snapshot to
    ``RUN_DIR/diagnostics.jsonl``. ``jacobians``, ``max_lag`` and ``jacobian_batch`` are passed to
    ``carousel.diagnostics.diagnose``; ``batch_size`` is the size of the fixed batch. Snapshots are
    also kept in ``self.snapshots``. Raises ``ValueError`` for ``every`` or ``batch_size`` below 1.
    """

    def __init__(self, every: int = 500, *, batch_size: int = 32, jacobians: bool = True, max_lag: int | None = None, jacobian_batch: int = 4) -> None:
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"expected every to be a positive number of steps, got {every!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"expected batch_size to be a positive integer, got {batch_size!r}")
        self.every, self.batch_size = every, batch_size
        self.options = {"jacobians": jacobians, "max_lag": max_lag, "jacobian_batch": jacobian_batch}
        self.snapshots: list[Snapshot] = []
        self._batch: Any = None

    def _fixed_batch(self, trainer: "Trainer") -> Any:
        if self._batch is None:
            self._batch = next(iter(trainer.task.train_batches(self.batch_size, Shard(), DIAGNOSTIC_SEED)))
        return self._batch

    def record(self, trainer: "Trainer") -> Snapshot:
        """Diagnose ``trainer.model`` now and append the snapshot to the run's history."""
        batch, model, task = self._fixed_batch(trainer), trainer.model, trainer.task
        snap = diagnose(model, lambda: task.step(model, batch, None).loss, step=trainer.step, **self.options)
        self.snapshots.append(snap)
        if trainer.run_dir is not None and trainer.is_main:
            Path(trainer.run_dir).mkdir(parents=True, exist_ok=True)
            append_snapshot(Path(trainer.run_dir), snap)
        return snap

    def on_step(self, trainer: "Trainer", record: dict[str, Any]) -> None:
        if trainer.step == 1 or trainer.step % self.every == 0:
            self.record(trainer)

    def on_end(self, trainer: "Trainer") -> None:
        if not self.snapshots or self.snapshots[-1].step != trainer.step:
            self.record(trainer)
