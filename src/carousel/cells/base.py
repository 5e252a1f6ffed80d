"""The cell contract: the math of one time step, and nothing about time.

A cell turns the input of every time step into gate pre-activations in one matrix product
(``project``), then advances its state one step at a time (``step``). Runners (``carousel.runners``)
decide how the steps meet time; layers (``carousel.layers``) decide what is built around them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .._checks import ShapeError, check_instance, check_same_kind, check_size, shape_str

__all__ = ["Cell", "torch_form_weights", "check_same_kind", "check_cell"]


class Cell(nn.Module):
    """Base class of every recurrent cell.

    Subclasses set ``state_type`` (a ``NamedTuple`` whose first field is ``h``), define
    ``project`` and ``step``, and may override ``state_sizes`` when a field is not ``hidden_size``
    wide (an LSTM with a projection). What a runner may ask a cell (a fused kernel, an explicit
    step, a mask on ``h_{t-1}``, scan coefficients, gates) is declared below with a default that
    offers nothing; a cell that offers more overrides it.
    """

    state_type: type = NamedTuple  # replaced by every subclass

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size = check_size(input_size, "input_size")
        self.hidden_size = check_size(hidden_size, "hidden_size")

    # ---- sizes -------------------------------------------------------------------------------
    @property
    def state_sizes(self) -> tuple[int, ...]:
        """Feature size of each state field, in field order."""
        return (self.hidden_size,) * len(self.state_type._fields)

    @property
    def output_size(self) -> int:
        """Size of ``h``, the output the layer above sees."""
        return self.state_sizes[0]

    # ---- the contract ------------------------------------------------------------------------
    def project(self, x: Tensor) -> Tensor:
        """Input half of every gate, for all time steps at once: ``(..., I) -> (..., G)``."""
        raise NotImplementedError

    def step(self, px_t: Tensor, state: Any) -> Any:
        """One time step from the projected input ``px_t`` of shape ``(B, G)``."""
        raise NotImplementedError

    def initial_state(self, batch_size: int, *, device: torch.device | None = None, dtype: torch.dtype | None = None):
        """All-zero state for ``batch_size`` sequences (an integer >= 0)."""
        check_size(batch_size, "batch_size", minimum=0)
        ref = self._reference_tensor()
        device = ref.device if device is None else device
        dtype = ref.dtype if dtype is None else dtype
        return self.state_type(*(torch.zeros(batch_size, n, device=device, dtype=dtype) for n in self.state_sizes))

    def forward(self, x_t: Tensor, state: Any = None):
        """One step from a raw input ``x_t`` of shape ``(B, I)``; returns the new state."""
        if not isinstance(x_t, Tensor):
            raise TypeError(f"expected a one-step input tensor of shape (B, {self.input_size}), got {type(x_t).__name__}")
        if x_t.dim() != 2 or x_t.shape[-1] != self.input_size:
            raise ShapeError(f"expected a one-step input of shape (B, {self.input_size}), got {shape_str(x_t.shape)}")
        if not x_t.is_floating_point():
            raise ValueError(f"expected a floating-point one-step input, got dtype {x_t.dtype}")
        state = self.check_state(state, x_t.shape[0], like=self.check_input(x_t))
        return self.step(self.project(x_t), state)

    # ---- what runners ask (``carousel.runners``); each default says "not offered" -------------
    def fused_mode(self) -> tuple[str | None, str | None]:
        """The torch fused kernel that computes exactly this cell, for the ``"fused"`` backend.

        Returns ``(mode, None)`` with ``mode`` one of ``"lstm"``, ``"gru"``, ``"rnn_tanh"``,
        ``"rnn_relu"`` (the kernel then reads the torch-named parameters ``weight_ih``,
        ``weight_hh``, ``bias_ih``, ``bias_hh`` and, for a projection, ``weight_hr``), or
        ``(None, reason)`` saying in plain words why no kernel computes this cell.
        """
        return None, f"fused needs an Elman, LSTM or GRU cell in torch's form; {self.kind} is none of these"

    def fused_weights(self) -> list[Tensor]:
        """The tensors the kernel of ``fused_mode`` reads, in its order: ``weight_ih, weight_hh[,
        bias_ih, bias_hh][, weight_hr]``. Call inside ``parametrize.cached()`` so that a computed
        weight is evaluated once."""
        raise NotImplementedError(self.fused_mode()[1])

    def explicit_step(self) -> Any:
        """The step with its derivative written out, for the ``"explicit"`` backend, or None.

        An object with ``tensors``, ``begin``, ``forward``, ``backward`` and ``finish`` (the protocol
        is in ``carousel.runners.explicit``); read inside ``parametrize.cached()``.
        """
        return None

    def recurrent_mask(self, batch_size: int, like: Tensor) -> Tensor | None:
        """What this cell does to ``h_{t-1}`` before its recurrence reads it, for the current sequence.

        ``None`` (the default): the recurrence reads ``h_{t-1}`` itself. A (B, F) tensor ``m``: it
        reads ``h_{t-1} * m`` (recurrent dropout), while the state and the outputs keep ``h_t``.
        Runners ask after ``project`` (which starts a sequence).
        """
        return None

    def scan_unsupported(self) -> str | None:
        """None when ``coefficients(px)`` gives this cell's whole recurrence (linear in ``h``), so
        the ``"scan"`` backend can run it; else the reason it cannot."""
        return f"scan needs a cell whose recurrence is linear in h (with coefficients(px)); {self.kind} has none"

    def coefficients(self, px: Tensor) -> tuple[Tensor, Tensor]:
        """``(a, b)`` with ``h_t = a_t * h_{t-1} + b_t`` for projected inputs ``px`` (..., G); each (..., H).

        Only cells whose ``scan_unsupported()`` is None define it.
        """
        raise NotImplementedError(self.scan_unsupported())

    def linear_projection(self) -> tuple[Tensor, Tensor | None] | None:
        """``(weight, bias)`` when ``project(x)`` is exactly ``F.linear(x, weight, bias)`` (read inside
        ``parametrize.cached()``), so that a runner may fuse the projection into its own kernel; else None."""
        return None

    def explicit_coefficients(self) -> Any:
        """``coefficients`` with the derivative written out (``forward(px) -> (a, b)``,
        ``backward(grad_a, grad_b, grad_px)``), for the scan runner; None to let autograd differentiate."""
        return None

    def gates(self, px_t: Tensor, state: Any) -> dict[str, Tensor]:
        """The gates of one step as ``step`` computes them, by name, each (B, H) in (0, 1); for
        diagnostics. ``{}`` for a cell without gates."""
        return {}

    def keeps_math_of(self, cls: type) -> bool:
        """Whether this cell's ``project`` and ``step`` are those of ``cls`` (a subclass may change them)."""
        return type(self).project is cls.project and type(self).step is cls.step

    @property
    def kind(self) -> str:
        """The cell's class name for messages (without the ``Parametrized`` prefix that a parametrisation adds)."""
        name, base = type(self).__name__, type(self).__bases__[0].__name__
        return base if name == "Parametrized" + base else name

    # ---- helpers shared by runners and layers ------------------------------------------------
    def check_state(self, state: Any, batch_size: int, *, like: Tensor | None = None):
        """Return ``state`` as this cell's state type, or a zero state when ``state`` is None.

        Accepts the state type itself, any tuple (or list) of tensors in its field order, or a bare
        tensor for one-field states. Raises ``TypeError`` for anything else (a dict, a tuple of
        per-layer states), ``ValueError`` (a ``ShapeError``) for a wrong number of fields or a wrong
        shape, and ``ValueError`` for a field of another dtype or device than ``like``; each names
        what was expected and what was given.
        """
        fields = self.state_type._fields
        if state is None:
            kw = {} if like is None else {"device": like.device, "dtype": like.dtype}
            return self.initial_state(batch_size, **kw)
        expected = ", ".join(f"{f}: (B={batch_size}, {n})" for f, n in zip(fields, self.state_sizes))
        if isinstance(state, Tensor) and len(fields) == 1:
            state = (state,)
        elif isinstance(state, list):
            state = tuple(state)
        if not isinstance(state, tuple) or not all(isinstance(s, Tensor) for s in state):
            nested = isinstance(state, tuple) and any(isinstance(s, tuple) for s in state)
            raise TypeError(
                f"expected a {self.state_type.__name__}({expected}) for {self.kind}, got {_describe(state)}"
                + ("; a stack's per-layer states go to the stack (Deep), one layer's state to its cell" if nested else "")
            )
        if len(state) != len(fields):
            raise ShapeError(
                f"expected a {self.state_type.__name__}({expected}) for {self.kind}, got {_describe(state)}"
            )
        for name, size, s in zip(fields, self.state_sizes, state):
            if s.dim() != 2 or s.shape[0] != batch_size or s.shape[1] != size:
                raise ShapeError(
                    f"expected state field {name!r} of shape ({batch_size}, {size}) for {self.kind}, "
                    f"got {shape_str(s.shape)}"
                )
            if like is not None:
                check_same_kind(s, like, f"state field {name!r}", "the input")
        return state if type(state) is self.state_type else self.state_type(*state)

    def check_input(self, x: Tensor) -> Tensor:
        """``x`` if it can meet this cell's parameters: the same device, and the same dtype unless
        autocast chooses the arithmetic; else ``ValueError`` naming both (as torch.nn's modules do)."""
        check_same_kind(x, self._reference_tensor(), "input", f"{self.kind}'s parameters")
        return x

    def _reference_tensor(self) -> Tensor:
        for p in self.parameters():
            return p
        for b in self.buffers():
            return b
        return torch.empty(0)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


_TORCH_TWINS = {"LSTMCell": "LSTMCell", "GRUCell": "GRUCell", "RNNCell": "ElmanCell"}


def _torch_cell_advice(value: object) -> str:
    twin = _TORCH_TWINS.get(type(value).__name__, "LSTMCell")
    return (f"torch.nn cells are not carousel cells; use carousel.{twin} (torch's parameters and state_dict keys), "
            "or a drop-in (carousel.LSTM, GRU, RNN) for a whole layer")


def check_cell(value: object, what: str = "cell") -> "Cell":
    """``value`` if it is a carousel ``Cell``, else ``TypeError`` saying what was given and what to use
    instead (a torch.nn cell: its carousel twin; a layer: its cell)."""
    return check_instance(value, Cell, what, "a carousel Cell (such as carousel.LSTMCell(4, 8))", hints=(
        (nn.RNNCellBase, _torch_cell_advice(value)),
        (lambda v: isinstance(v, nn.Module) and (hasattr(v, "forward_padded") or hasattr(v, "cells")) or isinstance(v, nn.RNNBase),
         "that is a layer, which runs a cell over time; pass a cell, or use the layer itself"),
    ))


def torch_form_weights(cell: Cell) -> list[Tensor]:
    """``weight_ih, weight_hh[, bias_ih, bias_hh]`` of a cell with torch's parameter names."""
    weights = [cell.weight_ih, cell.weight_hh]
    if cell.bias_ih is not None:
        weights += [cell.bias_ih, cell.bias_hh]
    return weights


def _describe(state: Any) -> str:
    if isinstance(state, Tensor):
        return f"a tensor of shape {shape_str(state.shape)}"
    if isinstance(state, tuple):
        inner = ", ".join(shape_str(s.shape) if isinstance(s, Tensor) else type(s).__name__ for s in state)
        return f"{type(state).__name__}({inner})"
    return type(state).__name__
