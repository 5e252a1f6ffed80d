r"""Tree-structured LSTMs (Tai, Socher & Manning 2015, "Improved Semantic Representations From
Tree-Structured Long Short-Term Memory Networks", section 3): one forget gate per child, so a node
can keep the memory of one child and drop another's."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..runners.levels import Children
from ..state import LSTMState
from .recursive import TreeCell


class ChildSumTreeLSTMCell(TreeCell):
    r"""Child-Sum Tree-LSTM (Tai et al. 2015, eqs. 2-8), for any number of unordered children.

    For node ``j`` with input ``x_j`` and children ``k`` in ``C(j)`` (states ``h_k``, ``c_k``):

    .. math::
        \tilde h_j &= \textstyle\sum_{k \in C(j)} h_k                                 && (2) \\
        i_j &= \sigma(W^{(i)} x_j + U^{(i)} \tilde h_j + b^{(i)})                    && (3) \\
        f_{jk} &= \sigma(W^{(f)} x_j + U^{(f)} h_k + b^{(f)})  \text{ one per child}  && (4) \\
        o_j &= \sigma(W^{(o)} x_j + U^{(o)} \tilde h_j + b^{(o)})                    && (5) \\
        u_j &= \tanh(W^{(u)} x_j + U^{(u)} \tilde h_j + b^{(u)})                     && (6) \\
        c_j &= i_j \odot u_j + \textstyle\sum_{k} f_{jk} \odot c_k                    && (7) \\
        h_j &= o_j \odot \tanh(c_j)                                                   && (8)

    A leaf has no children (``h~ = 0``, no forget term). Parameters in ``carousel.LSTMCell``'s
    layout (gate order ``i, f, g=u, o``): ``weight_ih`` (4H, I), ``weight_hh`` (4H, H), ``bias_ih``
    and ``bias_hh`` (4H) with ``b = bias_ih + bias_hh``; on a chain (one child per node) the cell
    is ``LSTMCell`` with the same ``state_dict``. State: ``LSTMState(h, c)``, each (N, H).
    """

    state_type = LSTMState

    def __init__(self, input_size: int, hidden_size: int, *, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size)
        H = hidden_size
        self._params(input_size, 4 * H, 4 * H, H, bias, {"device": device, "dtype": dtype})
        self.reset_parameters()

    def project(self, x: Tensor) -> Tensor:
        bias = None if self.bias_ih is None else self.bias_ih + self.bias_hh
        return F.linear(x, self.weight_ih, bias)  # (N, 4H): W x + b for i, f, u, o

    def leaf(self, px: Tensor) -> LSTMState:
        i, _, u, o = px.chunk(4, dim=1)  # each (L, H)
        c = torch.sigmoid(i) * torch.tanh(u)
        return LSTMState(torch.sigmoid(o) * torch.tanh(c), c)

    def forget_gates(self, px: Tensor, children: Children) -> Tensor:
        """``f_jk`` of eq. (4), one row per edge (E, H): from the parent's input and that child's ``h_k``."""
        H = self.hidden_size
        px_f = children.of_parent(px[:, H : 2 * H])  # (E, H)
        return torch.sigmoid(torch.addmm(px_f, children.state.h, self.weight_hh[H : 2 * H].t()))

    def node(self, px: Tensor, children: Children) -> LSTMState:
        h_k, c_k = children.state  # each (E, H)
        h_sum = children.sum(h_k)  # (L, H), eq. (2)
        i, _, u, o = torch.addmm(px, h_sum, self.weight_hh.t()).chunk(4, dim=1)  # each (L, H)
        f = self.forget_gates(px, children)  # (E, H)
        c = torch.sigmoid(i) * torch.tanh(u) + children.sum(f * c_k)  # eq. (7)
        h = torch.sigmoid(o) * torch.tanh(c)  # eq. (8)
        return LSTMState(h, c)


class NaryTreeLSTMCell(TreeCell):
    r"""N-ary Tree-LSTM (Tai et al. 2015, eqs. 9-14): at most ``N = max_arity`` ordered children, a
    separate recurrent matrix per child position, and one forget gate per child that sees all children.

    For node ``j`` with children ``h_{jl}``, ``c_{jl}`` at positions ``l = 1..N`` (zeros where missing):

    .. math::
        i_j &= \sigma(W^{(i)} x_j + \textstyle\sum_{l} U^{(i)}_l h_{jl} + b^{(i)})            && (9) \\
        f_{jk} &= \sigma(W^{(f)} x_j + \textstyle\sum_{l} U^{(f)}_{kl} h_{jl} + b^{(f)}_k)     && (10) \\
        o_j &= \sigma(W^{(o)} x_j + \textstyle\sum_{l} U^{(o)}_l h_{jl} + b^{(o)})            && (11) \\
        u_j &= \tanh(W^{(u)} x_j + \textstyle\sum_{l} U^{(u)}_l h_{jl} + b^{(u)})             && (12) \\
        c_j &= i_j \odot u_j + \textstyle\sum_{l} f_{jl} \odot c_{jl}                          && (13) \\
        h_j &= o_j \odot \tanh(c_j)                                                            && (14)

    Parameters: ``weight_ih`` (4H, I) and ``bias_ih`` (4H) in gate order ``i, f, u, o`` (``W^{(f)}``
    shared by the N forget gates, as in the paper); ``weight_hh`` ((3+N)H, N*H) and ``bias_hh``
    ((3+N)H) with rows ``i, f_1..f_N, u, o`` and columns the children in position order (the paper
    has one ``b^{(f)}``; here each position may learn its own). With ``max_arity=1`` the cell is
    ``carousel.LSTMCell`` with the same ``state_dict``. State: ``LSTMState(h, c)``, each (N, H).
    """

    state_type = LSTMState

    def __init__(self, input_size: int, hidden_size: int, *, max_arity: int, bias: bool = True,
                 device=None, dtype=None) -> None:
        if max_arity is None:
            raise ValueError("expected max_arity, the number of child positions (2 for binary trees), got None; "
                             "ChildSumTreeLSTMCell takes any number of children")
        super().__init__(input_size, hidden_size, max_arity=max_arity)
        H, K = hidden_size, self.max_arity
        self._params(input_size, 4 * H, (3 + K) * H, K * H, bias, {"device": device, "dtype": dtype})
        self.reset_parameters()

    def _gates(self, px: Tensor, pre_hh: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``i, f, u, o`` pre-activations: (L, H), (L, N, H), (L, H), (L, H)."""
        H, K = self.hidden_size, self.max_arity
        x_i, x_f, x_u, x_o = px.chunk(4, dim=1)  # each (L, H)
        if pre_hh is None:  # a leaf: no children, only the recurrent bias
            zeros = px.new_zeros(px.shape[0], (3 + K) * H)
            pre_hh = zeros if self.bias_hh is None else zeros + self.bias_hh
        h_i, h_f, h_u, h_o = pre_hh.split([H, K * H, H, H], dim=1)
        f = x_f.unsqueeze(1) + h_f.view(-1, K, H)  # (L, N, H)
        return x_i + h_i, f, x_u + h_u, x_o + h_o

    def forget_gates(self, px: Tensor, children: Children) -> Tensor:
        """``f_jk`` of eq. (10) for every node and position, (L, N, H)."""
        _, f, _, _ = self._gates(px, self._recurrent(children))
        return torch.sigmoid(f)

    def _recurrent(self, children: Children) -> Tensor:
        h = children.slots(children.state.h, self.max_arity).flatten(1)  # (L, N*H)
        return F.linear(h, self.weight_hh, self.bias_hh)  # (L, (3+N)H)

    def leaf(self, px: Tensor) -> LSTMState:
        i, _, u, o = self._gates(px, None)
        c = torch.sigmoid(i) * torch.tanh(u)
        return LSTMState(torch.sigmoid(o) * torch.tanh(c), c)

    def node(self, px: Tensor, children: Children) -> LSTMState:
        i, f, u, o = self._gates(px, self._recurrent(children))
        c_l = children.slots(children.state.c, self.max_arity)  # (L, N, H), zeros where missing
        c = torch.sigmoid(i) * torch.tanh(u) + (torch.sigmoid(f) * c_l).sum(1)  # eq. (13)
        h = torch.sigmoid(o) * torch.tanh(c)  # eq. (14)
        return LSTMState(h, c)
