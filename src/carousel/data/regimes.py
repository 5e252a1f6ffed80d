r"""Regime-switching sequences, drawn from a seed: a hidden Markov chain of K regimes, each an affine map.

.. math::
    r_0 &\sim \text{Uniform}\{0..K-1\}, \qquad
    r_t = \begin{cases} r_{t-1} & \text{with probability } p_\text{stay} \\
                        \text{one of the other } K-1 \text{ uniformly} & \text{otherwise} \end{cases} \\
    x_0 &\sim \mathcal N(0, 1), \qquad x_t = a_{r_t}\, x_{t-1} + b_{r_t} + \sigma\, \varepsilon_t, \quad \varepsilon_t \sim \mathcal N(0, 1)

The regime ``r_t`` governs the step that produces ``x_t``. Every map is contracting (``|a| < 1``),
so values stay bounded; the maps have different slopes and fixed points, so a short window of
values tells the regime apart. This is the switching autoregressive process of Hamilton 1989
("A New Approach to the Economic Analysis of Nonstationary Time Series and the Business Cycle"),
with first-order affine regimes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .._checks import check_number, check_size

# (slope a, intercept b) of each regime: fixed points b / (1 - a) of 1.5, 0, -1.6 and 0.67.
REGIME_MAPS: tuple[tuple[float, float], ...] = ((0.8, 0.3), (-0.8, 0.0), (0.5, -0.8), (-0.5, 1.0))
MAX_REGIMES = len(REGIME_MAPS)


class RegimeSequences(NamedTuple):
    """``values`` (N, T) float32 x_t; ``regimes`` (N, T) int64 r_t; ``noise`` (N, T) float32 the
    draws ``sigma * eps_t`` (column 0 holds x_0's own draw)."""

    values: Tensor
    regimes: Tensor
    noise: Tensor


def regime_maps(num_regimes: int) -> Tensor:
    """The (K, 2) table of (slope, intercept) of the first ``num_regimes`` regimes (K in [2, 4]);
    ``ValueError`` otherwise."""
    K = check_size(num_regimes, "num_regimes", minimum=2)
    if K > MAX_REGIMES:
        raise ValueError(f"expected num_regimes in [2, {MAX_REGIMES}] (the regimes defined), got {K}")
    return torch.tensor(REGIME_MAPS[:K], dtype=torch.float32)


def regime_switching(num_sequences: int, length: int, *, num_regimes: int = 3, stay: float = 0.95,
                     noise: float = 0.1, seed: int = 0) -> RegimeSequences:
    """``num_sequences`` sequences of ``length`` steps from ``seed`` (see the module docstring).

    ``num_regimes`` K in [2, 4]; ``stay`` the probability p_stay in [0, 1] that the regime is kept
    from one step to the next; ``noise`` the standard deviation sigma >= 0 of the additive noise.
    Raises ``TypeError`` for non-numbers and ``ValueError`` for values out of range.
    """
    n = check_size(num_sequences, "num_sequences")
    T = check_size(length, "length", minimum=2)
    maps = regime_maps(num_regimes)
    K = maps.shape[0]
    p = check_number(stay, "stay", low=0.0, high=1.0)
    sigma = check_number(noise, "noise", low=0.0)
    g = torch.Generator().manual_seed(int(seed))
    regimes = torch.empty(n, T, dtype=torch.int64)
    regimes[:, 0] = torch.randint(K, (n,), generator=g)
    switch = torch.rand(n, T, generator=g) >= p  # column 0 unused
    shift = torch.randint(1, K, (n, T), generator=g)  # a move to one of the other K - 1 regimes
    for t in range(1, T):
        regimes[:, t] = torch.where(switch[:, t], (regimes[:, t - 1] + shift[:, t]) % K, regimes[:, t - 1])
    eps = torch.randn(n, T, generator=g)
    draws = sigma * eps
    draws[:, 0] = eps[:, 0]  # x_0 ~ N(0, 1)
    values = torch.empty(n, T)
    values[:, 0] = draws[:, 0]
    a, b = maps[regimes, 0], maps[regimes, 1]  # (N, T) each
    for t in range(1, T):
        values[:, t] = a[:, t] * values[:, t - 1] + b[:, t] + draws[:, t]
    return RegimeSequences(values, regimes, draws)
