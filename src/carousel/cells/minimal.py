"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): gates from the input only.

Because no gate looks at ``h_{t-1}``, the recurrence is linear, ``h_t = a_t * h_{t-1} + b_t``,
and a parallel scan can run all steps at once; ``coefficients`` gives ``(a, b)`` for a scan.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_flag, factory_kwargs
from ..state import GRUState, MinLSTMState
from .base import Cell
from .init import uniform_init_
from .minimal_explicit import MinGRUCoefficients, MinLSTMCoefficients, normalised_gates


class _LinearRecurrenceCell(Cell):
    """Shared body: one input projection, ``step`` from ``coefficients``."""

    num_blocks = 0  # projections stacked in weight_ih

    def __init__(self, input_size: int, hidden_size: int, *, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size)
        kw = factory_kwargs(device, dtype)
        check_flag(bias, "bias")
        G = self.num_blocks * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(G, input_size, **kw))
        self.bias_ih = nn.Parameter(torch.empty(G, **kw)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        uniform_init_(self, self.hidden_size)

    def project(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih)  # (..., G)

    def linear_projection(self) -> tuple[Tensor, Tensor | None] | None:
        return (self.weight_ih, self.bias_ih) if type(self).project is _LinearRecurrenceCell.project else None

    def scan_unsupported(self) -> str | None:
        if not self.keeps_math_of(_LinearRecurrenceCell):
            return f"scan needs the step h = a * h + b of coefficients(px); {self.kind} changes its step"
        return None  # h_t = a_t * h_{t-1} + b_t: coefficients(px) is the whole recurrence

    def step(self, px_t: Tensor, state):
        a, b = self.coefficients(px_t)  # (B, H) each
        return self.state_type(a * state.h + b)


class MinGRUCell(_LinearRecurrenceCell):
    r"""minGRU: the GRU without reset gate and without ``h_{t-1}`` in its gates.

    .. math::
        z_t &= \sigma(W_z x_t + b_z), \quad \tilde h_t = W_h x_t + b_h \\
        h_t &= (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

    ``weight_ih`` stacks ``[W_z; W_h]`` (2H, I).
    """

    state_type = GRUState
    num_blocks = 2

    def coefficients(self, px: Tensor) -> tuple[Tensor, Tensor]:
        k, h_tilde = px.chunk(2, dim=-1)  # (..., H) each
        z = torch.sigmoid(k)
        return 1 - z, z * h_tilde

    def explicit_coefficients(self) -> MinGRUCoefficients | None:
        """``coefficients`` with its derivative written out, for the scan runner."""
        return MinGRUCoefficients() if type(self).coefficients is MinGRUCell.coefficients else None

    def gates(self, px_t: Tensor, state: GRUState) -> dict[str, Tensor]:
        """The update gate ``z`` of one step (B, H); it reads only the input. For diagnostics."""
        return {"z": torch.sigmoid(px_t.chunk(2, dim=-1)[0])}


class MinLSTMCell(_LinearRecurrenceCell):
    r"""minLSTM: forget and input gates from ``x_t`` only, normalised to sum to one.

    .. math::
        f_t &= \sigma(W_f x_t + b_f), \quad i_t = \sigma(W_i x_t + b_i), \quad \tilde h_t = W_h x_t + b_h \\
        f'_t &= f_t / (f_t + i_t), \quad i'_t = i_t / (f_t + i_t) \\
        h_t &= f'_t \odot h_{t-1} + i'_t \odot \tilde h_t

    The normalisation makes the scale of ``h`` independent of time (the paper's
    time-independence). ``weight_ih`` stacks ``[W_f; W_i; W_h]`` (3H, I). The normalised gates are
    computed in log space, ``f' = \sigma(\log \sigma(k_f) - \log \sigma(k_i))`` (the same value; the
    paper's appendix computes minLSTM in log space too), so that two sigmoids that underflow to 0
    (``k = -200`` in float32) still give their ratio instead of 0/0.
    """

    state_type = MinLSTMState
    num_blocks = 3

    def coefficients(self, px: Tensor) -> tuple[Tensor, Tensor]:
        kf, ki, h_tilde = px.chunk(3, dim=-1)  # (..., H) each
        return normalised_gates(kf, ki)[0], normalised_gates(ki, kf)[0] * h_tilde

    def explicit_coefficients(self) -> MinLSTMCoefficients | None:
        """``coefficients`` with its derivative written out, for the scan runner."""
        return MinLSTMCoefficients() if type(self).coefficients is MinLSTMCell.coefficients else None

    def gates(self, px_t: Tensor, state: MinLSTMState) -> dict[str, Tensor]:
        """The normalised gates ``f'`` and ``i'`` of one step (named ``f``, ``i``), each (B, H), summing
        to one; they read only the input. For diagnostics."""
        kf, ki, _ = px_t.chunk(3, dim=-1)  # (B, H) each
        return {"f": normalised_gates(kf, ki)[0], "i": normalised_gates(ki, kf)[0]}
