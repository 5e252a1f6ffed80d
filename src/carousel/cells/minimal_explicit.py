r"""minGRU and minLSTM coefficients with their derivative written out, for the scan runner.

``carousel.runners.scan`` runs a block of steps as one autograd function when the cell offers
``explicit_coefficients()``: an object whose ``forward(px) -> (a, b)`` computes the coefficients
of ``h_t = a_t h_{t-1} + b_t`` without autograd and whose ``backward(grad_a, grad_b, grad_px)``
writes the gradient of ``px`` into the given buffer, and whose ``native_kind`` (``"mingru"``,
``"minlstm"`` or None) names the compiled CPU kernel of ``carousel.runners.native`` that computes
the same coefficients and recurrence in one pass (None: the eager path). Written out, the backward takes about half
the passes over memory that autograd's chain of small nodes takes, and no concatenation.

minGRU, ``px = [k, \tilde h]``:

.. math::
    z = \sigma(k), \quad a = 1 - z, \quad b = z \tilde h; \qquad
    dk = (d b\, \tilde h - d a)\, z (1 - z), \quad d\tilde h = d b\, z

minLSTM, ``px = [k_f, k_i, \tilde h]``, with ``f' = f / (f + i) = \sigma(\log f - \log i)`` and
``i' = i / (f + i)`` (log space: finite where both sigmoids underflow):

.. math::
    a = f', \quad b = i' \tilde h; \qquad
    s = f' i' (d a - d b\, \tilde h), \quad dk_f = s (1 - f), \quad dk_i = -s (1 - i), \quad
    d\tilde h = d b\, i'

(from ``\partial f'/\partial k_f = f'(1-f)i'`` and ``\partial f'/\partial k_i = -f'(1-i)i'``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class MinGRUCoefficients:
    """``forward(px) -> (a, b)`` and its written-out ``backward`` for ``MinGRUCell``."""

    native_kind = "mingru"  # carousel.runners.native computes the same coefficients in its CPU kernel

    def forward(self, px: Tensor) -> tuple[Tensor, Tensor]:
        k, self.h_tilde = px.chunk(2, dim=-1)  # (B, T, H) each
        self.z = torch.sigmoid(k)
        return 1 - self.z, self.z * self.h_tilde

    def backward(self, grad_a: Tensor, grad_b: Tensor, grad_px: Tensor) -> None:
        dk, dh = grad_px.chunk(2, dim=-1)
        z = self.z
        torch.mul(grad_b, z, out=dh)  # d h~ = db z
        torch.addcmul(grad_a, grad_b, self.h_tilde, value=-1, out=dk).neg_()  # dz = db h~ - da
        torch.ops.aten.sigmoid_backward.grad_input(dk, z, grad_input=dk)  # dk = dz z (1 - z)


def normalised_gates(k: Tensor, other: Tensor) -> tuple[Tensor, Tensor]:
    r"""``(g', 1 - g)`` for pre-activations ``k``, ``other``: ``g' = \sigma(k) / (\sigma(k) + \sigma(other))``
    computed as ``\sigma(\log\sigma(k) - \log\sigma(other))``, and ``1 - \sigma(k) = \sigma(-k)``."""
    return torch.sigmoid(F.logsigmoid(k) - F.logsigmoid(other)), torch.sigmoid(-k)


class MinLSTMCoefficients:
    """``forward(px) -> (a, b)`` and its written-out ``backward`` for ``MinLSTMCell``."""

    native_kind = "minlstm"  # carousel.runners.native computes the same coefficients in its CPU kernel

    def forward(self, px: Tensor) -> tuple[Tensor, Tensor]:
        kf, ki, self.h_tilde = px.chunk(3, dim=-1)  # (B, T, H) each
        self.fp, self.nf = normalised_gates(kf, ki)  # f', 1 - f
        self.ip, self.ni = normalised_gates(ki, kf)  # i', 1 - i
        return self.fp, self.ip * self.h_tilde

    def backward(self, grad_a: Tensor, grad_b: Tensor, grad_px: Tensor) -> None:
        dkf, dki, dh = grad_px.chunk(3, dim=-1)
        torch.mul(grad_b, self.ip, out=dh)  # d h~ = db i'
        s = torch.addcmul(grad_a, grad_b, self.h_tilde, value=-1)  # da - db h~
        s.mul_(self.fp).mul_(self.ip)  # s = f' i' (da - db h~)
        torch.mul(s, self.nf, out=dkf)  # s (1 - f)
        torch.mul(s, self.ni, out=dki).neg_()  # -s (1 - i)
