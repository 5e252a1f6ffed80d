"""The optimiser and learning-rate schedule, from ``torch.optim``, as a ``TrainConfig`` names them."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor

from .config import TrainConfig


def build_optimizer(params: Iterable[Tensor], cfg: TrainConfig) -> torch.optim.Optimizer:
    params = list(params)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, mode: str = "min"):
    """A scheduler stepped once per training step (``plateau``: once per evaluation, on the monitored metric).

    ``plateau`` halves the rate after 3 evaluations in a row that do not improve the monitor by more
    than a relative 1e-4; ``mode`` says which way is better: "min" (a loss) or "max" (an accuracy or
    score; the metric is compared as it is, since a relative threshold on its negation would count
    a slightly worse value as better).

    ``cosine`` anneals to 0 at ``steps``; ``linear`` decays linearly to 0; ``step`` multiplies by
    0.1 at 50% and 75% of the run; ``warmup`` steps of linear warm-up from 1% of ``lr`` come first.
    """
    S = torch.optim.lr_scheduler
    rest = max(1, cfg.steps - cfg.warmup)
    if cfg.schedule == "plateau":
        if mode not in ("min", "max"):
            raise ValueError(f"expected mode 'min' or 'max' for the plateau schedule, got {mode!r}")
        return S.ReduceLROnPlateau(optimizer, mode=mode, factor=0.5, patience=2)
    if cfg.schedule == "constant":
        main = S.ConstantLR(optimizer, factor=1.0, total_iters=0)
    elif cfg.schedule == "cosine":
        main = S.CosineAnnealingLR(optimizer, T_max=rest)
    elif cfg.schedule == "linear":
        main = S.LinearLR(optimizer, start_factor=1.0, end_factor=0.0, total_iters=rest)
    elif cfg.schedule == "step":
        main = S.MultiStepLR(optimizer, milestones=[rest // 2, (3 * rest) // 4], gamma=0.1)
    else:
        raise ValueError(f"unknown schedule {cfg.schedule!r}")
    if cfg.warmup == 0:
        return main
    warm = S.LinearLR(optimizer, start_factor=0.01, end_factor=1.0, total_iters=cfg.warmup)
    return S.SequentialLR(optimizer, [warm, main], milestones=[cfg.warmup])
