"""Training recurrent networks: tasks, the trainer, truncated BPTT, clipping, checkpoints, runs.

**Tasks.** A task is a ``Task`` subclass registered by name; ``carousel train NAME`` finds it::

    from dataclasses import dataclass
    from carousel.train import Task, StepOutput, SeededBatches, option, register_task

    @dataclass(frozen=True)
    class CopyOptions:                       # every field is a command-line option
        length: int = option(100, "sequence length")
        cell: str = option("lstm", "recurrent cell", choices=cell_names)

    @register_task
    class CopyTask(Task):
        \"\"\"Copying memory: recall a sequence after a delay.\"\"\"   # shown by --help
        name, Options = "copying", CopyOptions
        monitor, mode, unit = "loss", "min", "seq"     # best checkpoint / early stopping metric
        def build_model(self): ...                      # e.g. RecurrentModel(self.options.cell, ...)
        def train_batches(self, batch_size, shard, seed): ...   # SeededBatches(lambda i: ...)
        def step(self, model, batch, state): ...        # -> StepOutput(loss, state, items, metrics)
        def evaluate(self, model, split): ...           # -> {"loss": ..., ...}, split in self.splits

Put the module in ``carousel/train/tasks/`` and it is discovered; elsewhere, import it first.
Options are frozen dataclasses of ``option(default, help, choices=...)`` fields; their names must
differ from ``TrainConfig``'s. ``train_batches`` returns this rank's rows of each global batch
and knows its position (``SeededBatches``, ``ShuffledBatches``, ``StreamBatches``).

**Long streams (TBPTT).** ``Streams(inputs, targets, batch_size, shard)`` lays a corpus out as B
parallel streams; ``StreamBatches(streams, bptt=k1, bptt_back=k2, random=...)`` yields windows;
in ``step``, ``outputs, carry = run_window(model, window, state)`` runs the window from the carried
state (resetting streams where a document starts) and returns the detached state to carry; take
the loss on ``outputs[:, window.loss_from:]`` and return ``StepOutput(loss, carry, items)``.
Inherit ``StreamOptions`` for the ``--bptt``, ``--bptt-back`` and ``--bptt-random`` options.

**Models** come from ``carousel.models`` (``RecurrentModel``, ``CharLM``); cells by name from
``carousel.cells`` (``make_cell``, ``cell_names``).

**Training.** ``Trainer(task, TrainConfig(...), run_dir=..., hooks=[...]).fit()``; or
``train_run(build_config("adding", {"steps": 500}), run_dir)``, ``resume_run(run_dir)``,
``evaluate_run(run_dir)`` (what the ``carousel train | resume | eval`` commands call).
Gradients are clipped by global norm (``clip_norm``) and/or value (``clip_value``), the norm
before clipping is logged every step; non-finite steps are skipped, and ``max_nonfinite`` in a row
stop the run with ``NonFiniteError``. Under ``torchrun --nproc_per_node=N`` the same code trains
with ``DistributedDataParallel``. Hooks (``Hook``, ``TimeBudget``, ``WallClockLimit``,
``DiagnosticsHook``) watch or steer a run.
"""

from .batches import SeededBatches, ShuffledBatches, derive_seed
from .checkpoint_file import CheckpointError, latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from .clip import clip_gradients, grad_norm
from .config import TrainConfig, option, parse_options
from .diagnose_run import diagnose_run, snapshots_from_checkpoints
from .guard import NonFiniteError, NonFiniteGuard
from .hooks import DiagnosticsHook, Hook, TimeBudget, WallClockLimit
from .metrics import read_metrics
from .registry import get_task, register_task, task_names
from .run import (
    RunConfig,
    RunFinished,
    RunInterrupted,
    build_config,
    evaluate_run,
    new_run_dir,
    read_config_file,
    resolve_checkpoint,
    resume_run,
    save_evaluation,
    train_run,
)
from .streams import StreamBatches, StreamOptions, Streams, Window
from .task import Batches, NoOptions, Shard, StepOutput, Task
from .tbptt import reset_rows, run_window
from .trainer import Trainer

__all__ = [
    "Task",
    "StepOutput",
    "Shard",
    "Batches",
    "NoOptions",
    "option",
    "register_task",
    "get_task",
    "task_names",
    "TrainConfig",
    "RunConfig",
    "build_config",
    "read_config_file",
    "parse_options",
    "Trainer",
    "Hook",
    "TimeBudget",
    "WallClockLimit",
    "DiagnosticsHook",
    "diagnose_run",
    "snapshots_from_checkpoints",
    "new_run_dir",
    "resolve_checkpoint",
    "train_run",
    "resume_run",
    "evaluate_run",
    "save_evaluation",
    "RunFinished",
    "RunInterrupted",
    "SeededBatches",
    "ShuffledBatches",
    "derive_seed",
    "Streams",
    "StreamBatches",
    "StreamOptions",
    "Window",
    "run_window",
    "reset_rows",
    "clip_gradients",
    "grad_norm",
    "NonFiniteGuard",
    "NonFiniteError",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
    "list_checkpoints",
    "read_metrics",
]
