"""``DiagnosticsHook``: the trainer records diagnostics snapshots periodically into the run directory.

Every ``every`` optimiser steps (and after the first) the hook diagnoses the model on one fixed
batch, drawn once from the task's own training batches with a seed of its own (the training
data's position is untouched, so a resumed run stays exact), and appends the snapshot to
``RUN_DIR/diagnostics.jsonl``. ``carousel diagnose RUN_DIR`` plots that history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..train.trainer import Hook
from .snapshot import Snapshot, append_snapshot, diagnose

DIAGNOSTIC_SEED = 9_176_203  # the fixed batch's seed: the same batch in every run of a task


class DiagnosticsHook(Hook):
    """A trainer hook (``carousel.train.Trainer(..., hooks=[DiagnosticsHook(every=500)])``).

    ``jacobians``, ``max_lag`` and ``jacobian_batch`` are passed to ``diagnose``; ``batch_size``
    is the size of the fixed diagnostic batch. Snapshots are also kept in ``self.snapshots``.
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

    def _fixed_batch(self, trainer: Any) -> Any:
        if self._batch is None:
            from ..train.task import Shard

            self._batch = next(iter(trainer.task.train_batches(self.batch_size, Shard(), DIAGNOSTIC_SEED)))
        return self._batch

    def record(self, trainer: Any) -> Snapshot:
        """Diagnose ``trainer.model`` now and append the snapshot to the run's history."""
        batch, model, task = self._fixed_batch(trainer), trainer.model, trainer.task
        snap = diagnose(model, lambda: task.step(model, batch, None).loss, step=trainer.step, **self.options)
        self.snapshots.append(snap)
        run_dir = getattr(trainer, "run_dir", None)
        if run_dir is not None and getattr(trainer, "is_main", True):
            Path(run_dir).mkdir(parents=True, exist_ok=True)
            append_snapshot(Path(run_dir), snap)
        return snap

    # ---- the trainer's Hook interface ---------------------------------------------------------------
    def on_step(self, trainer: Any, record: dict[str, Any]) -> None:
        if trainer.step == 1 or trainer.step % self.every == 0:
            self.record(trainer)

    def on_end(self, trainer: Any) -> None:
        if not self.snapshots or self.snapshots[-1].step != trainer.step:
            self.record(trainer)
