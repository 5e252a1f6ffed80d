"""Long short-term memory cells: with or without the forget gate, peepholes, layer norm, projection."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_flag, check_number, check_size, factory_kwargs
from ..state import LSTMState
from .base import Cell, torch_form_weights
from .init import uniform_init_
from .lstm_explicit import LSTMExplicitStep


class LSTMCell(Cell):
    r"""LSTM cell, in torch's gate order ``i, f, g, o``.

    With the forget gate (Gers et al. 2000), the default:

    .. math::
        i, f, g, o &= \sigma(\cdot), \sigma(\cdot), \tanh(\cdot), \sigma(\cdot) \text{ of }
                      W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh} \\
        c_t &= f \odot c_{t-1} + i \odot g \\
        h_t &= o \odot \tanh(c_t)

    ``forget_gate=False`` is the original 1997 cell, gates ``i, g, o`` and
    ``c_t = c_{t-1} + i * g``: the carousel never forgets.

    Options:

    * ``forget_bias``: when given (a finite number), the forget gate's total bias starts at this value
      (``bias_ih`` of the f-slice set to it, ``bias_hh`` to zero; 1.0 is the common choice,
      Jozefowicz et al. 2015). ``None`` keeps torch's uniform initialisation.
    * ``peephole``: the gates also see the cell (Gers & Schmidhuber 2000),
      ``i += w_ci * c_{t-1}``, ``f += w_cf * c_{t-1}``, ``o += w_co * c_t``.
    * ``layer_norm``: layer normalisation (Ba et al. 2016, "Layer Normalization") of the input
      and recurrent pre-activations separately and of the cell before its tanh:
      ``gates = LN(W_ih x) + LN(W_hh h) + b``, ``h = o * tanh(LN(c))``.
    * ``proj_size`` > 0: ``h_t = W_hr (o * tanh(c_t))`` of size P, as in ``torch.nn.LSTM``.

    Options are checked at construction: ``TypeError`` for a wrong type (a flag that is not a
    ``bool``, ``forget_bias="1"``, a non-floating ``dtype`` is a ``ValueError``), ``ValueError`` for a
    non-finite or out-of-range value.
    """

    state_type = LSTMState

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        bias: bool = True,
        forget_gate: bool = True,
        forget_bias: float | None = None,
        peephole: bool = False,
        layer_norm: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(input_size, hidden_size)
        kw = factory_kwargs(device, dtype)
        for name, flag in (("bias", bias), ("forget_gate", forget_gate), ("peephole", peephole), ("layer_norm", layer_norm)):
            check_flag(flag, name)
        if forget_bias is not None:
            forget_bias = check_number(forget_bias, "forget_bias")
        if check_size(proj_size, "proj_size", minimum=0):
            if proj_size >= hidden_size:
                raise ValueError(f"expected proj_size smaller than hidden_size={hidden_size}, got {proj_size}")
        if forget_bias is not None and not forget_gate:
            raise ValueError("forget_bias was given but forget_gate=False: the cell has no forget gate to bias")
        if forget_bias is not None and not bias:
            raise ValueError("forget_bias was given but bias=False: the cell has no bias to set")
        self.forget_gate = bool(forget_gate)
        self.forget_bias = forget_bias
        self.peephole = bool(peephole)
        self.layer_norm = bool(layer_norm)
        self.proj_size = int(proj_size)
        self.num_gates = 4 if self.forget_gate else 3
        H, G, P = hidden_size, self.num_gates * hidden_size, self.proj_size
        self.weight_ih = nn.Parameter(torch.empty(G, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(G, P or H, **kw))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(G, **kw))
            self.bias_hh = nn.Parameter(torch.empty(G, **kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        if P:
            self.weight_hr = nn.Parameter(torch.empty(P, H, **kw))
        else:
            self.register_parameter("weight_hr", None)
        if self.peephole:
            self.weight_ci = nn.Parameter(torch.empty(H, **kw))
            self.weight_cf = nn.Parameter(torch.empty(H, **kw)) if self.forget_gate else None
            self.weight_co = nn.Parameter(torch.empty(H, **kw))
        if self.layer_norm:
            self.ln_ih = nn.LayerNorm(G, **kw)
            self.ln_hh = nn.LayerNorm(G, **kw)
            self.ln_c = nn.LayerNorm(H, **kw)
        self.reset_parameters()

    @property
    def state_sizes(self) -> tuple[int, int]:
        return (self.proj_size or self.hidden_size, self.hidden_size)

    def reset_parameters(self) -> None:
        uniform_init_(self, self.hidden_size)
        if self.layer_norm:
            for ln in (self.ln_ih, self.ln_hh, self.ln_c):
                ln.reset_parameters()
        if self.forget_bias is not None:
            H = self.hidden_size
            with torch.no_grad():
                self.bias_ih[H : 2 * H].fill_(self.forget_bias)
                self.bias_hh[H : 2 * H].zero_()

    def project(self, x: Tensor) -> Tensor:
        if self.layer_norm:
            px = self.ln_ih(F.linear(x, self.weight_ih))  # (..., G)
            return px if self.bias_ih is None else px + (self.bias_ih + self.bias_hh)
        bias = None if self.bias_ih is None else self.bias_ih + self.bias_hh
        return F.linear(x, self.weight_ih, bias)  # (..., G)

    def _activations(self, px_t: Tensor, state: LSTMState) -> tuple[Tensor, Tensor | None, Tensor, Tensor, Tensor]:
        """``i, f, g, o`` (``f`` None without a forget gate) and the new cell ``c_t`` of one step, each (B, H)."""
        h, c = state
        if self.layer_norm:
            pre = px_t + self.ln_hh(torch.mm(h, self.weight_hh.t()))  # (B, G)
        else:
            pre = torch.addmm(px_t, h, self.weight_hh.t())  # (B, G)
        if self.forget_gate:
            i, f, g, o = pre.chunk(4, dim=1)  # each (B, H)
        else:
            (i, g, o), f = pre.chunk(3, dim=1), None
        if self.peephole:
            i = i + self.weight_ci * c
            if f is not None:
                f = f + self.weight_cf * c
        i, g = torch.sigmoid(i), torch.tanh(g)
        if f is not None:
            f = torch.sigmoid(f)
            c = f * c + i * g
        else:
            c = c + i * g
        if self.peephole:
            o = o + self.weight_co * c
        return i, f, g, torch.sigmoid(o), c

    def step(self, px_t: Tensor, state: LSTMState) -> LSTMState:
        i, f, g, o, c = self._activations(px_t, state)
        h = o * torch.tanh(self.ln_c(c) if self.layer_norm else c)  # (B, H)
        if self.weight_hr is not None:
            h = torch.mm(h, self.weight_hr.t())  # (B, P)
        return LSTMState(h, c)

    def gates(self, px_t: Tensor, state: LSTMState) -> dict[str, Tensor]:
        """The sigmoid gates of one step, as ``step`` computes them: ``i``, ``f`` (when the cell has
        it) and ``o``, each (B, H) in (0, 1). For diagnostics."""
        i, f, _, o, _ = self._activations(px_t, state)
        return {"i": i, "o": o} if f is None else {"i": i, "f": f, "o": o}

    def explicit_step(self) -> LSTMExplicitStep | None:
        """The step and its derivative written out, for the ``"explicit"`` backend (``carousel.runners.explicit``)."""
        return LSTMExplicitStep(self) if self.keeps_math_of(LSTMCell) else None

    def fused_mode(self) -> tuple[str | None, str | None]:
        given = [name + "=True" for name in ("peephole", "layer_norm") if getattr(self, name)]
        if not self.forget_gate:
            given.insert(0, "forget_gate=False")
        if given:
            return None, f"fused needs a standard LSTM cell; {', '.join(given)} {'was' if len(given) == 1 else 'were'} given"
        if not self.keeps_math_of(LSTMCell):
            return None, f"fused needs a standard LSTM cell; {self.kind} changes its step"
        return "lstm", None

    def fused_weights(self) -> list[Tensor]:
        weights = torch_form_weights(self)
        return weights if self.weight_hr is None else weights + [self.weight_hr]

    def extra_repr(self) -> str:
        opts = [f"{self.input_size}, {self.hidden_size}"]
        if not self.forget_gate:
            opts.append("forget_gate=False")
        for name in ("peephole", "layer_norm"):
            if getattr(self, name):
                opts.append(f"{name}=True")
        if self.proj_size:
            opts.append(f"proj_size={self.proj_size}")
        return ", ".join(opts)
