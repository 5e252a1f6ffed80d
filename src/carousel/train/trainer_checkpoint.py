"""What a trainer checkpoint holds, and how a trainer is restored from one.

Tensors: ``model/<key>`` (the model's ``state_dict``), ``optimizer/<param>/<name>``, and per rank
``rank<r>/rng/torch`` (``/cuda``) and ``rank<r>/state/...`` (the carried recurrent state). JSON:
the step, the run's config (task, options, trainer options), the optimiser's hyper-parameters, the
scheduler, and per rank the data position, Python/NumPy generator states and the state's structure.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import Tensor, nn

from .checkpoint_file import CheckpointError, load_checkpoint, prune, save_checkpoint
from .distributed import barrier, gather
from .packing import pack_optimizer, pack_tree, rng_state, set_rng_state, unpack_optimizer, unpack_tree

if TYPE_CHECKING:  # annotations only: the trainer imports this module
    from .trainer import Trainer


def save_trainer(trainer: "Trainer", path: Path, *, keep: int | None, good: bool = True) -> Path | None:
    """Every rank packs its own part; rank 0 writes the file. Returns the path (None on other ranks).
    ``good`` records whether the weights and last losses were finite (``Trainer.good_state``)."""
    r = trainer.shard.rank
    mine: dict[str, Tensor] = {}
    part = {
        "rng": rng_state(mine, prefix=f"rank{r}/rng"),
        "state": pack_tree(f"rank{r}/state", trainer.state, mine),
        "batches": trainer.batches.state_dict(),
    }
    parts = gather(({k: v.detach().cpu() for k, v in mine.items()}, part), trainer.shard)
    written = None
    if trainer.is_main:
        tensors = {f"model/{k}": v for k, v in trainer.model.state_dict().items()}
        meta = {
            "step": trainer.step,
            "run": trainer.run_config(),
            "world_size": trainer.shard.world_size,
            "optimizer": pack_optimizer(trainer.optimizer, tensors),
            "scheduler": trainer.scheduler.state_dict(),
            "guard": trainer.guard.state_dict(),
            "best": trainer.best,
            "bad_evals": trainer.bad_evals,
            "trained_seconds": trainer.elapsed(),
            "good": bool(good),
            "ranks": [],
        }
        for rank_tensors, rank_part in parts:
            tensors.update(rank_tensors)
            meta["ranks"].append(rank_part)
        written = save_checkpoint(path, tensors, meta)
        if keep is not None:
            prune(path.parent, keep, protect=written if good else trainer.guard.last_checkpoint)
    barrier(trainer.shard)
    return written


def config_differences(saved: dict[str, Any], current: dict[str, Any], allow: Sequence[str] = ()) -> list[str]:
    """Human-readable differences between two run configs (``allow``-ed trainer options ignored)."""
    diffs = []
    if saved.get("task") != current.get("task"):
        diffs.append(f"task: checkpoint {saved.get('task')!r}, now {current.get('task')!r}")
    for section in ("options", "train"):
        a, b = saved.get(section, {}), current.get(section, {})
        for key in sorted(set(a) | set(b)):
            if section == "train" and key in allow:
                continue
            if a.get(key, "<absent>") != b.get(key, "<absent>"):
                diffs.append(f"{key}: checkpoint {a.get(key, '<absent>')!r}, now {b.get(key, '<absent>')!r}")
    return diffs


def load_model_weights(model: nn.Module, tensors: dict[str, Tensor], path: Path) -> None:
    """Load ``model/...`` tensors into ``model``; missing, unexpected or misshapen keys raise CheckpointError."""
    weights = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    shapes = [f"{k}: checkpoint {tuple(weights[k].shape)}, model {tuple(own[k].shape)}" for k in own if k in weights and weights[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if shapes:
            parts.append("shapes differ: " + "; ".join(shapes[:5]))
        raise CheckpointError(f"checkpoint {path} does not fit this model: " + ", ".join(parts))
    model.load_state_dict(weights)


def _plateau_in_mode(state: dict[str, Any], scheduler: Any) -> dict[str, Any]:
    """A saved plateau schedule's ``state`` in the ``mode`` of this run's ``scheduler``. Checkpoints
    written before the plateau schedule took the task's mode stepped a maximised monitor negated in
    mode "min": the same schedule in mode "max" keeps the best value with its sign turned."""
    if not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) or state.get("mode", scheduler.mode) == scheduler.mode:
        return state
    return {**state, "mode": scheduler.mode, "best": -state["best"]}


def load_trainer(trainer: "Trainer", path: Path, *, allow: Sequence[str]) -> None:
    """Restore ``trainer`` from the checkpoint at ``path``; raises ``CheckpointError`` when it was
    written by a run with another config (beyond the ``allow``-ed trainer options) or another
    number of processes, or does not fit the model."""
    tensors, meta = load_checkpoint(path)
    diffs = config_differences(meta.get("run", {}), trainer.run_config(), allow)
    if diffs:
        raise CheckpointError(f"checkpoint {path} was written by a run with another config: " + "; ".join(diffs))
    if meta.get("world_size") != trainer.shard.world_size:
        raise CheckpointError(
            f"checkpoint {path} was written by {meta.get('world_size')} processes; resume it with the same number "
            f"(now {trainer.shard.world_size})"
        )
    load_model_weights(trainer.model, tensors, path)
    try:
        unpack_optimizer(trainer.optimizer, meta["optimizer"], tensors)
        trainer.scheduler.load_state_dict(_plateau_in_mode(meta["scheduler"], trainer.scheduler))
    except (KeyError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint {path}: cannot restore the optimiser or schedule ({err})") from None
    r = trainer.shard.rank
    part = meta["ranks"][r]
    trainer.batches.load_state_dict(part["batches"])
    trainer.state = unpack_tree(part["state"], tensors, trainer.device)
    trainer.guard.load_state_dict(meta["guard"])
    trainer.guard.last_checkpoint = str(path) if meta.get("good", True) else None
    trainer.step, trainer.best, trainer.bad_evals = int(meta["step"]), meta["best"], int(meta["bad_evals"])
    trainer.trained_seconds = float(meta.get("trained_seconds", 0.0))  # absent in checkpoints of older runs
    rng = {k: v for k, v in tensors.items() if k.startswith(f"rank{r}/rng/")}
    trainer._restore_rng = lambda: set_rng_state(part["rng"], rng, prefix=f"rank{r}/rng")
