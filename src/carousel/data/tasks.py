"""Long-term-dependency tasks, generated from a seed."""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_size


def adding_problem(num: int, length: int, *, seed: int = 0, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """The adding problem (Hochreiter & Schmidhuber 1997) in the form of Le et al. 2015.

    Each input is (T, 2): a value drawn from U(0, 1) and a marker that is 1 at exactly two
    positions, one in each half of the sequence; the target is the sum of the two marked values.
    Predicting the mean, 1, gives MSE 1/6 ~ 0.167 (the variance of a sum of two U(0, 1)): the
    chance baseline. Returns ``x`` (N, T, 2) and ``y`` (N, 1).
    """
    check_size(num, "num")
    check_size(length, "length", minimum=2)
    g = torch.Generator().manual_seed(seed)
    values = torch.rand(num, length, generator=g, dtype=dtype)  # (N, T)
    half = length // 2
    first = torch.randint(0, half, (num,), generator=g)
    second = torch.randint(half, length, (num,), generator=g)
    markers = torch.zeros(num, length, dtype=dtype)
    rows = torch.arange(num)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=-1)  # (N, T, 2)
    y = (values * markers).sum(dim=1, keepdim=True)  # (N, 1)
    return x, y


ADDING_BASELINE_MSE = 1.0 / 6.0
