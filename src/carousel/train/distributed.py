"""Data-parallel training under ``torchrun``: process group, device, ``DistributedDataParallel``.

The same script runs unchanged in one process or under ``torchrun --nproc_per_node=N``: when
``WORLD_SIZE`` > 1 the process group is opened (gloo on CPU, NCCL on GPU), each rank reads its own
shard of every global batch, and ``DistributedDataParallel`` averages the gradients in backward.
Communication besides that is limited to reporting: the logged loss is averaged over ranks, and
rank 0 gathers the per-rank random and recurrent states into the one checkpoint it writes.
Every rank evaluates the whole validation split itself (same weights, same result), so decisions
on the best model and early stopping agree without messages; only rank 0 writes files.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .task import Shard


def setup(device: str = "auto") -> tuple[Shard, torch.device]:
    """Open the process group when launched by ``torchrun``; return this rank's shard and device."""
    want_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for, but torch sees no CUDA device; use --device cpu")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if want_cuda else "gloo")
    shard = Shard(dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else Shard()
    if want_cuda:
        index = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(index)
        return shard, torch.device("cuda", index)
    return shard, torch.device("cpu")


def wrap(model: nn.Module, shard: Shard, device: torch.device) -> nn.Module:
    """``DistributedDataParallel(model)`` in a multi-process run, else ``model`` itself."""
    if shard.world_size == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def mean_over_ranks(values: list[float], shard: Shard, device: torch.device) -> list[float]:
    """The mean of each value over all ranks (identity in one process)."""
    if shard.world_size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return (t / shard.world_size).tolist()


def sum_over_ranks(value: int, shard: Shard, device: torch.device) -> int:
    if shard.world_size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return int(t.item())


def gather(obj: Any, shard: Shard) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if shard.world_size == 1:
        return [obj]
    out: list[Any] = [None] * shard.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(shard: Shard) -> None:
    if shard.world_size > 1:
        dist.barrier()
