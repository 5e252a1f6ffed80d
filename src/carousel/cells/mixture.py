r"""A recurrent mixture of experts: K cells share one state and a gate mixes their updates per step.

The gating network of Jacobs, Jordan, Nowlan & Hinton 1991 ("Adaptive Mixtures of Local Experts"),
read at every time step from the input and the previous state, and the load-balancing
("importance") loss of Shazeer et al. 2017 ("Outrageously Large Neural Networks: The
Sparsely-Gated Mixture-of-Experts Layer", eq. 6-7), shared with ``carousel.layers.MixtureOfExperts``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import ShapeError, check_flag, shape_str
from .base import Cell, check_cell

__all__ = ["MixtureCell", "importance_loss"]


def importance_loss(gates: Tensor) -> Tensor:
    r"""Squared coefficient of variation of the per-expert gate sums (Shazeer et al. 2017, eq. 6-7).

    .. math::
        \text{Importance}_k = \sum_n G_k(x_n), \qquad
        L_\text{importance} = \text{CV}(\text{Importance})^2 = \frac{\operatorname{Var}_k \text{Importance}_k}
        {(\operatorname{mean}_k \text{Importance}_k)^2}

    ``gates``: (N, K) gate values (or (..., K), flattened over the leading dimensions); the
    variance is the population variance over the K experts. Returns a scalar: 0 when every expert
    receives the same total gate, larger the more unequal the use. The paper scales it by a
    hand-set weight ``w_importance`` before adding it to the task loss; carousel returns it
    unweighted. Raises ``TypeError`` for a non-tensor and ``ValueError`` for a 0-d tensor.
    """
    if not isinstance(gates, Tensor):
        raise TypeError(f"expected gates to be a tensor of shape (N, K), got {type(gates).__name__}")
    if gates.dim() < 1:
        raise ShapeError(f"expected gates of shape (N, K), got {shape_str(gates.shape)}")
    importance = gates.reshape(-1, gates.shape[-1]).sum(0)  # (K,)
    mean = importance.mean()
    var = (importance - mean).pow(2).mean()
    return var / (mean.pow(2) + torch.finfo(importance.dtype).eps)


class MixtureCell(Cell):
    r"""K carousel cells that share the state, their updates mixed by a softmax gate at every step.

    .. math::
        g_t &= \operatorname{softmax}(W_{gx} x_t + W_{gh} h_{t-1} + b_g) \in \Delta^{K-1} \\
        s_t &= \sum_{k=1}^{K} g_{t,k} \cdot \text{cell}_k(x_t, s_{t-1})

    where ``s`` is the whole state: for LSTM-like cells every field (``h`` and ``c``) is mixed with
    the same weights. The gate is the gating network of Jacobs, Jordan, Nowlan & Hinton 1991
    ("Adaptive Mixtures of Local Experts"), here conditioned on the input and the previous output
    ``h_{t-1}``. One cell gives exactly that cell (its gate is 1).

    ``cells``: a non-empty list of carousel cells with the same ``input_size`` I, the same state
    fields and the same state sizes (an ``LSTMCell`` mixes with ``LSTMCell``s; a ``GRUCell`` with
    an ``ElmanCell`` of the same width, both one field ``h``). Shapes: ``project`` (..., I) ->
    (..., sum_k G_k + K); ``step`` (B, G) and the state (each field (B, F)) -> the new state.

    It runs on the reference runner (what ``backend="auto"`` picks for it; the fused, explicit and
    scan backends serve none of its steps), inside ``carousel.layers.Recurrent`` and stacks.

    After a run, ``step_gates`` holds the gates of every step taken since the last ``project``
    (a list of (B, K) tensors, steps past a sequence's length included) and ``aux_loss`` is
    :func:`importance_loss` over them, the load-balancing term of Shazeer et al. 2017.

    Raises ``TypeError`` for a ``cells`` that is not a list of carousel cells, ``ValueError`` for
    an empty list or cells whose input sizes, state fields or state sizes differ.
    """

    def __init__(self, cells: Sequence[Cell], *, bias: bool = True) -> None:
        if isinstance(cells, Cell) or not isinstance(cells, (list, tuple, nn.ModuleList)):
            raise TypeError(f"expected cells to be a list of carousel cells, got {type(cells).__name__}")
        if len(cells) == 0:
            raise ValueError("expected at least one cell in the mixture, got an empty list")
        cells = [check_cell(c, f"cells[{k}]") for k, c in enumerate(cells)]
        check_flag(bias, "bias")
        first = cells[0]
        for k, c in enumerate(cells[1:], start=1):
            if c.input_size != first.input_size:
                raise ValueError(f"expected every cell to take input_size {first.input_size} (that of cells[0]), "
                                 f"got {c.input_size} for cells[{k}] ({c.kind})")
            if c.state_type._fields != first.state_type._fields or tuple(c.state_sizes) != tuple(first.state_sizes):
                raise ValueError(
                    f"expected every cell to have the state of cells[0] ({first.kind}: fields {first.state_type._fields}, "
                    f"sizes {tuple(first.state_sizes)}), got fields {c.state_type._fields}, sizes {tuple(c.state_sizes)} "
                    f"for cells[{k}] ({c.kind})")
        super().__init__(first.input_size, first.hidden_size)
        self.cells = nn.ModuleList(cells)
        self.state_type = first.state_type
        self._state_sizes = tuple(first.state_sizes)
        ref = first._reference_tensor()
        kw = {"device": ref.device, "dtype": ref.dtype if ref.is_floating_point() else None}
        K, H = len(cells), self._state_sizes[0]
        self.weight_gx = nn.Parameter(torch.empty(K, self.input_size, **kw))
        self.weight_gh = nn.Parameter(torch.empty(K, H, **kw))
        self.bias_g = nn.Parameter(torch.empty(K, **kw)) if bias else None
        self._splits: list[int] | None = None
        self.step_gates: list[Tensor] = []
        self.reset_gate_parameters()

    @property
    def num_experts(self) -> int:
        """K, the number of cells mixed."""
        return len(self.cells)

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return self._state_sizes

    def reset_gate_parameters(self) -> None:
        """Uniform in [-1/sqrt(H), 1/sqrt(H)] (torch's default for recurrent weights) for the gate."""
        bound = 1.0 / math.sqrt(self._state_sizes[0])
        for p in (self.weight_gx, self.weight_gh, self.bias_g):
            if p is not None:
                nn.init.uniform_(p, -bound, bound)

    def project(self, x: Tensor) -> Tensor:
        """``(..., I) -> (..., sum_k G_k + K)``: every cell's projection, then the gate's input half.
        Starts a sequence: clears ``step_gates``."""
        parts = [c.project(x) for c in self.cells]
        parts.append(F.linear(x, self.weight_gx, self.bias_g))  # (..., K)
        self._splits = [p.shape[-1] for p in parts]
        self.step_gates = []
        return torch.cat(parts, dim=-1)

    def mixture_weights(self, px_t: Tensor, state: Any) -> Tensor:
        """The gate ``g_t`` (B, K) of one step, rows summing to 1, from ``px_t`` (B, G) and the state."""
        return torch.softmax(px_t[:, -self.num_experts:] + F.linear(state[0], self.weight_gh), dim=-1)

    def step(self, px_t: Tensor, state: Any) -> Any:
        if self._splits is None or sum(self._splits) != px_t.shape[-1]:
            raise RuntimeError("MixtureCell.step needs px_t from this cell's project (call project first)")
        parts = px_t.split(self._splits, dim=-1)
        g = self.mixture_weights(px_t, state)  # (B, K)
        self.step_gates.append(g)
        mixed = None
        for k, (cell, p) in enumerate(zip(self.cells, parts)):
            new = cell.step(p, cell.state_type(*state))
            w = g[:, k : k + 1]  # (B, 1)
            term = [w * f for f in new]
            mixed = term if mixed is None else [m + t for m, t in zip(mixed, term)]
        return self.state_type(*mixed)

    @property
    def aux_loss(self) -> Tensor:
        """:func:`importance_loss` of the gates of every step since the last ``project`` (a scalar);
        ``RuntimeError`` before any step."""
        if not self.step_gates:
            raise RuntimeError("MixtureCell.aux_loss is defined after a run (no step taken since the last project)")
        return importance_loss(torch.cat(self.step_gates, dim=0))

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, num_experts={self.num_experts}"
