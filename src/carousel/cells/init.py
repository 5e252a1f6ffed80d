"""Initialisations of recurrent weights: torch's uniform start, a chosen spectral radius, rotations.

``set_spectral_radius_`` and ``henaff_rotations`` are the starts that the gradients study compares
(a tanh RNN at radius 0.9, 1.0, 1.1; an orthogonal RNN of 2x2 rotations).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .._checks import check_number, check_size


def uniform_init_(cell: nn.Module, hidden_size: int) -> None:
    """torch.nn's RNN initialisation: every parameter from U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size)
    for p in cell.parameters(recurse=False):
        nn.init.uniform_(p, -bound, bound)


def set_spectral_radius_(cell: nn.Module, rho: float) -> nn.Module:
    """Rescale ``cell.weight_hh`` (H, H) in place so that its largest |eigenvalue| is ``rho``.

    Raises ``ValueError`` for a radius that is not positive.
    """
    rho = check_number(rho, "spectral radius rho", low=0.0, low_open=True)
    with torch.no_grad():
        w = cell.weight_hh
        current = torch.linalg.eigvals(w.double()).abs().max().item()
        w.mul_(rho / current)
    return cell


def henaff_rotations(hidden_size: int, *, generator: torch.Generator | None = None) -> Tensor:
    """Block-diagonal orthogonal matrix (H, H) of 2x2 rotations by angles from U(-pi, pi) (a 1 for odd sizes).

    Henaff, Szlam & LeCun 2016, "Recurrent Orthogonal Networks and Long-Memory Tasks", section 4:
    such a start keeps every input alive for as long as its rotation takes to come back.
    """
    check_size(hidden_size, "hidden_size")
    theta = (torch.rand(hidden_size // 2, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi
    u = torch.eye(hidden_size, dtype=torch.float64)
    for j, a in enumerate(theta.tolist()):
        c, s = math.cos(a), math.sin(a)
        u[2 * j : 2 * j + 2, 2 * j : 2 * j + 2] = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    return u
