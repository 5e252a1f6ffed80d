r"""``Attention``: a query reads a set of keys (an encoder's outputs), masked past each source's end.

For a query :math:`q` (B, Q) and keys :math:`k_1, \dots, k_S` (B, S, K), the score of key j is

.. math::
    \text{additive:} \quad & e_j = v^\top \tanh(W_q\, q + W_k\, k_j)
        && \text{(Bahdanau, Cho \& Bengio 2015, appendix A.1.2, } e_{ij}) \\
    \text{general:} \quad & e_j = q^\top W k_j && \text{(Luong, Pham \& Manning 2015, eq. 8)} \\
    \text{dot:} \quad & e_j = q^\top k_j && \text{(same, eq. 8; needs } Q = K)

and :math:`\alpha = \text{softmax}_j(e_j)` over the valid keys only (a key where ``mask`` is False
gets weight exactly 0), :math:`c = \sum_j \alpha_j k_j` (B, K). ``"none"`` is in
``ATTENTION_KINDS`` for the decoders' options; ``Attention`` itself refuses it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .._checks import ShapeError, check_choice, check_same_kind, check_size, shape_str

ATTENTION_KINDS = ("none", "additive", "general", "dot")


class Attention(nn.Module):
    """``Attention(query_size, key_size, kind)(query, keys, mask) -> (context, weights)``; see the module docstring.

    ``query`` is (B, Q) or (B, T, Q) (T queries at once: the weights are then (B, T, S) and the
    context (B, T, K)); ``keys`` (B, S, K) with S >= 1; ``mask`` (B, S) bool, True at the valid
    (non-padding) keys, or None (all valid). ``attention_size`` is the hidden size A of the additive
    score (default ``key_size``). Raises ``ValueError`` for an unknown kind, ``"none"``, ``dot``
    with Q != K, a row of ``mask`` without a valid key, a query or keys that are not floating point
    or whose dtype or device differs from the parameters' (for ``dot``, from each other), and
    malformed inputs (``ShapeError``).
    """

    def __init__(self, query_size: int, key_size: int, kind: str = "additive", attention_size: int | None = None,
                 *, device=None, dtype=None) -> None:
        super().__init__()
        self.query_size = check_size(query_size, "query_size")
        self.key_size = check_size(key_size, "key_size")
        self.kind = check_choice(kind, ATTENTION_KINDS[1:], "attention kind")
        kw = {"device": device, "dtype": dtype}
        if kind == "additive":
            A = key_size if attention_size is None else check_size(attention_size, "attention_size")
            self.attention_size = A
            self.query_proj = nn.Linear(query_size, A, bias=False, **kw)  # W_q
            self.key_proj = nn.Linear(key_size, A, **kw)  # W_k (and the bias)
            self.v = nn.Parameter(torch.empty(A, **kw).uniform_(-1 / math.sqrt(A), 1 / math.sqrt(A)))
        elif kind == "general":
            if attention_size is not None:
                raise ValueError(f"attention_size is used by the additive score only; got {attention_size!r} with kind 'general'")
            self.weight = nn.Linear(key_size, query_size, bias=False, **kw)  # W: q^T (W k)
        else:
            if attention_size is not None:
                raise ValueError(f"attention_size is used by the additive score only; got {attention_size!r} with kind 'dot'")
            if query_size != key_size:
                raise ValueError(f"dot attention needs query_size == key_size, got {query_size} and {key_size}; use 'general'")

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        """Unnormalised scores e (B, T, S) for queries (B, T, Q) and keys (B, S, K)."""
        if self.kind == "additive":
            wq = self.query_proj(query).unsqueeze(2)  # (B, T, 1, A)
            wk = self.key_proj(keys).unsqueeze(1)  # (B, 1, S, A)
            return torch.tanh(wq + wk) @ self.v  # (B, T, S)
        if self.kind == "general":
            keys = self.weight(keys)  # (B, S, Q)
        return query @ keys.transpose(1, 2)  # (B, T, S)

    def forward(self, query: Tensor, keys: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Context (B, K) and weights (B, S) (or (B, T, K) and (B, T, S) for (B, T, Q) queries)."""
        if not isinstance(keys, Tensor) or keys.dim() != 3 or keys.shape[-1] != self.key_size or keys.shape[1] == 0:
            got = shape_str(keys.shape) if isinstance(keys, Tensor) else type(keys).__name__
            raise ShapeError(f"expected keys of shape (B, S, {self.key_size}) with S >= 1, got {got}")
        B, S = keys.shape[:2]
        if not isinstance(query, Tensor) or query.dim() not in (2, 3) or query.shape[0] != B or query.shape[-1] != self.query_size:
            got = shape_str(query.shape) if isinstance(query, Tensor) else type(query).__name__
            raise ShapeError(f"expected query of shape ({B}, {self.query_size}) or ({B}, T, {self.query_size}), got {got}")
        for name, t in (("query", query), ("keys", keys)):
            if not t.is_floating_point():
                raise ValueError(f"expected {name} as a floating-point tensor, got dtype {t.dtype}")
        ref = next(self.parameters(), None)
        if ref is not None:
            check_same_kind(query, ref, "query", "the attention's parameters")
            check_same_kind(keys, ref, "keys", "the attention's parameters")
        else:  # dot: no parameters, so the query and the keys must agree with each other
            check_same_kind(query, keys, "query", "the keys")
        single = query.dim() == 2
        q = query.unsqueeze(1) if single else query  # (B, T, Q)
        e = self.scores(q, keys)  # (B, T, S)
        if mask is not None:
            if not isinstance(mask, Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != (B, S):
                got = f"shape {shape_str(mask.shape)}, dtype {mask.dtype}" if isinstance(mask, Tensor) else type(mask).__name__
                raise ShapeError(f"expected mask as a bool tensor of shape ({B}, {S}) (True at valid keys), got {got}")
            mask = mask.to(e.device)
            if not bool(mask.any(dim=1).all()):
                raise ValueError("expected at least one valid key per row of mask (an empty source?), got a row of all False")
            e = e.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(e, dim=-1)  # (B, T, S); exactly 0 where e = -inf
        context = weights @ keys  # (B, T, K)
        if single:
            return context.squeeze(1), weights.squeeze(1)
        return context, weights

    def extra_repr(self) -> str:
        return f"{self.query_size}, {self.key_size}, kind={self.kind!r}"
