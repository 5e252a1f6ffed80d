r"""Jacobian spectra: how the recurrence stretches or shrinks a perturbation over a lag.

The step Jacobian of a cell is :math:`J_t = \partial s_t / \partial s_{t-1}` (the whole state,
``(h, c)`` for an LSTM, side by side), and over a lag ``l`` ending at step ``t``

.. math::
    P_l = \frac{\partial s_t}{\partial s_{t-l}} = J_t J_{t-1} \cdots J_{t-l+1}.

Gradients travel back through :math:`P_l^\top`, so the singular values of ``P_l`` bound how
much of a gradient survives ``l`` steps: for a linear cell ``h_t = W h_{t-1} + u_t`` every
``J_t = W`` and ``P_l = W^l``. ``spectrum`` returns, per lag, the largest singular value, the
spectral radius and all singular values of ``P_l`` (means over the sequences of the batch);
``recurrent_radius`` the spectral radius of each square block of a cell's ``weight_hh``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils import parametrize

from .._checks import ShapeError, check_same_kind, shape_str
from ..cells.base import Cell
from ..cells.gru import GRUCell
from ..cells.lstm import LSTMCell
from .trace import flatten_state, unflatten_state


def step_jacobian(cell: Cell, px_t: Tensor, state: Any) -> Tensor:
    """``J[b] = d s_t[b] / d s_{t-1}[b]`` for every sequence ``b``: shape (B, S, S), ``S`` the flat state size.

    Sequences do not interact inside a step, so one batched reverse pass per output unit ``j``,
    seeded with ``e_j`` in every sequence, gives row ``j`` of every sequence's Jacobian; autograd
    runs the ``S`` passes at once (``is_grads_batched``).
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"expected a carousel Cell, got {type(cell).__name__}")
    ref = next(cell.parameters(), None)
    w = getattr(cell, "weight_ih", None)
    G = w.shape[0] if isinstance(w, Tensor) else "G"  # the width of cell.project's output
    if not isinstance(px_t, Tensor) or px_t.dim() != 2 or (isinstance(G, int) and px_t.shape[1] != G):
        got = shape_str(px_t.shape) if isinstance(px_t, Tensor) else type(px_t).__name__
        raise ShapeError(f"expected px_t = cell.project(x)[:, t] of shape (B, {G}), got {got}")
    if ref is not None:
        check_same_kind(px_t, ref, "px_t", f"{type(cell).__name__}'s parameters")
    state = cell.check_state(state, px_t.shape[0], like=px_t)
    with torch.enable_grad():
        flat = flatten_state(state).detach().requires_grad_(True)  # (B, S)
        out = flatten_state(cell.step(px_t.detach(), unflatten_state(cell, flat)))  # (B, S)
        B, S = out.shape
        seeds = torch.eye(S, dtype=out.dtype, device=out.device).unsqueeze(1).expand(S, B, S)  # (S_out, B, S_out)
        (jac,) = torch.autograd.grad(out, flat, grad_outputs=seeds, is_grads_batched=True)  # (S_out, B, S_in)
    return jac.permute(1, 0, 2)  # (B, S_out, S_in)


@dataclass
class Spectrum:
    """Spectra of ``P_l = d s_t / d s_{t-l}`` for lags ``l = 1 .. L`` (index ``l - 1``)."""

    top: Tensor  # (L,) largest singular value
    radius: Tensor  # (L,) spectral radius (largest |eigenvalue|)
    singular_values: Tensor  # (L, S) all singular values, largest first

    @property
    def lags(self) -> Tensor:
        return torch.arange(1, self.top.shape[0] + 1)


def spectrum(cell: Cell, px: list[Tensor], inputs: list[Any], *, max_lag: int | None = None, batch: int = 4) -> Spectrum:
    """Spectra of the Jacobian products ending at the last recorded step.

    ``px[k]`` and ``inputs[k]`` are the projected input and the incoming state of step ``k``
    (a ``LayerTrace``'s ``px`` and ``inputs``); the first ``batch`` sequences are used. Products
    are formed in float64 so that ``0.5 ** 200`` does not underflow.
    """
    T = len(px)
    if T == 0 or len(inputs) != T:
        raise ValueError(f"expected as many projected inputs as states, at least one; got {T} and {len(inputs)}")
    L = T if max_lag is None else min(int(max_lag), T)
    if L < 1:
        raise ValueError(f"expected max_lag >= 1, got {max_lag!r}")
    product = None
    tops, radii, values = [], [], []
    with parametrize.cached():  # computed weights (orthogonal, antisymmetric) evaluated once
        for k in range(T - 1, T - 1 - L, -1):
            state = type(inputs[k])(*(s[:batch] for s in inputs[k]))
            J = step_jacobian(cell, px[k][:batch], state).double()  # (B, S, S)
            product = J if product is None else torch.bmm(product, J)  # (B, S, S): P_l = P_{l-1} J_{t-l+1}
            sv, radius = _svdvals_and_radius(product)  # (B, S), (B,)
            values.append(sv.mean(0))
            tops.append(sv[:, 0].mean())
            radii.append(radius.mean())
    return Spectrum(top=torch.stack(tops), radius=torch.stack(radii), singular_values=torch.stack(values))


def _svdvals_and_radius(product: Tensor) -> tuple[Tensor, Tensor]:
    """Singular values (B, S) and spectral radius (B,) of each matrix; NaN for a matrix that is not
    finite (a diverged model) or on which LAPACK does not converge."""
    B, S, _ = product.shape
    sv = torch.full((B, S), math.nan, dtype=product.dtype)
    radius = torch.full((B,), math.nan, dtype=product.dtype)
    for b in range(B):
        if bool(torch.isfinite(product[b]).all()):
            try:
                sv[b] = torch.linalg.svdvals(product[b])
                radius[b] = torch.linalg.eigvals(product[b]).abs().max()
            except torch.linalg.LinAlgError:
                pass
    return sv, radius


def recurrent_blocks(cell: Cell) -> dict[str, Tensor]:
    """The square blocks of ``cell.weight_hh``, named by gate (``i, f, g, o``; ``r, z, n``; ``hh``).
    Raises ``TypeError`` for anything that is not a carousel cell (a layer: pass ``layer.cell``)."""
    if not isinstance(cell, Cell):
        hint = "; pass the cell the layer runs (layer.cell)" if isinstance(getattr(cell, "cell", None), Cell) else ""
        raise TypeError(f"expected a carousel Cell, got {type(cell).__name__}{hint}")
    while isinstance(getattr(cell, "cell", None), Cell):  # a wrapper: the cell it runs
        cell = cell.cell
    w = getattr(cell, "weight_hh", None)
    if not isinstance(w, Tensor):
        return {}  # gates from the input only (minGRU, minLSTM): no recurrent matrix
    w = w.detach()
    rows, cols = w.shape
    if cols != cell.hidden_size or rows % cols:
        return {}  # a projection makes the blocks rectangular: no eigenvalues
    if isinstance(cell, LSTMCell):
        names = ["i", "f", "g", "o"] if cell.forget_gate else ["i", "g", "o"]
    elif isinstance(cell, GRUCell):
        names = ["r", "z", "n"]
    else:
        names = ["hh"] if rows == cols else [f"block{j}" for j in range(rows // cols)]
    return dict(zip(names, w.split(cols, dim=0)))


def recurrent_radius(cell: Cell) -> dict[str, float]:
    """Spectral radius (largest |eigenvalue|) of each square block of the cell's recurrent matrix."""
    radius = {}
    for name, block in recurrent_blocks(cell).items():
        finite = bool(torch.isfinite(block).all())
        radius[name] = float(torch.linalg.eigvals(block.double()).abs().max()) if finite else math.nan  # NaN: diverged
    return radius
