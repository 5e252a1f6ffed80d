"""Generated graph tasks, drawn from a seed: plain Python graphs that ``carousel.structures.GraphBatch``
batches (``GraphBatch.from_graphs``).

``reachability``: a directed graph with a marked source ``s`` and target ``t``; does a directed
path lead from ``s`` to ``t``? The classes are balanced by construction (the answer is drawn
first, then ``t`` among the nodes that fit it), so the majority-class baseline is 50% up to
sampling noise. Two families of graphs: Erdős–Rényi random graphs, where the density around ``s``
and ``t`` hints at the answer, and two directed chains, where nothing local does and a model must
carry ``s``'s mark along the edges, one step per edge.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .._checks import check_number, check_size


FAMILIES = ("random", "chains")
MAX_DRAWS = 2000  # redraws of one graph before the settings are declared unable to give its answer


class GraphTaskData(NamedTuple):
    """``graphs``: one tuple ``(num_nodes, edges, edge_types, x)`` per graph (edges numbered within
    the graph, ``edge_types`` None: one type), the shape ``GraphBatch.from_graphs`` takes;
    ``labels``: (G,) int64."""

    graphs: list[tuple[int, list[tuple[int, int]], None, Tensor]]
    labels: Tensor


def reachable_from(num_nodes: int, edges: list[tuple[int, int]], source: int) -> set[int]:
    """The nodes that a directed path of zero or more edges leads to from ``source`` (source included)."""
    out: list[list[int]] = [[] for _ in range(num_nodes)]
    for u, v in edges:
        out[u].append(v)
    seen, frontier = {source}, [source]
    while frontier:
        u = frontier.pop()
        for v in out[u]:
            if v not in seen:
                seen.add(v)
                frontier.append(v)
    return seen


def reachability(
    num_graphs: int,
    max_nodes: int = 12,
    *,
    min_nodes: int | None = None,
    mean_degree: float = 1.5,
    family: str = "random",
    seed: int = 0,
) -> GraphTaskData:
    """``num_graphs`` directed graphs, each of ``n`` nodes drawn uniformly from ``[min_nodes,
    max_nodes]`` (``min_nodes`` defaults to ``max_nodes // 2``, at least 2; 4 for chains), of a
    ``family``:

    * ``"random"``: Erdős–Rényi, each ordered pair ``u -> v``, ``u != v``, an edge with
      probability ``mean_degree / (n - 1)``. Local statistics carry part of the answer (a source
      with many successors tends to reach the target), so a model can beat the longest path it
      can follow;
    * ``"chains"``: the nodes, in random order, cut at a random place into two directed paths
      (``mean_degree`` unused). Every node looks alike locally, and the target is either further
      down the source's path (1), or earlier on it or on the other path (0): only following the
      edges answers.

    Node features ``x`` are (n, 2) floats: column 0 marks the source ``s``, column 1 the target
    ``t`` (``t != s``). The label is 1 when ``t`` is reachable from ``s``, else 0; it is drawn
    first with probability 1/2, and a graph with no node of the drawn kind is drawn again. ``s``
    always has an outgoing edge and ``t`` an incoming one, so that neither tells the answer alone.
    The same arguments give the same data.
    """
    check_size(num_graphs, "num_graphs")
    check_size(max_nodes, "max_nodes", minimum=2)
    if min_nodes is not None:
        check_size(min_nodes, "min_nodes", minimum=2)
    check_number(mean_degree, "mean_degree", low=0.0, low_open=True)
    check_number(seed, "seed", integer=True)
    min_nodes = max(4 if family == "chains" else 2, max_nodes // 2) if min_nodes is None else min_nodes
    if not 2 <= min_nodes <= max_nodes:
        raise ValueError(f"expected 2 <= min_nodes <= max_nodes, got min_nodes={min_nodes}, max_nodes={max_nodes}")
    if num_graphs < 1:
        raise ValueError(f"expected num_graphs >= 1, got {num_graphs}")
    if not mean_degree > 0:
        raise ValueError(f"expected mean_degree > 0, got {mean_degree}")
    if family not in FAMILIES:
        raise ValueError(f"unknown graph family {family!r}; expected one of: {', '.join(FAMILIES)}")
    if family == "chains" and min_nodes < 4:
        raise ValueError(f"two chains need at least 4 nodes; got min_nodes={min_nodes}")
    g = torch.Generator().manual_seed(seed)
    graphs, labels = [], []
    for _ in range(num_graphs):
        label = int(torch.randint(2, (), generator=g))
        for _ in range(MAX_DRAWS):
            n = int(torch.randint(min_nodes, max_nodes + 1, (), generator=g))
            edges = _chains(n, g) if family == "chains" else _erdos_renyi(n, mean_degree, g)
            senders, receivers = sorted({u for u, _ in edges}), {v for _, v in edges}
            if not senders:
                continue
            s = senders[int(torch.randint(len(senders), (), generator=g))]
            reach = reachable_from(n, edges, s) - {s}
            candidates = sorted(reach) if label else sorted(receivers - reach - {s})
            if candidates:
                break
        else:
            kind = "t reachable from s" if label else "t that s does not reach"
            raise ValueError(f"{MAX_DRAWS} graphs in a row had no pair of a sender s and a {kind} (mean_degree={mean_degree:g}, {min_nodes}-{max_nodes} "
                             f"nodes); expected settings that give both answers: a mean degree well below the "
                             f"number of nodes - 1 (a complete graph reaches everything) and not near 0")
        t = candidates[int(torch.randint(len(candidates), (), generator=g))]
        x = torch.zeros(n, 2)
        x[s, 0] = 1.0
        x[t, 1] = 1.0
        graphs.append((n, edges, None, x))
        labels.append(label)
    return GraphTaskData(graphs, torch.tensor(labels, dtype=torch.int64))


def _erdos_renyi(n: int, mean_degree: float, g: torch.Generator) -> list[tuple[int, int]]:
    adjacency = torch.rand(n, n, generator=g) < min(1.0, mean_degree / (n - 1))
    adjacency.fill_diagonal_(False)
    return [tuple(e) for e in adjacency.nonzero().tolist()]


def _chains(n: int, g: torch.Generator) -> list[tuple[int, int]]:
    order = torch.randperm(n, generator=g).tolist()
    cut = int(torch.randint(2, n - 1, (), generator=g))  # both paths have at least 2 nodes
    return [(u, v) for path in (order[:cut], order[cut:]) for u, v in zip(path, path[1:])]
