"""Elman (vanilla) recurrent cells: tanh, ReLU and linear, and the IRNN initialisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_choice, check_flag, check_number, factory_kwargs
from ..state import ElmanState
from .base import Cell, torch_form_weights
from .init import uniform_init_


def _identity(v: Tensor) -> Tensor:
    return v


NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu, "identity": _identity}


class ElmanCell(Cell):
    r"""Elman recurrent cell.

    .. math::
        h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})

    with ``phi`` one of ``"tanh"``, ``"relu"`` or ``"identity"`` (the linear units whose
    constant error flow the LSTM's carousel is built from; ``"linear"`` is accepted as a name).
    Parameters follow ``torch.nn.RNNCell``: ``weight_ih`` (H, I), ``weight_hh`` (H, H),
    ``bias_ih`` (H), ``bias_hh`` (H); initialised from U(-1/sqrt(H), 1/sqrt(H)).
    """

    state_type = ElmanState

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        nonlinearity: str = "tanh",
        bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(input_size, hidden_size)
        kw = factory_kwargs(device, dtype)
        check_flag(bias, "bias")
        if nonlinearity == "linear":
            nonlinearity = "identity"
        self.nonlinearity = check_choice(nonlinearity, tuple(NONLINEARITIES), "nonlinearity")
        self._phi = NONLINEARITIES[nonlinearity]
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size, **kw))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(hidden_size, **kw))
            self.bias_hh = nn.Parameter(torch.empty(hidden_size, **kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        uniform_init_(self, self.hidden_size)

    def project(self, x: Tensor) -> Tensor:
        # (..., I) -> (..., H): both biases folded into the hoisted product
        bias = None if self.bias_ih is None else self.bias_ih + self.bias_hh
        return F.linear(x, self.weight_ih, bias)

    def step(self, px_t: Tensor, state: ElmanState) -> ElmanState:
        h = self._phi(torch.addmm(px_t, state.h, self.weight_hh.t()))  # (B, H)
        return ElmanState(h)

    def fused_mode(self) -> tuple[str | None, str | None]:
        if not self.keeps_math_of(ElmanCell):
            return None, f"fused needs a standard Elman cell; {self.kind} changes its step"
        return _elman_mode(self.nonlinearity)

    def fused_weights(self) -> list[Tensor]:
        return torch_form_weights(self)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, nonlinearity={self.nonlinearity!r}"


def _elman_mode(nonlinearity: str) -> tuple[str | None, str | None]:
    if nonlinearity in ("tanh", "relu"):
        return f"rnn_{nonlinearity}", None
    return None, f"fused needs a tanh or relu Elman cell; nonlinearity={nonlinearity!r} was given"


class IRNNCell(ElmanCell):
    r"""ReLU Elman cell with the IRNN initialisation (Le, Jaitly & Hinton 2015,
    "A Simple Way to Initialize Recurrent Networks of Rectified Linear Units").

    .. math::
        h_t = \max(0, W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}), \quad
        W_{hh} \leftarrow \text{scale} \cdot I,\; b \leftarrow 0,\; W_{ih} \sim \mathcal{N}(0, \sigma^2)

    ``identity_scale`` below 1 gives the paper's "np-RNN"-like shrunken identity; ``input_std``
    is the standard deviation of the input weights (0.001 in the paper's adding experiments).
    Both must be finite, ``input_std >= 0`` (``TypeError`` for a non-number, ``ValueError`` otherwise).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        identity_scale: float = 1.0,
        input_std: float = 0.001,
        bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        self.identity_scale = check_number(identity_scale, "identity_scale")
        self.input_std = check_number(input_std, "input_std", low=0.0)
        super().__init__(input_size, hidden_size, nonlinearity="relu", bias=bias, device=device, dtype=dtype)

    def reset_parameters(self) -> None:
        with torch.no_grad():
            nn.init.normal_(self.weight_ih, 0.0, self.input_std)
            self.weight_hh.copy_(torch.eye(self.hidden_size) * self.identity_scale)
            if self.bias_ih is not None:
                self.bias_ih.zero_()
                self.bias_hh.zero_()

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, identity_scale={self.identity_scale}"
