r"""Zoneout: each unit of the state keeps its previous value with some probability."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._checks import check_rate
from ..cells.base import Cell
from .masks import Stochastic
from .wrapper import CellWrapper


class Zoneout(CellWrapper, Stochastic):
    r"""Run ``cell`` so that every unit of ``h`` (rate ``p_h``) and ``c`` (rate ``p_c``) may keep its value.

    Krueger et al. 2017, "Zoneout: Regularizing RNNs by Randomly Preserving Hidden Activations".
    With the new state ``\tilde s_t = \text{cell.step}(px_t, s_{t-1})``, for each field
    ``s`` of rate ``p``:

    .. math::
        \text{training:}\quad s_t &= d_t \odot s_{t-1} + (1 - d_t) \odot \tilde s_t,
            \qquad d_t \sim \text{Bernoulli}(p) \text{ per unit and step} \\
        \text{evaluation:}\quad s_t &= p\, s_{t-1} + (1 - p)\, \tilde s_t

    (the expectation of the training rule). Unlike dropout nothing is zeroed: a zoned-out unit
    passes its value, and its gradient, straight through the step, like a unit whose forget gate
    is fully open, so gradient flow through time improves. Use it on LSTMs (often a larger rate
    on ``c`` than on ``h``) and on GRU or Elman cells (``h`` only). ``p=0`` is the plain cell,
    ``p=1`` freezes the field. Masks are drawn afresh at every step, as in the paper, whether the
    cell is run by a runner or one step at a time (``hold_masks`` does not change this).

    ``p_c=None`` uses ``p_h`` for ``c`` when the cell has one; a ``p_c`` above 0 for a cell
    without ``c`` is an error.
    """

    def __init__(self, cell: Cell, p_h: float = 0.1, p_c: float | None = None) -> None:
        super().__init__(cell)
        self.p_h = check_rate(p_h, "p_h", allow_one=True)
        fields = cell.state_type._fields
        if p_c is None:
            p_c = self.p_h if "c" in fields else 0.0
        self.p_c = check_rate(p_c, "p_c", allow_one=True)
        if self.p_c > 0 and "c" not in fields:
            raise ValueError(
                f"p_c={p_c!r} was given but {cell.kind} has no cell state c (its state has {fields}); "
                "leave p_c out or set it to 0"
            )
        self._rates = {"h": self.p_h, "c": self.p_c}

    def _active(self) -> bool:
        return self.p_h > 0.0 or self.p_c > 0.0

    def step(self, px_t: Tensor, state: Any) -> Any:
        new = self.cell.step(px_t, state)
        fields = []
        for name, old, fresh in zip(self.state_type._fields, state, new):
            p = self._rates.get(name, 0.0)
            if p == 0.0:
                fields.append(fresh)
            elif self.training:
                d = torch.empty_like(fresh).bernoulli_(p).bool()  # (B, F): True keeps the old value
                fields.append(torch.where(d, old, fresh))
            else:
                fields.append(p * old + (1.0 - p) * fresh)
        return type(new)(*fields)

    def extra_repr(self) -> str:
        return f"p_h={self.p_h}, p_c={self.p_c}"
