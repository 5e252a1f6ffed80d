r"""Gated graph networks (Li, Tarlow, Brockschmidt & Zemel 2016, "Gated Graph Sequence Neural Networks").

Every node carries a state; for K steps each node sums the messages along its incoming typed edges
and a GRU cell advances its state from that sum. Written in the paper's letters (eqs. 1-7), for a
node ``v`` with annotation (features) ``x_v``, edges ``u -> v`` of type ``t``:

.. math::
    h_v^{(1)} &= [x_v^\top, 0]^\top                                         && (1) \\
    a_v^{(k)} &= \sum_{(u \to v,\ t)} W_t h_u^{(k-1)} + b_t                  && (2) \\
    z_v^{(k)} &= \sigma(W^z a_v^{(k)} + U^z h_v^{(k-1)})                     && (3) \\
    r_v^{(k)} &= \sigma(W^r a_v^{(k)} + U^r h_v^{(k-1)})                     && (4) \\
    \tilde h_v^{(k)} &= \tanh(W a_v^{(k)} + U (r_v^{(k)} \odot h_v^{(k-1)}))  && (5) \\
    h_v^{(k)} &= (1 - z_v^{(k)}) \odot h_v^{(k-1)} + z_v^{(k)} \odot \tilde h_v^{(k)}  && (6) \\
    h_G &= \tanh\Big(\sum_{v \in G} \sigma(i(h_v^{(K)}, x_v)) \odot \tanh(j(h_v^{(K)}, x_v))\Big)  && (7)

Eqs. 3-6 are one step of carousel's ``GRUCell`` with ``variant="cho"`` (the reset gate before the
product, as in eq. 5), the input being ``a_v``; carousel names the gate that keeps the old state
``z``, which is the paper's ``1 - z``. The sum of eq. 2 is computed for all edges at once: one
matrix product gives ``W_t h_u`` for every node and edge type, a gather picks each edge's message,
and ``index_add_`` sums them into their targets (no Python loop over nodes, edges or types).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import ShapeError, check_choice, check_flag, check_same_kind, check_size, factory_kwargs, shape_str
from ..cells import GRUCell
from ..state import GRUState
from .graphs import GraphBatch


class NodeStates(NamedTuple):
    """What a ``GatedGraphNetwork`` returns: ``h``, the node states after the last step (N, H),
    and ``h0``, the initial states of eq. 1 (N, H), which the readouts read as the annotation ``x_v``."""

    h: Tensor
    h0: Tensor


class GatedGraphNetwork(nn.Module):
    """The propagation model of a gated graph network (Li et al. 2016, eqs. 1-6; see the module doc).

    Args:
        hidden_size: H, the size of every node state.
        num_edge_types: T, edge types the model has weights for (``W_t``, ``b_t``); a batch may
            use fewer. For the paper's reverse edges call ``GraphBatch.add_reverse_edges`` and count
            them here (2T).
        steps: K, propagation steps.
        input_size: F, the width of float node features ``x`` (N, F); or
        num_tokens: the vocabulary size when the nodes carry token ids ``x`` (N,) (embedded to H).
        init: how features become ``h^{(1)}``: ``"pad"`` (eq. 1: ``[x_v, 0]``, needs F <= H) or
            ``"linear"`` (a learned ``W x_v + b``); token ids are always embedded.
        bias: whether messages have a per-type bias ``b_t`` (the GRU cell always has its biases).
        gru_variant: ``"cho"`` (the default: eq. 5, the reset gate before the product) or
            ``"torch"`` (torch.nn.GRUCell's form).

    ``forward(graphs)`` takes a ``GraphBatch`` and returns ``NodeStates(h, h0)``, each (N, H).
    Raises ``ValueError`` when the batch's features do not fit (width, floats vs token ids), when
    it has more edge types than the model, or lives on another device or dtype.
    """

    def __init__(
        self,
        hidden_size: int,
        num_edge_types: int,
        *,
        steps: int = 5,
        input_size: int | None = None,
        num_tokens: int | None = None,
        init: str = "pad",
        bias: bool = True,
        gru_variant: str = "cho",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        kw = factory_kwargs(device, dtype)
        bias = check_flag(bias, "bias")
        H = self.hidden_size = check_size(hidden_size, "hidden_size")
        self.num_edge_types = check_size(num_edge_types, "num_edge_types")
        self.steps = check_size(steps, "steps")
        if (input_size is None) == (num_tokens is None):
            raise ValueError("give exactly one of input_size (float node features) and num_tokens (token ids), "
                             f"got input_size={input_size!r}, num_tokens={num_tokens!r}")
        self.init = check_choice(init, ("pad", "linear"), "GGNN init")
        self.input_size, self.num_tokens = input_size, num_tokens
        self.embedding: nn.Module | None = None
        if num_tokens is not None:
            self.embedding = nn.Embedding(check_size(num_tokens, "num_tokens"), H, **kw)
        elif init == "linear":
            self.embedding = nn.Linear(check_size(input_size, "input_size"), H, **kw)
        elif check_size(input_size, "input_size") > H:
            raise ValueError(f"init='pad' pads features of width {input_size} with zeros to hidden_size {H}; "
                             f"it needs input_size <= hidden_size (or init='linear')")
        T = self.num_edge_types
        self.edge_weight = nn.Parameter(torch.empty(T, H, H, **kw))  # W_t, (T, H_out, H_in)
        self.edge_bias = nn.Parameter(torch.empty(T, H, **kw)) if bias else None  # b_t, (T, H)
        self.cell = GRUCell(H, H, variant=gru_variant, **kw)
        self.reset_message_parameters()

    def reset_message_parameters(self) -> None:
        bound = 1 / math.sqrt(self.hidden_size)
        nn.init.uniform_(self.edge_weight, -bound, bound)
        if self.edge_bias is not None:
            nn.init.uniform_(self.edge_bias, -bound, bound)

    # ---- the equations -----------------------------------------------------------------------
    def initial_states(self, graphs: GraphBatch) -> Tensor:
        """``h^{(1)}`` (N, H) from the node features (eq. 1) or token ids."""
        x = self._check(graphs)
        if self.embedding is not None:
            return self.embedding(x)  # (N, H)
        return F.pad(x, (0, self.hidden_size - x.shape[1]))  # (N, H): [x_v, 0]

    def messages(self, h: Tensor, graphs: GraphBatch) -> Tensor:
        """``a_v = Σ_{(u -> v, t)} W_t h_u + b_t`` (eq. 2) for every node: (N, H) from states ``h`` (N, H)."""
        N, H, T = h.shape[0], self.hidden_size, self.num_edge_types
        src, dst = graphs.edge_index  # (E,) each
        per_type = F.linear(h, self.edge_weight.reshape(T * H, H)).view(N, T, H)  # W_t h_u for every u, t
        m = per_type[src, graphs.edge_type]  # (E, H): the message along each edge
        if self.edge_bias is not None:
            m = m + self.edge_bias[graphs.edge_type]
        return h.new_zeros(N, H).index_add_(0, dst, m)  # (N, H)

    def propagate(self, h: Tensor, graphs: GraphBatch) -> Tensor:
        """One step, eqs. 2-6: ``h^{(k)}`` (N, H) from ``h^{(k-1)}`` (N, H)."""
        a = self.messages(h, graphs)  # (N, H)
        return self.cell.step(self.cell.project(a), GRUState(h)).h

    def forward(self, graphs: GraphBatch) -> NodeStates:
        h0 = self.initial_states(graphs)
        h = h0
        for _ in range(self.steps):
            h = self.propagate(h, graphs)
        return NodeStates(h, h0)

    # ---- boundary ----------------------------------------------------------------------------
    def _check(self, graphs: GraphBatch) -> Tensor:
        if not isinstance(graphs, GraphBatch):
            raise TypeError(f"expected a GraphBatch, got {type(graphs).__name__}")
        if graphs.num_edge_types > self.num_edge_types:
            raise ValueError(f"the batch has {graphs.num_edge_types} edge types but the model has weights for "
                             f"{self.num_edge_types}; build it with num_edge_types={graphs.num_edge_types}")
        x = graphs.x
        if x is None:
            raise ValueError("expected a GraphBatch with node features or token ids x, got x=None")
        ref = self.edge_weight
        if x.device != ref.device:
            raise ValueError(f"expected the graphs on {ref.device} (where the model is), got them on {x.device}")
        if self.num_tokens is not None:
            if x.is_floating_point():
                raise ValueError(f"the model embeds token ids (num_tokens={self.num_tokens}); expected x of shape "
                                 f"(N,) and an integer dtype, got {shape_str(x.shape)} {x.dtype}")
            if x.numel() and int(x.max()) >= self.num_tokens:
                raise ValueError(f"token id {int(x.max())} is out of range for num_tokens={self.num_tokens}")
            return x
        if not x.is_floating_point():
            raise ValueError(f"the model reads float node features of width {self.input_size}; got token ids "
                             f"{shape_str(x.shape)} {x.dtype} (build it with num_tokens=...)")
        if x.shape[1] != self.input_size:
            raise ShapeError(f"expected node features x of shape (N, {self.input_size}), got {shape_str(x.shape)}")
        if x.dtype != ref.dtype:
            raise ValueError(f"expected node features of dtype {ref.dtype} (that of the model), got {x.dtype}")
        return x

    def extra_repr(self) -> str:
        given = f"num_tokens={self.num_tokens}" if self.num_tokens is not None else f"input_size={self.input_size}"
        return f"{self.hidden_size}, num_edge_types={self.num_edge_types}, steps={self.steps}, {given}, init={self.init!r}"


class NodeReadout(nn.Module):
    """Node-level output ``o_v = g(h_v^{(K)}, x_v)`` (Li et al. 2016, section 3.3), ``g`` linear
    over the concatenation: ``forward(h (N, H), x (N, A)) -> (N, output_size)``."""

    def __init__(self, hidden_size: int, annotation_size: int, output_size: int, *, device=None, dtype=None) -> None:
        super().__init__()
        self.hidden_size, self.annotation_size = check_size(hidden_size, "hidden_size"), check_size(annotation_size, "annotation_size")
        self.g = nn.Linear(hidden_size + annotation_size, check_size(output_size, "output_size"), **factory_kwargs(device, dtype))

    def forward(self, h: Tensor, x: Tensor) -> Tensor:
        return self.g(_concat(h, x, self.hidden_size, self.annotation_size, self.g.weight))  # (N, O)


class GatedSumReadout(nn.Module):
    r"""Graph-level output, the gated sum of Li et al. 2016, eq. 7:
    ``h_G = tanh(Σ_{v in G} σ(i(h_v, x_v)) ⊙ tanh(j(h_v, x_v)))``, ``i`` and ``j`` linear maps of
    the concatenation ``[h_v, x_v]``: a soft attention deciding which nodes count for the graph.

    ``forward(h (N, H), x (N, A), graphs) -> (G, output_size)``; the per-graph sum is one
    ``index_add_`` over ``graphs.batch``.
    """

    def __init__(self, hidden_size: int, annotation_size: int, output_size: int, *, device=None, dtype=None) -> None:
        super().__init__()
        self.hidden_size, self.annotation_size = check_size(hidden_size, "hidden_size"), check_size(annotation_size, "annotation_size")
        kw = factory_kwargs(device, dtype)
        O = check_size(output_size, "output_size")
        self.i = nn.Linear(hidden_size + annotation_size, O, **kw)  # gate
        self.j = nn.Linear(hidden_size + annotation_size, O, **kw)  # value

    def forward(self, h: Tensor, x: Tensor, graphs: GraphBatch) -> Tensor:
        if not isinstance(graphs, GraphBatch):
            raise TypeError(f"expected a GraphBatch, got {type(graphs).__name__}")
        hx = _concat(h, x, self.hidden_size, self.annotation_size, self.i.weight)  # (N, H + A)
        if graphs.device != hx.device:
            raise ValueError(f"expected the graphs on {hx.device} (where the node states are), got them on {graphs.device}")
        if hx.shape[0] != graphs.num_nodes:
            raise ShapeError(f"expected node states for the batch's {graphs.num_nodes} nodes, got {hx.shape[0]}")
        gated = torch.sigmoid(self.i(hx)) * torch.tanh(self.j(hx))  # (N, O)
        total = gated.new_zeros(graphs.num_graphs, gated.shape[1]).index_add_(0, graphs.batch, gated)  # (G, O)
        return torch.tanh(total)


def _concat(h: Tensor, x: Tensor, H: int, A: int, ref: Tensor) -> Tensor:
    for name, t in (("node states h", h), ("annotations x", x)):
        if not isinstance(t, Tensor):
            raise TypeError(f"expected {name} as a torch.Tensor, got {type(t).__name__}")
        check_same_kind(t, ref, name, "the readout's parameters")
    if h.dim() != 2 or h.shape[1] != H or x.dim() != 2 or x.shape[1] != A or x.shape[0] != h.shape[0]:
        raise ShapeError(f"expected node states h (N, {H}) and annotations x (N, {A}), "
                         f"got {shape_str(h.shape)} and {shape_str(x.shape)}")
    return torch.cat([h, x], dim=1)
