"""AntisymmetricRNN (Chang, Chen, Haber & Chi, ICLR 2019), plain and gated."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .._checks import check_flag, check_number, factory_kwargs
from ..state import ElmanState
from .base import Cell


class AntisymmetricMatrix(nn.Module):
    """Parametrisation ``W -> W - W^T - gamma I``: eigenvalues with real part ``-gamma``."""

    def __init__(self, gamma: float) -> None:
        super().__init__()
        self.gamma = check_number(gamma, "gamma (the diffusion)", low=0.0)

    def forward(self, w: Tensor) -> Tensor:
        eye = torch.eye(w.shape[0], device=w.device, dtype=w.dtype)
        return w - w.t() - self.gamma * eye  # (H, H)


class AntisymmetricCell(Cell):
    r"""AntisymmetricRNN: a forward-Euler step of a stable ordinary differential equation.

    .. math::
        M &= W - W^\top - \gamma I \\
        h_t &= h_{t-1} + \epsilon \tanh(M h_{t-1} + V x_t + b)

    and, with ``gated=True``,

    .. math::
        z_t &= \sigma(M h_{t-1} + V_z x_t + b_z) \\
        h_t &= h_{t-1} + \epsilon\, z_t \odot \tanh(M h_{t-1} + V x_t + b)

    ``W - W^T`` has purely imaginary eigenvalues, so the Jacobian neither explodes nor vanishes
    quickly; ``gamma`` (diffusion) keeps the Euler step stable. ``cell.weight_hh`` is ``M``
    (computed from the raw ``W`` by a parametrisation); ``weight_ih`` stacks ``[V_z; V]`` when
    gated. The paper's defaults are of the order ``epsilon=0.01..1`` and ``gamma=0.01``.
    ``W`` starts from N(0, 1/H); ``V`` and ``b`` from torch's uniform initialisation.
    """

    state_type = ElmanState

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        epsilon: float = 0.1,
        gamma: float = 0.01,
        gated: bool = False,
        bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(input_size, hidden_size)
        kw = factory_kwargs(device, dtype)
        self.epsilon = check_number(epsilon, "epsilon (the step size)", low=0.0, low_open=True)
        self.gamma = check_number(gamma, "gamma (the diffusion)", low=0.0)
        self.gated = check_flag(gated, "gated")
        check_flag(bias, "bias")
        G = (2 if gated else 1) * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(G, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size, **kw))
        self.bias_ih = nn.Parameter(torch.empty(G, **kw)) if bias else None
        self.reset_parameters()
        parametrize.register_parametrization(self, "weight_hh", AntisymmetricMatrix(gamma))

    def reset_parameters(self) -> None:
        raw = self.parametrizations.weight_hh.original if parametrize.is_parametrized(self, "weight_hh") else self.weight_hh
        with torch.no_grad():
            bound = 1.0 / math.sqrt(self.hidden_size)
            nn.init.uniform_(self.weight_ih, -bound, bound)
            if self.bias_ih is not None:
                nn.init.uniform_(self.bias_ih, -bound, bound)
            nn.init.normal_(raw, 0.0, bound)

    def project(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih)  # (..., G)

    def step(self, px_t: Tensor, state: ElmanState) -> ElmanState:
        h = state.h
        mh = torch.mm(h, self.weight_hh.t())  # (B, H): M h
        if self.gated:
            x_z, x_v = px_t.chunk(2, dim=1)
            z = torch.sigmoid(mh + x_z)
            h = h + self.epsilon * z * torch.tanh(mh + x_v)
        else:
            h = h + self.epsilon * torch.tanh(mh + px_t)
        return ElmanState(h)

    def gates(self, px_t: Tensor, state: ElmanState) -> dict[str, Tensor]:
        """The gate ``z`` of one step (B, H) when ``gated=True``; no gates otherwise. For diagnostics."""
        if not self.gated:
            return {}
        x_z = px_t.chunk(2, dim=1)[0]  # (B, H)
        return {"z": torch.sigmoid(torch.mm(state.h, self.weight_hh.t()) + x_z)}

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, epsilon={self.epsilon}, gamma={self.gamma}, gated={self.gated}"


