"""Many directed graphs with typed edges, packed into flat tensors: ``GraphBatch``.

The nodes of all graphs are numbered one after the other (graph 0's nodes first), so a batch is
one big graph whose components are the graphs. Edges are index tensors, as message passing wants
them: ``edge_index`` (2, E) holds the source and the target of each edge (``u -> v``) in the
batch's numbering, ``edge_type`` (E,) its type in ``[0, num_edge_types)``. ``batch`` (N,) is the
graph id of each node. Nothing here needs networkx: graphs come in as plain Python
(``from_graphs``) and go back out the same way (``split``).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import torch
from torch import Tensor

from .._checks import ShapeError, shape_str


class Graph(NamedTuple):
    """One graph in plain Python: ``num_nodes``, ``edges`` as ``(source, target)`` pairs numbered
    from 0 within the graph, ``edge_types`` (one int per edge; None: all type 0) and node
    features ``x`` ((num_nodes, F) floats, (num_nodes,) token ids, or None)."""

    num_nodes: int
    edges: list[tuple[int, int]]
    edge_types: list[int] | None = None
    x: Tensor | None = None


class GraphBatch:
    """Graphs with typed directed edges, batched for message passing.

    Attributes (N nodes, E edges, G graphs, all on one device):

    * ``x``: node features (N, F) of a floating dtype, token ids (N,) of an integer dtype, or None;
    * ``edge_index``: (2, E) int64, row 0 the sources ``u``, row 1 the targets ``v`` of ``u -> v``;
    * ``edge_type``: (E,) int64 in ``[0, num_edge_types)``;
    * ``batch``: (N,) int64, the graph of each node, non-decreasing (each graph's nodes contiguous);
    * ``ptr``: (G + 1,) int64, graph ``g`` owns nodes ``ptr[g]`` to ``ptr[g + 1] - 1``;
    * ``num_graphs`` G and ``num_edge_types``.

    ``GraphBatch(x, edge_index, edge_type, num_nodes=..., num_edge_types=...)`` takes the batch's
    numbering and ``num_nodes`` (G,), the size of each graph. Every check runs here: an edge index
    that is negative or past the last node, an edge between two graphs, an edge type out of range,
    a graph without nodes, wrong shapes or dtypes each raise ``ValueError`` (``TypeError`` for a
    non-tensor) naming the edge or graph.
    """

    def __init__(
        self,
        x: Tensor | None,
        edge_index: Tensor,
        edge_type: Tensor | None = None,
        *,
        num_nodes: Sequence[int] | Tensor,
        num_edge_types: int | None = None,
    ) -> None:
        sizes = _int_vector(num_nodes, "num_nodes")
        if sizes.numel() == 0:
            raise ValueError("expected at least one graph, got num_nodes of length 0")
        empty = (sizes < 1).nonzero()
        if empty.numel():
            g = int(empty[0])
            raise ValueError(f"graph {g} has {int(sizes[g])} nodes; every graph needs at least one node")
        N = int(sizes.sum())
        if not isinstance(edge_index, Tensor):
            raise TypeError(f"expected edge_index as a torch.Tensor of shape (2, E), got {type(edge_index).__name__}")
        if edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise ShapeError(f"expected edge_index of shape (2, E), got {shape_str(edge_index.shape)}")
        _check_integer(edge_index, "edge_index")
        device = edge_index.device
        if device.type == "meta":
            raise ValueError("expected edge_index with values (on the CPU or a GPU), got a tensor on the meta device, "
                             "which holds none to check")
        edge_index = edge_index.to(torch.int64)
        E = edge_index.shape[1]
        if edge_type is None:
            edge_type = torch.zeros(E, dtype=torch.int64, device=device)
        if not isinstance(edge_type, Tensor):
            raise TypeError(f"expected edge_type as a torch.Tensor of shape ({E},), got {type(edge_type).__name__}")
        if edge_type.shape != (E,):
            raise ShapeError(f"expected edge_type of shape ({E},), one type per edge, got {shape_str(edge_type.shape)}")
        _check_integer(edge_type, "edge_type")
        if edge_type.device != device:
            raise ValueError(f"expected edge_type on {device} (where edge_index is), got a tensor on {edge_type.device}")
        edge_type = edge_type.to(dtype=torch.int64)
        if num_edge_types is None:
            num_edge_types = int(edge_type.max()) + 1 if E else 1
        if isinstance(num_edge_types, bool) or not isinstance(num_edge_types, int) or num_edge_types < 1:
            raise ValueError(f"expected num_edge_types as an int >= 1, got {num_edge_types!r}")
        sizes = sizes.to(device)
        ptr = torch.zeros(len(sizes) + 1, dtype=torch.int64, device=device)
        ptr[1:] = sizes.cumsum(0)
        batch = torch.repeat_interleave(torch.arange(len(sizes), device=device), sizes)  # (N,)
        if E:
            _check_edges(edge_index, edge_type, N, num_edge_types, batch, ptr)
        if x is not None:
            x = _check_features(x, N, device)
        self.x, self.edge_index, self.edge_type = x, edge_index, edge_type
        self.batch, self.ptr = batch, ptr
        self.num_graphs, self.num_edge_types = len(sizes), num_edge_types

    # ---- constructors -------------------------------------------------------------------------
    @classmethod
    def from_graphs(cls, graphs: Sequence[Any], *, num_edge_types: int | None = None) -> "GraphBatch":
        """Batch graphs given in plain Python: each a ``Graph`` or a tuple ``(num_nodes, edges[,
        edge_types[, x]])`` with edges numbered within its graph. Either every graph has features
        (of one kind and width) or none has. Errors name the graph and the edge."""
        if isinstance(graphs, (str, bytes)) or not isinstance(graphs, Sequence) or not graphs:
            raise ValueError(f"expected a non-empty list of graphs, got {graphs!r:.80}")
        if num_edge_types is not None and (isinstance(num_edge_types, bool) or not isinstance(num_edge_types, int)
                                           or num_edge_types < 1):
            raise ValueError(f"expected num_edge_types as an int >= 1, got {num_edge_types!r}")
        sources, targets, types, features, sizes = [], [], [], [], []
        offset = 0
        for g, graph in enumerate(graphs):
            graph = _as_graph(graph, g)
            n = graph.num_nodes
            for k, (u, v) in enumerate(graph.edges):
                for end, i in (("source", u), ("target", v)):
                    if not 0 <= i < n:
                        raise ValueError(f"graph {g}, edge {k} ({u} -> {v}): {end} node {i} is out of range; "
                                         f"the graph has {n} nodes, numbered 0 to {n - 1}")
                sources.append(u + offset)
                targets.append(v + offset)
            edge_types = [0] * len(graph.edges) if graph.edge_types is None else graph.edge_types
            for k, t in enumerate(edge_types):
                if num_edge_types is not None and not 0 <= t < num_edge_types:
                    u, v = graph.edges[k]
                    raise ValueError(f"graph {g}, edge {k} ({u} -> {v}) has type {t}; expected a type in [0, {num_edge_types})")
            types += edge_types
            features.append(graph.x)
            sizes.append(n)
            offset += n
        x = _stack_features(features, sizes)
        device = x.device if x is not None else None
        edge_index = torch.tensor([sources, targets], dtype=torch.int64, device=device).reshape(2, -1)
        edge_type = torch.tensor(types, dtype=torch.int64, device=device)
        return cls(x, edge_index, edge_type, num_nodes=sizes, num_edge_types=num_edge_types)

    # ---- views and transforms -----------------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        """N, the nodes of all graphs together."""
        return int(self.ptr[-1])

    @property
    def num_edges(self) -> int:
        return self.edge_index.shape[1]

    @property
    def graph_sizes(self) -> Tensor:
        """(G,) nodes per graph."""
        return self.ptr[1:] - self.ptr[:-1]

    @property
    def device(self) -> torch.device:
        return self.edge_index.device

    def add_reverse_edges(self) -> "GraphBatch":
        """The same graphs with each edge ``u -> v`` of type ``t`` joined by ``v -> u`` of type
        ``t + num_edge_types`` (Li et al. 2016, "Gated Graph Sequence Neural Networks", section 3.1:
        information flows both ways, with its own weights for each direction). The reversed edges
        follow the originals; ``num_edge_types`` doubles."""
        T = self.num_edge_types
        edge_index = torch.cat([self.edge_index, self.edge_index.flip(0)], dim=1)  # (2, 2E)
        edge_type = torch.cat([self.edge_type, self.edge_type + T])  # (2E,)
        return self._replace(edge_index=edge_index, edge_type=edge_type, num_edge_types=2 * T)

    def to(self, device: torch.device | str) -> "GraphBatch":
        """The same batch on ``device``."""
        out = GraphBatch.__new__(GraphBatch)
        out.__dict__.update({k: v.to(device) if isinstance(v, Tensor) else v for k, v in self.__dict__.items()})
        return out

    def split(self) -> list[Graph]:
        """The graphs back in plain Python (``Graph`` each, edges renumbered from 0 within each
        graph, in their order here); ``GraphBatch.from_graphs(b.split())`` rebuilds ``b``."""
        ptr = self.ptr.tolist()
        owner = self.batch[self.edge_index[0]].tolist() if self.num_edges else []
        edges: list[list[tuple[int, int]]] = [[] for _ in range(self.num_graphs)]
        types: list[list[int]] = [[] for _ in range(self.num_graphs)]
        for g, (u, v), t in zip(owner, self.edge_index.t().tolist(), self.edge_type.tolist()):
            edges[g].append((u - ptr[g], v - ptr[g]))
            types[g].append(t)
        return [
            Graph(ptr[g + 1] - ptr[g], edges[g], types[g], None if self.x is None else self.x[ptr[g] : ptr[g + 1]])
            for g in range(self.num_graphs)
        ]

    def _replace(self, **changes: Any) -> "GraphBatch":
        out = GraphBatch.__new__(GraphBatch)
        out.__dict__.update(self.__dict__)
        out.__dict__.update(changes)
        return out

    def __repr__(self) -> str:
        x = "None" if self.x is None else f"{shape_str(self.x.shape)} {self.x.dtype}"
        return (f"GraphBatch(num_graphs={self.num_graphs}, num_nodes={self.num_nodes}, num_edges={self.num_edges}, "
                f"num_edge_types={self.num_edge_types}, x={x})")


def _int_vector(values: Any, name: str) -> Tensor:
    if isinstance(values, Tensor):
        if values.dim() != 1:
            raise ShapeError(f"expected {name} of shape (G,), got {shape_str(values.shape)}")
        _check_integer(values, name)
        return values.to(torch.int64)
    try:
        items = list(values)
    except TypeError:
        raise TypeError(f"expected {name} as a sequence of ints, got {type(values).__name__}") from None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise TypeError(f"expected {name} as a sequence of ints, got {items!r:.80}")
    return torch.tensor(items, dtype=torch.int64)


def _check_integer(t: Tensor, name: str) -> None:
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"expected {name} of an integer dtype (torch.int64), got {t.dtype}")


def _check_edges(edge_index: Tensor, edge_type: Tensor, N: int, T: int, batch: Tensor, ptr: Tensor) -> None:
    """Raise ValueError for the first bad edge: an end out of [0, N), a type out of [0, T), two graphs."""

    def edge(k: int) -> str:
        u, v = edge_index[:, k].tolist()
        return f"edge {k} ({u} -> {v})"

    bad = ((edge_index < 0) | (edge_index >= N)).nonzero()  # (k, 2): rows (end, edge)
    if bad.numel():
        end, k = bad[bad[:, 1].argmin()].tolist()
        i = int(edge_index[end, k])
        raise ValueError(f"{edge(k)}: {('source', 'target')[end]} node {i} is out of range; "
                         f"the batch has {N} nodes, numbered 0 to {N - 1}")
    bad = ((edge_type < 0) | (edge_type >= T)).nonzero()
    if bad.numel():
        k = int(bad[0])
        raise ValueError(f"{edge(k)} has type {int(edge_type[k])}; expected a type in [0, {T})")
    gu, gv = batch[edge_index[0]], batch[edge_index[1]]
    bad = (gu != gv).nonzero()
    if bad.numel():
        k = int(bad[0])
        raise ValueError(f"{edge(k)} joins graph {int(gu[k])} to graph {int(gv[k])}; an edge must stay within its graph")


def _check_features(x: Any, N: int, device: torch.device) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"expected node features x as a torch.Tensor of shape ({N}, F) or token ids ({N},), "
                        f"got {type(x).__name__}")
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"expected node features of a floating dtype or token ids of an integer dtype, got {x.dtype}")
    if x.is_floating_point():
        if x.dim() != 2 or x.shape[0] != N:
            raise ShapeError(f"expected node features x of shape ({N}, F), one row per node, got {shape_str(x.shape)}")
    else:
        if x.dim() != 1 or x.shape[0] != N:
            raise ShapeError(f"expected token ids x of shape ({N},), one per node, got {shape_str(x.shape)}")
        negative = (x < 0).nonzero()
        if negative.numel():
            v = int(negative[0])
            raise ValueError(f"token ids must be >= 0; node {v} has id {int(x[v])}")
        x = x.to(torch.int64)
    if x.device != device:
        raise ValueError(f"expected node features on {device} (where edge_index is), got a tensor on {x.device}")
    return x


def _as_graph(graph: Any, g: int) -> Graph:
    if not isinstance(graph, tuple) or not 2 <= len(graph) <= 4:
        raise ValueError(f"graph {g}: expected a Graph or a tuple (num_nodes, edges[, edge_types[, x]]), got {graph!r:.80}")
    graph = Graph(*graph)
    n = graph.num_nodes
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"graph {g}: expected num_nodes as an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"graph {g} has {n} nodes; every graph needs at least one node")
    edges = list(graph.edges)
    for k, e in enumerate(edges):
        if not (isinstance(e, (tuple, list)) and len(e) == 2 and all(isinstance(i, int) and not isinstance(i, bool) for i in e)):
            raise ValueError(f"graph {g}, edge {k}: expected a pair of node numbers (source, target), got {e!r}")
    types = graph.edge_types
    if types is not None:
        types = list(types)
        if len(types) != len(edges):
            raise ValueError(f"graph {g} has {len(edges)} edges but {len(types)} edge types; expected one type per edge")
        for k, t in enumerate(types):
            if isinstance(t, bool) or not isinstance(t, int) or t < 0:
                raise ValueError(f"graph {g}, edge {k} {tuple(edges[k])} has type {t!r}; expected an int >= 0")
    return Graph(n, [tuple(e) for e in edges], types, graph.x)


def _stack_features(features: list[Tensor | None], sizes: list[int]) -> Tensor | None:
    given = [f is not None for f in features]
    if not any(given):
        return None
    if not all(given):
        g = given.index(not given[0])
        raise ValueError(f"graph {g} {'has' if given[g] else 'lacks'} node features and graph 0 "
                         f"{'has' if given[0] else 'lacks'} them; give features for every graph or for none")
    first = features[0]
    for g, (f, n) in enumerate(zip(features, sizes)):
        if not isinstance(f, Tensor):
            raise TypeError(f"graph {g}: expected node features x as a torch.Tensor, got {type(f).__name__}")
        want = (n,) + tuple(first.shape[1:])
        if tuple(f.shape) != want or f.is_floating_point() != first.is_floating_point():
            raise ShapeError(f"graph {g}: expected node features of shape {shape_str(want)} like graph 0's "
                             f"({first.dtype}), got {shape_str(f.shape)} ({f.dtype})")
        if f.is_floating_point() and f.dtype != first.dtype:
            raise ValueError(f"graph {g}: expected node features of dtype {first.dtype} like graph 0's, got {f.dtype}; "
                             "convert them to one dtype")
        if f.device != first.device:
            raise ValueError(f"graph {g}: expected node features on {first.device} like graph 0's, got them on {f.device}")
    return torch.cat(features)
