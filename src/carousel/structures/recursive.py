r"""Tree cells: the math of one tree node from its input and its children, and the recursive network.

A tree cell is what the level runner (``carousel.runners.levels``) asks of a cell on trees:

* ``project(x)``: ``(N, I) -> (N, G)``, the input half of every node, for all nodes at once;
* ``leaf(px)``: the state of nodes without children from their projected input ``px`` (L, G);
* ``node(px, children)``: the state of nodes with children; ``children``
  (``carousel.runners.Children``) carries the children's states one row per edge (E, F), each
  edge's parent row and child position, and sums per parent with ``index_add_``;
* ``max_arity``: the most children a node may have (positional weights), or None (any number).

A sequence is a tree in which each node has one child (its predecessor), so on a chain every
cell here reduces to a sequence cell of ``carousel.cells`` with the same parameter names.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_choice, check_flag, check_size, factory_kwargs
from ..runners.levels import Children
from ..state import ElmanState


class TreeCell(nn.Module):
    """Base class of the tree cells: sizes, zero states and the shared checks.

    Subclasses set ``state_type`` and define ``project``, ``leaf`` and ``node``.
    """

    state_type: type = ElmanState

    def __init__(self, input_size: int, hidden_size: int, *, max_arity: int | None = None) -> None:
        super().__init__()
        self.input_size = check_size(input_size, "input_size")
        self.hidden_size = check_size(hidden_size, "hidden_size")
        self.max_arity = None if max_arity is None else check_size(max_arity, "max_arity")

    @property
    def output_size(self) -> int:
        """Size of ``h``, the node output."""
        return self.hidden_size

    def project(self, x: Tensor) -> Tensor:
        """Input half of every node: ``(N, I) -> (N, G)``."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def leaf(self, px: Tensor):
        raise NotImplementedError

    def node(self, px: Tensor, children: Children):
        raise NotImplementedError

    def reset_parameters(self) -> None:
        """Every parameter from U(-1/sqrt(H), 1/sqrt(H)), torch.nn's recurrent initialisation."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters(recurse=False):
            nn.init.uniform_(p, -bound, bound)

    def _children_h(self, children: Children, h: Tensor) -> Tensor:
        """``(E, H)`` children rows laid out for the recurrent weights: ``(L, H)`` summed when the
        weights are shared, ``(L, K*H)`` (each child at its position) when they are positional."""
        if self.max_arity is None:
            return children.sum(h)  # (L, H)
        return children.slots(h, self.max_arity).flatten(1)  # (L, K*H)

    def _params(self, input_size: int, rows_ih: int, rows_hh: int, cols_hh: int, bias: bool, kw: dict) -> None:
        bias = check_flag(bias, "bias")
        kw = factory_kwargs(kw.get("device"), kw.get("dtype"))
        self.weight_ih = nn.Parameter(torch.empty(rows_ih, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(rows_hh, cols_hh, **kw))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(rows_ih, **kw))
            self.bias_hh = nn.Parameter(torch.empty(rows_hh, **kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)

    def extra_repr(self) -> str:
        arity = "" if self.max_arity is None else f", max_arity={self.max_arity}"
        return f"{self.input_size}, {self.hidden_size}{arity}"


_NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}


class RecursiveCell(TreeCell):
    r"""Recursive neural network node (Goller & Küchler 1996; Socher et al. 2011).

    .. math::
        h_j = \phi\Big(W_{ih} x_j + b_{ih} + \sum_{k} W_{k}\, h_{jk} + b_{hh}\Big)

    over the children ``h_{jk}`` of node ``j`` (a leaf has none: ``h_j = phi(W_ih x_j + b_ih + b_hh)``).

    * ``weights="positional"`` (needs ``max_arity=K``): one ``W_k`` per child position, so child
      order matters (``W_l``, ``W_r`` of a binary tree); ``weight_hh`` is (H, K*H),
      ``W_k = weight_hh[:, k*H:(k+1)*H]``; a missing child counts as zero.
    * ``weights="shared"`` (the default): one ``W_c`` for every child, ``sum_k W_c h_jk = W_c sum_k h_jk``;
      order-free, any number of children; ``weight_hh`` is (H, H). On a chain this is
      ``carousel.ElmanCell`` with the same parameters.

    ``phi``: ``"tanh"`` (default) or ``"relu"``. State: ``ElmanState(h)``, ``h`` (N, H).
    Raises ``ValueError`` for an unknown option or a positional cell without ``max_arity``.
    """

    state_type = ElmanState

    def __init__(self, input_size: int, hidden_size: int, *, weights: str = "shared", max_arity: int | None = None,
                 nonlinearity: str = "tanh", bias: bool = True, device=None, dtype=None) -> None:
        self.weights = check_choice(weights, ("shared", "positional"), "recursive weights")
        if self.weights == "positional" and max_arity is None:
            raise ValueError("weights='positional' needs max_arity, the number of child positions (2 for binary trees)")
        if self.weights == "shared" and max_arity is not None:
            raise ValueError(f"weights='shared' takes any number of children; max_arity={max_arity} was given")
        super().__init__(input_size, hidden_size, max_arity=max_arity)
        self.nonlinearity = check_choice(nonlinearity, tuple(_NONLINEARITIES), "nonlinearity")
        H = hidden_size
        self._params(input_size, H, H, H * (max_arity or 1), bias, {"device": device, "dtype": dtype})
        self.reset_parameters()

    def _bias(self, pre: Tensor) -> Tensor:
        return pre if self.bias_hh is None else pre + self.bias_hh

    def leaf(self, px: Tensor) -> ElmanState:
        return ElmanState(_NONLINEARITIES[self.nonlinearity](self._bias(px)))  # (L, H)

    def node(self, px: Tensor, children: Children) -> ElmanState:
        kids = self._children_h(children, children.state.h)  # (L, H) or (L, K*H)
        pre = torch.addmm(self._bias(px), kids, self.weight_hh.t())  # (L, H)
        return ElmanState(_NONLINEARITIES[self.nonlinearity](pre))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", weights={self.weights!r}, nonlinearity={self.nonlinearity!r}"
