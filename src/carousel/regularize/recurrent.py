r"""Recurrent dropout: a variational mask on the state ``h_{t-1}`` that feeds the recurrence."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .._checks import check_rate
from ..cells.base import Cell
from ..cells.lstm_explicit import LSTMExplicitStep
from .masks import MaskHolder
from .wrapper import CellWrapper


class RecurrentDropout(CellWrapper, MaskHolder):
    r"""Run ``cell`` with dropout on the recurrent input ``h_{t-1}``, one mask per sequence.

    .. math::
        m &= z / (1 - p), \quad z \sim \text{Bernoulli}(1 - p)^{H}, \text{ drawn once per sequence} \\
        s_t &= \text{cell.step}(px_t, (h_{t-1} \odot m, c_{t-1}, \ldots))

    The mask only thins what the recurrence reads: the state a step returns (and the output the
    layer above sees) is the cell's own. One mask of ``h`` serves every gate, the parametrisation
    with tied weights of Gal & Ghahramani 2016 ("A Theoretically Grounded Application of Dropout
    in Recurrent Neural Networks"). Use it when a recurrent network overfits: dropout redrawn at
    every step destroys long-term memory, a mask fixed for the sequence does not. Works with every
    carousel cell; evaluation mode (or ``p=0``) is the plain cell, which a fused kernel may run.

    Mask lifetime: ``project`` starts a sequence (runners call it once per run); the first ``step``
    draws the mask, later steps reuse it. A model called one step at a time starts a sequence at
    every call; wrap the whole sequence in ``carousel.hold_masks(model)`` to keep one mask.

    For fast paths: the step is the inner cell's reading ``h_{t-1} * m``, so ``explicit_step()`` is
    the inner cell's and ``recurrent_mask(B, like)`` (after ``project``) is ``m`` (B, H) for this
    sequence, None when inactive.
    """

    def __init__(self, cell: Cell, p: float = 0.25) -> None:
        super().__init__(cell)
        self.p = check_rate(p, "p")

    def _active(self) -> bool:
        return self.training and self.p > 0.0

    def new_sequence(self) -> None:
        """Forget the current mask (unless held): the next step draws a new one."""
        self._new_unit()

    def recurrent_mask(self, batch_size: int, like: Tensor) -> Tensor | None:
        """The mask ``m`` (B, H) of the current sequence, drawn on first use (held inside
        ``hold_masks``) on ``like``'s device and dtype; None when inactive."""
        if not self._active():
            return None
        return self._unit_mask((batch_size, self.state_sizes[0]), like, self.p)

    def explicit_step(self) -> Any:
        """The inner LSTM's step, reading ``h_{t-1} * recurrent_mask``; None around another wrapper's step
        (inside ``Zoneout`` the reference mixes the masked ``h_{t-1}`` into the state, which a step that
        only masks what the recurrence reads does not)."""
        step = self.cell.explicit_step()
        return step if isinstance(step, LSTMExplicitStep) else None

    def project(self, x: Tensor) -> Tensor:
        self.new_sequence()
        return self.cell.project(x)

    def step(self, px_t: Tensor, state: Any) -> Any:
        h = state[0]
        m = self.recurrent_mask(h.shape[0], h)
        if m is not None:
            state = type(state)(h * m, *state[1:])  # the recurrence reads h_{t-1} * m
        return self.cell.step(px_t, state)

    def extra_repr(self) -> str:
        return f"p={self.p}"
