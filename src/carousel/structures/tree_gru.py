r"""A gated recurrent unit over trees, in child-sum form with one reset gate per child."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..runners.levels import Children
from ..state import GRUState
from .recursive import TreeCell


class TreeGRUCell(TreeCell):
    r"""Child-Sum Tree-GRU: the GRU of Cho et al. 2014 ("Learning Phrase Representations using RNN
    Encoder-Decoder for Statistical Machine Translation") with the Child-Sum Tree-LSTM's treatment
    of children (Tai et al. 2015): gates that read all children see their sum, and the reset gate,
    like the Tree-LSTM's forget gate, is computed per child from that child's own state.

    For node ``j`` with input ``x_j`` and children ``h_k``:

    .. math::
        \tilde h_j &= \textstyle\sum_{k} h_k \\
        r_{jk} &= \sigma(W_{ir} x_j + b_{ir} + W_{hr} h_k + b_{hr})  \text{ one per child} \\
        z_j &= \sigma(W_{iz} x_j + b_{iz} + W_{hz} \tilde h_j + b_{hz}) \\
        n_j &= \tanh(W_{in} x_j + b_{in} + W_{hn} \textstyle\sum_{k} (r_{jk} \odot h_k) + b_{hn}) \\
        h_j &= (1 - z_j) \odot n_j + z_j \odot \tilde h_j

    A leaf has no children (``h~ = 0``, the sum in ``n`` is 0). Parameters in ``carousel.GRUCell``'s
    layout (gate order ``r, z, n``): ``weight_ih`` (3H, I), ``weight_hh`` (3H, H), ``bias_ih``,
    ``bias_hh`` (3H); on a chain the cell is ``GRUCell(variant="cho")`` with the same ``state_dict``.
    State: ``GRUState(h)``, ``h`` (N, H).
    """

    state_type = GRUState

    def __init__(self, input_size: int, hidden_size: int, *, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size)
        H = hidden_size
        self._params(input_size, 3 * H, 3 * H, H, bias, {"device": device, "dtype": dtype})
        self.reset_parameters()

    def _b(self, gate: int) -> Tensor | None:
        H = self.hidden_size
        return None if self.bias_hh is None else self.bias_hh[gate * H : (gate + 1) * H]

    def leaf(self, px: Tensor) -> GRUState:
        _, x_z, x_n = px.chunk(3, dim=1)  # each (L, H)
        b_z, b_n = self._b(1), self._b(2)
        z = torch.sigmoid(x_z if b_z is None else x_z + b_z)
        n = torch.tanh(x_n if b_n is None else x_n + b_n)
        return GRUState((1 - z) * n)

    def reset_gates(self, px: Tensor, children: Children) -> Tensor:
        """``r_jk``, one row per edge (E, H): from the parent's input and that child's ``h_k``."""
        H = self.hidden_size
        x_r = children.of_parent(px[:, :H])  # (E, H)
        return torch.sigmoid(x_r + F.linear(children.state.h, self.weight_hh[:H], self._b(0)))

    def node(self, px: Tensor, children: Children) -> GRUState:
        H = self.hidden_size
        h_k = children.state.h  # (E, H)
        _, x_z, x_n = px.chunk(3, dim=1)  # each (L, H)
        h_sum = children.sum(h_k)  # (L, H)
        r = self.reset_gates(px, children)  # (E, H)
        z = torch.sigmoid(x_z + F.linear(h_sum, self.weight_hh[H : 2 * H], self._b(1)))
        n = torch.tanh(x_n + F.linear(children.sum(r * h_k), self.weight_hh[2 * H :], self._b(2)))
        return GRUState((1 - z) * n + z * h_sum)
