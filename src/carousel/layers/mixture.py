r"""``MixtureOfExperts``: K expert networks and a softmax gating network over the input, dense or top-k."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .._checks import ShapeError, check_size, shape_str
from ..cells.mixture import importance_loss

__all__ = ["MixtureOfExperts"]


class MixtureOfExperts(nn.Module):
    r"""A mixture of experts: ``y = sum_k g_k(x) E_k(x)`` with a softmax gate over the input.

    .. math::
        g(x) &= \operatorname{softmax}(\text{gate}(x)) \in \Delta^{K-1} \\
        y &= \sum_{k=1}^{K} g_k(x)\, E_k(x)

    the adaptive mixture of Jacobs, Jordan, Nowlan & Hinton 1991 ("Adaptive Mixtures of Local
    Experts", the mixture output whose error their eq. 1 measures). With ``top_k`` only the k
    largest gate values of each row are kept and renormalised to sum to 1,

    .. math::
        \tilde g_k(x) = \frac{g_k(x)\,[k \in \operatorname{TopK}(g(x))]}{\sum_{j \in \operatorname{TopK}(g(x))} g_j(x)}

    (softmax over the kept logits, as in Shazeer et al. 2017, "Outrageously Large Neural
    Networks: The Sparsely-Gated Mixture-of-Experts Layer", eq. 3-5, without their noise), and
    the layer computes only what is used: each expert runs on the rows routed to it, gathered
    into one batch, and its outputs are scattered back weighted by the gate. Unchosen experts are
    not called on a row and receive no gradient from it.

    ``experts``: a non-empty list of modules, each (N, I) -> (N, O) with the same O (checked at
    ``forward``). ``gate``: a module (..., I) -> (..., K) giving the gate's logits, or the input
    size I for a linear gate ``nn.Linear(I, K)``. ``top_k``: None (dense: every expert weighted)
    or an integer in [1, K].

    ``forward(x)``: x (..., I) -> y (..., O); the leading dimensions are flattened into N rows for
    the experts. After each call, ``last_gates`` (..., K) holds the gate values used (zero for
    unchosen experts with ``top_k``; rows sum to 1) and ``aux_loss`` the load-balancing loss of
    Shazeer et al. 2017, eq. 6-7 (:func:`carousel.cells.importance_loss` of ``last_gates``: the
    squared coefficient of variation of the per-expert gate sums, 0 for perfectly balanced use);
    add ``w * moe.aux_loss`` to the task loss to keep all experts in use.

    Raises ``TypeError`` for experts that are not a list of modules, a gate that is neither a
    module nor an integer, a non-integer ``top_k`` and a non-tensor input; ``ValueError`` for an
    empty list, ``top_k`` outside [1, K], an input whose last size is not the linear gate's I, a
    gate whose output is not (N, K), and experts whose outputs differ in shape (at ``forward``).
    """

    def __init__(self, experts: Sequence[nn.Module], gate: nn.Module | int, *, top_k: int | None = None) -> None:
        super().__init__()
        if isinstance(experts, nn.Module) and not isinstance(experts, nn.ModuleList) or not isinstance(
                experts, (list, tuple, nn.ModuleList)):
            raise TypeError(f"expected experts to be a list of modules, got {type(experts).__name__}")
        if len(experts) == 0:
            raise ValueError("expected at least one expert, got an empty list")
        for k, e in enumerate(experts):
            if not isinstance(e, nn.Module):
                raise TypeError(f"expected experts[{k}] to be a torch.nn.Module, got {type(e).__name__}")
        self.experts = nn.ModuleList(experts)
        K = len(self.experts)
        if isinstance(gate, nn.Module):
            self.gate = gate
            self.input_size: int | None = getattr(gate, "in_features", None)
        elif isinstance(gate, int) and not isinstance(gate, bool):
            self.input_size = check_size(gate, "gate (the input size of a linear gate)")
            self.gate = nn.Linear(self.input_size, K)
        else:
            raise TypeError(f"expected gate to be a torch.nn.Module giving (..., {K}) logits or an integer input size, "
                            f"got {type(gate).__name__}")
        if top_k is not None:
            top_k = check_size(top_k, "top_k")
            if top_k > K:
                raise ValueError(f"expected top_k in [1, {K}] (the number of experts), got {top_k}")
        self.top_k = top_k
        self.last_gates: Tensor | None = None
        self.aux_loss: Tensor | None = None

    @property
    def num_experts(self) -> int:
        return len(self.experts)

    def gate_probabilities(self, x: Tensor) -> Tensor:
        """The dense gate ``softmax(gate(x))``: (N, I) -> (N, K), rows summing to 1."""
        logits = self.gate(x)
        K = self.num_experts
        if not isinstance(logits, Tensor) or logits.shape != (x.shape[0], K):
            got = shape_str(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ShapeError(f"expected the gate to map ({x.shape[0]}, {x.shape[1]}) to logits of shape "
                             f"({x.shape[0]}, {K}), one per expert, got {got}")
        return torch.softmax(logits, dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"expected an input tensor of shape (..., I), got {type(x).__name__}")
        if x.dim() == 0:
            raise ShapeError(f"expected an input of shape (..., I), got {shape_str(x.shape)}")
        if self.input_size is not None and x.shape[-1] != self.input_size:
            raise ShapeError(f"expected an input of shape (..., {self.input_size}), got {shape_str(x.shape)}")
        lead = x.shape[:-1]
        flat = x.reshape(-1, x.shape[-1])  # (N, I)
        g = self.gate_probabilities(flat)  # (N, K)
        K, k = self.num_experts, self.top_k
        if k is None or k == K:
            outs = [e(flat) for e in self.experts]  # K x (N, O)
            self._check_outputs(outs, [flat.shape[0]] * K, list(range(K)))
            y = torch.einsum("nk,kno->no", g, torch.stack(outs, dim=0))  # (N, O)
            used = g
        else:
            top, idx = g.topk(k, dim=-1)  # (N, k) each
            weights = top / top.sum(-1, keepdim=True)  # renormalised over the kept experts
            used = torch.zeros_like(g).scatter(-1, idx, weights)  # (N, K)
            routed, outs, names = [], [], []
            for e_idx, expert in enumerate(self.experts):
                rows, slot = (idx == e_idx).nonzero(as_tuple=True)  # the rows sent to this expert
                if rows.numel() == 0:
                    continue
                routed.append((rows, weights[rows, slot].unsqueeze(-1)))  # (n_e,), (n_e, 1)
                outs.append(expert(flat[rows]))  # (n_e, O)
                names.append(e_idx)
            self._check_outputs(outs, [r.numel() for r, _ in routed], names)
            O = outs[0].shape[-1]
            y = outs[0].new_zeros(flat.shape[0], O)
            for (rows, w), out in zip(routed, outs):
                y = y.index_add(0, rows, w * out)
        self.last_gates = used.reshape(*lead, K)
        self.aux_loss = importance_loss(used)
        return y.reshape(*lead, y.shape[-1])

    @staticmethod
    def _check_outputs(outs: list, rows: list[int], names: list[int]) -> None:
        first = None
        for out, n, k in zip(outs, rows, names):
            if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != n:
                got = shape_str(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ShapeError(f"expected experts[{k}] to map its {n} rows to an output of shape ({n}, O), got {got}")
            if first is None:
                first = (k, out.shape[-1])
            elif out.shape[-1] != first[1]:
                raise ShapeError(f"expected every expert to give outputs of the same size; experts[{first[0]}] gives "
                                 f"{first[1]}, experts[{k}] gives {out.shape[-1]}")

    def extra_repr(self) -> str:
        return f"num_experts={self.num_experts}, top_k={self.top_k}"
