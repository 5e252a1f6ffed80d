"""Diagnostics of a training run directory (what ``carousel diagnose RUN_DIR`` does).

The history is ``RUN_DIR/diagnostics.jsonl`` (written by ``DiagnosticsHook`` while training).
Without one, or when asked, every step checkpoint in ``RUN_DIR/checkpoints`` is loaded into a fresh
model of the run's task and diagnosed on the hook's fixed batch, which builds the history after
the fact. Plots go to ``RUN_DIR/diagnostics/``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..diagnostics import Snapshot, append_snapshot, diagnose, load_history
from ..diagnostics.plots import write_plots
from ..diagnostics.snapshot import HISTORY_FILE
from .checkpoint_file import list_checkpoints, load_checkpoint
from .hooks import DIAGNOSTIC_SEED
from .run import load_run_config
from .task import Shard
from .trainer_checkpoint import load_model_weights


def snapshots_from_checkpoints(
    run_dir: str | Path, *, batch_size: int = 32, jacobians: bool = True, max_lag: int | None = None
) -> list[Snapshot]:
    """One snapshot per step checkpoint of the run (oldest first), on the fixed diagnostic batch."""
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    found = list_checkpoints(run_dir / "checkpoints")
    if not found:
        raise ValueError(f"{run_dir} has no diagnostics history ({HISTORY_FILE}) and no checkpoint to diagnose")
    task = config.make_task()
    batch = next(iter(task.train_batches(batch_size, Shard(), DIAGNOSTIC_SEED)))
    snaps = []
    for step, path in found:
        tensors, meta = load_checkpoint(path)
        torch.manual_seed(config.train.seed)
        model = task.build_model()
        load_model_weights(model, tensors, path)
        snaps.append(diagnose(model, lambda: task.step(model, batch, None).loss, step=int(meta.get("step", step)),
                              jacobians=jacobians, max_lag=max_lag))
    return snaps


def diagnose_run(run_dir: str | Path, *, from_checkpoints: bool = False, max_lag: int | None = None) -> tuple[list[Snapshot], list[Path]]:
    """The run's history (built from its checkpoints when it has none, or when ``from_checkpoints``)
    and the PNG plots written to ``RUN_DIR/diagnostics/``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"expected a run directory, but {run_dir} is not a directory")
    history_file = run_dir / HISTORY_FILE
    if from_checkpoints or not history_file.is_file() or history_file.stat().st_size == 0:
        for snap in snapshots_from_checkpoints(run_dir, max_lag=max_lag):
            append_snapshot(history_file, snap)
    try:
        history = load_history(history_file)
    except (ValueError, KeyError, TypeError, AttributeError) as err:  # a foreign, corrupt or binary history file
        reason = f"{type(err).__name__}: {err}" if isinstance(err, (KeyError, TypeError, AttributeError)) else str(err)
        raise ValueError(
            f"{history_file} is not a readable diagnostics history ({reason}); move it away and run "
            f"`carousel diagnose {run_dir}` again to rebuild it from the checkpoints"
        ) from None
    if not history:
        raise ValueError(f"{history_file} holds no diagnostics snapshot; move it away and run `carousel diagnose {run_dir}` again")
    return history, write_plots(history, run_dir / "diagnostics")
