"""Gated recurrent units: torch's form and the original form of Cho et al. (2014)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_choice, check_flag, factory_kwargs
from ..state import GRUState
from .base import Cell, torch_form_weights
from .init import uniform_init_


class GRUCell(Cell):
    r"""Gated recurrent unit, gate order ``r, z, n`` as in ``torch.nn.GRUCell``.

    ``variant="torch"`` (the default; also cuDNN's) applies the reset gate after the recurrent
    product:

    .. math::
        r &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n &= \tanh(W_{in} x_t + b_{in} + r \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t &= (1 - z) \odot n + z \odot h_{t-1}

    ``variant="cho"`` is the original form of Cho et al. 2014 ("Learning Phrase Representations
    using RNN Encoder-Decoder for Statistical Machine Translation"), the reset gate applied to
    ``h_{t-1}`` before the product: ``n = tanh(W_in x_t + b_in + W_hn (r * h_{t-1}) + b_hn)``.
    """

    state_type = GRUState

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        bias: bool = True,
        variant: str = "torch",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(input_size, hidden_size)
        kw = factory_kwargs(device, dtype)
        check_flag(bias, "bias")
        self.variant = check_choice(variant, ("torch", "cho"), "GRU variant")
        H = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(3 * H, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(3 * H, H, **kw))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(3 * H, **kw))
            self.bias_hh = nn.Parameter(torch.empty(3 * H, **kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        uniform_init_(self, self.hidden_size)

    def project(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias_ih)  # (..., 3H)

    def step(self, px_t: Tensor, state: GRUState) -> GRUState:
        h = state.h
        H = self.hidden_size
        x_r, x_z, x_n = px_t.chunk(3, dim=1)  # each (B, H)
        if self.variant == "torch":
            gh = F.linear(h, self.weight_hh, self.bias_hh)  # (B, 3H)
            h_r, h_z, h_n = gh.chunk(3, dim=1)
            r = torch.sigmoid(x_r + h_r)
            z = torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + r * h_n)
        else:
            b_rz = None if self.bias_hh is None else self.bias_hh[: 2 * H]
            b_n = None if self.bias_hh is None else self.bias_hh[2 * H :]
            h_r, h_z = F.linear(h, self.weight_hh[: 2 * H], b_rz).chunk(2, dim=1)  # (B, H) each
            r = torch.sigmoid(x_r + h_r)
            z = torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + F.linear(r * h, self.weight_hh[2 * H :], b_n))
        h = (1 - z) * n + z * h  # (B, H)
        return GRUState(h)

    def gates(self, px_t: Tensor, state: GRUState) -> dict[str, Tensor]:
        """The reset and update gates ``r`` and ``z`` of one step, each (B, H) in (0, 1), as ``step``
        computes them. For diagnostics; ``step`` itself does not call it."""
        H = self.hidden_size
        x_r, x_z, _ = px_t.chunk(3, dim=1)  # each (B, H)
        b_rz = None if self.bias_hh is None else self.bias_hh[: 2 * H]
        h_r, h_z = F.linear(state.h, self.weight_hh[: 2 * H], b_rz).chunk(2, dim=1)  # (B, H) each
        return {"r": torch.sigmoid(x_r + h_r), "z": torch.sigmoid(x_z + h_z)}

    def fused_mode(self) -> tuple[str | None, str | None]:
        if self.variant != "torch":
            return None, f"fused needs a GRU cell in torch's form; variant={self.variant!r} was given"
        if not self.keeps_math_of(GRUCell):
            return None, f"fused needs a standard GRU cell; {self.kind} changes its step"
        return "gru", None

    def fused_weights(self) -> list[Tensor]:
        return torch_form_weights(self)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, variant={self.variant!r}"
