"""Orthogonal recurrent cells: the recurrent matrix is kept exactly orthogonal by a parametrisation."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .._checks import check_choice, factory_kwargs
from ..state import ElmanState
from .elman import ElmanCell, _elman_mode


HALF = (torch.float16, torch.bfloat16)


class OrthogonalMap(nn.Module):
    r"""Parametrisation of a square orthogonal matrix: ``X -> base @ map(A)``, ``A = tril(X) - tril(X)^T``.

    ``map`` is the matrix exponential ``exp(A)`` or the Cayley retraction ``(I - A/2)^{-1} (I + A/2)``;
    ``A`` is skew-symmetric, so both are orthogonal. Assigning an orthogonal ``Q`` stores it as
    ``base`` and sets ``X`` so that ``map(A) = I`` (the trivialisation of Lezcano-Casado & Martinez-Rubio
    2019, "Cheap Orthogonal Constraints in Neural Networks"; torch's ``parametrizations.orthogonal``
    does the same, and its checkpoints load here). The map is computed in float32 at least, outside
    autocast: in half precision the matrix exponential loses orthogonality (and its result can
    overflow) and torch has no half-precision solve; the result is cast back to the weight's dtype.
    """

    base: Tensor

    def __init__(self, orthogonal_map: str = "matrix_exp") -> None:
        super().__init__()
        self.orthogonal_map = check_choice(orthogonal_map, ("matrix_exp", "cayley"), "orthogonal_map")
        self.register_buffer("base", None)

    def forward(self, X: Tensor) -> Tensor:
        with torch.autocast(X.device.type, enabled=False):
            wide = X.float() if X.dtype in HALF else X
            A = wide.tril()
            A = A - A.mT  # (H, H), skew-symmetric
            if self.orthogonal_map == "matrix_exp":
                Q = torch.matrix_exp(A)
            else:
                eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
                Q = torch.linalg.solve(torch.add(eye, A, alpha=-0.5), torch.add(eye, A, alpha=0.5))
            if self.base is not None:
                Q = self.base.to(Q.dtype) @ Q
        return Q.to(X.dtype)

    @torch.no_grad()
    def right_inverse(self, Q: Tensor) -> Tensor:
        if Q.dim() != 2 or Q.shape[0] != Q.shape[1]:
            raise ValueError(f"expected a square orthogonal matrix, got shape {tuple(Q.shape)}")
        with torch.autocast(Q.device.type, enabled=False):
            wide = Q.float() if Q.dtype in HALF else Q
            eye = torch.eye(Q.shape[0], dtype=wide.dtype, device=Q.device)
            if torch.allclose(wide.mT @ wide, eye, atol=10 * Q.shape[0] * torch.finfo(wide.dtype).eps):
                base = Q.clone()
            else:  # the orthogonal factor of its QR decomposition, with a positive diagonal of R
                X, tau = torch.geqrf(wide)
                base = (torch.linalg.householder_product(X, tau) * X.diagonal().sgn().unsqueeze(-2)).to(Q.dtype)
        self.base = base
        return -torch.eye(Q.shape[0], dtype=Q.dtype, device=Q.device)  # tril(-I) - tril(-I)^T = 0: map(0) = I


class OrthogonalCell(ElmanCell):
    r"""Elman cell whose recurrent matrix is orthogonal at every step of training.

    .. math::
        h_t = \phi(W_{ih} x_t + b_{ih} + b_{hh} + U h_{t-1}), \qquad U^\top U = I

    ``U = cell.weight_hh`` is computed from an unconstrained parameter by the parametrisation
    ``OrthogonalMap`` (``orthogonal_map="matrix_exp"`` or ``"cayley"``; the maps, trivialisation and
    ``state_dict`` keys of ``torch.nn.utils.parametrizations.orthogonal``), so its spectral radius is exactly 1 and ``||U h|| = ||h||``; it starts as a
    random orthogonal matrix. ``nonlinearity`` is ``"tanh"`` or ``"modrelu"``,
    ``modReLU(z) = sign(z) * relu(|z| + b)`` with a learned per-unit ``b``
    (Arjovsky, Shah & Bengio 2016, "Unitary Evolution Recurrent Neural Networks"; real form of
    Helfrich et al. 2018), or any Elman nonlinearity. With tanh it is an Elman cell with a computed
    ``weight_hh``, so fused kernels can run it.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        nonlinearity: str = "tanh",
        orthogonal_map: str = "matrix_exp",
        bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        factory_kwargs(device, dtype)
        check_choice(nonlinearity, ("tanh", "modrelu", "relu", "identity", "linear"), "nonlinearity")
        self.orthogonal_map = check_choice(orthogonal_map, ("matrix_exp", "cayley"), "orthogonal_map")
        modrelu = nonlinearity == "modrelu"
        super().__init__(
            input_size, hidden_size, nonlinearity="identity" if modrelu else nonlinearity,
            bias=bias, device=device, dtype=dtype,
        )
        if modrelu:
            self.nonlinearity = "modrelu"
            self.bias_modrelu = nn.Parameter(torch.empty(hidden_size, device=device, dtype=dtype))
        self.reset_parameters()
        parametrize.register_parametrization(self, "weight_hh", OrthogonalMap(orthogonal_map), unsafe=True)

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for p in (self.weight_ih, self.bias_ih, self.bias_hh):
                if p is not None:
                    nn.init.uniform_(p, -bound, bound)
            if getattr(self, "bias_modrelu", None) is not None:
                nn.init.uniform_(self.bias_modrelu, -0.01, 0.01)
            q = nn.init.orthogonal_(torch.empty_like(self.weight_hh))
            if parametrize.is_parametrized(self, "weight_hh"):
                self.weight_hh = q  # through the parametrisation's right inverse
            else:
                self.weight_hh.copy_(q)

    def step(self, px_t: Tensor, state: ElmanState) -> ElmanState:
        pre = torch.addmm(px_t, state.h, self.weight_hh.t())  # (B, H)
        if self.nonlinearity == "modrelu":
            return ElmanState(torch.sign(pre) * torch.relu(pre.abs() + self.bias_modrelu))
        return ElmanState(self._phi(pre))

    def fused_mode(self) -> tuple[str | None, str | None]:
        # with tanh or relu the step is the Elman step with a computed weight_hh
        if not self.keeps_math_of(OrthogonalCell):
            return None, f"fused needs a standard orthogonal cell; {self.kind} changes its step"
        return _elman_mode(self.nonlinearity)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, orthogonal_map={self.orthogonal_map!r}"
