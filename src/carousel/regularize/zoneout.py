r"""Zoneout: each unit of the state keeps its previous value with some probability."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._checks import check_rate
from ..cells.base import Cell
from ..cells.lstm_explicit import LSTMExplicitStep
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
    cell is run by a runner or one step at a time (``hold_masks`` does not change this); around an
    LSTM the ``"explicit"`` backend serves it (``ZoneoutExplicitStep``; CUDA graphs on a GPU) and
    draws a whole run's masks at once (``keep_masks``), the reference loop step by step: the same
    distribution, other random numbers for one seed.

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

    def explicit_step(self) -> Any:
        """The inner LSTM's explicit step with zoneout around it (``ZoneoutExplicitStep``), or None
        when the inner cell offers no LSTM step."""
        inner = self.cell.explicit_step()
        return ZoneoutExplicitStep(self, inner) if isinstance(inner, LSTMExplicitStep) else None

    def recurrent_mask(self, batch_size: int, like: Tensor) -> Tensor | None:
        return self.cell.recurrent_mask(batch_size, like)  # e.g. recurrent dropout inside

    def keep_masks(self, steps: int, state: Any, like: Tensor) -> dict[str, Tensor]:
        """Training mode: per field of rate above 0, which units keep their previous value at each of
        ``steps`` steps, (T, B, F) bool, drawn at once for a whole run (the explicit backend; the
        reference loop draws step by step, with the same distribution)."""
        return {
            name: torch.empty((steps, *s.shape), dtype=like.dtype, device=like.device).bernoulli_(self._rates[name]).bool()
            for name, s in zip(self.state_type._fields, state)
            if self._rates.get(name, 0.0) > 0.0
        }


class ZoneoutExplicitStep:
    r"""The explicit step of ``Zoneout(cell)`` for an LSTM ``cell``: the inner step, then each field mixed
    with its previous value (see :class:`Zoneout`); the protocol is in ``carousel.runners.explicit``.

    Backward: with ``d_t`` the keep mask (training) or ``p`` (evaluation), the gradient ``g`` reaching
    ``s_t`` goes ``(1 - d_t) g`` to the inner step's new state and ``d_t g`` straight to ``s_{t-1}``.
    The inner step keeps the ``c`` entering each step (``track_c_in``), which is no longer the
    previous step's new ``c``.
    """

    def __init__(self, zoneout: Zoneout, inner: Any) -> None:
        self.zoneout, self.inner = zoneout, inner
        inner.track_c_in = True
        self.rates = [zoneout._rates.get(name, 0.0) for name in zoneout.state_type._fields]  # for h, c
        self.training = zoneout.training

    @property
    def tensors(self) -> tuple[Tensor, ...]:
        return self.inner.tensors

    def begin(self, px: Tensor, tensors: tuple[Tensor, ...], state: tuple[Tensor, ...], keep: bool,
              h_mask: Tensor | None = None) -> None:
        self.inner.begin(px, tensors, state, keep, h_mask)
        masks = self.zoneout.keep_masks(px.shape[1], state, px) if self.training else {}
        self.masks = [masks.get(name) for name in self.zoneout.state_type._fields]  # (T, B, F) bool or None

    def _mix(self, k: int, t: int, old: Tensor, new: Tensor) -> Tensor:
        p = self.rates[k]
        if p == 0.0:
            return new
        if self.training:
            return torch.where(self.masks[k][t], old, new)
        return p * old + (1.0 - p) * new

    def _split(self, k: int, t: int, g: Tensor) -> tuple[Tensor, Tensor | None]:
        """The gradient reaching field k of ``s_t``, split into (to the new state, straight to ``s_{t-1}``)."""
        p = self.rates[k]
        if p == 0.0:
            return g, None
        if self.training:
            kept = self.masks[k][t]
            return torch.where(kept, 0.0, g), torch.where(kept, g, 0.0)
        return (1.0 - p) * g, p * g

    def forward(self, t: int, px_t: Tensor, state: tuple[Tensor, ...], h_out: Tensor | None = None) -> tuple[Tensor, Tensor]:
        new = self.inner.forward(t, px_t, state, None)
        h, c = (self._mix(k, t, old, fresh) for k, (old, fresh) in enumerate(zip(state, new)))
        if h_out is not None:
            h = h_out.copy_(h)
        return h, c

    def backward(self, t: int, grad: list[Tensor]) -> list[Tensor]:
        parts = [self._split(k, t, g) for k, g in enumerate(grad)]
        through = self.inner.backward(t, [to_new for to_new, _ in parts])
        return [g if direct is None else g + direct for g, (_, direct) in zip(through, parts)]

    def finish(self, h_prev: Tensor) -> tuple[Tensor, list[Tensor]]:
        return self.inner.finish(h_prev)
