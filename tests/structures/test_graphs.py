"""GraphBatch: numbering across graphs, reverse edges, the round trip to plain Python, and an error
naming the edge or graph for every bad graph."""

import pytest
import torch

from carousel.structures import Graph, GraphBatch

GRAPHS = [
    Graph(3, [(0, 1), (1, 2), (2, 0)], [0, 1, 0], torch.arange(6.0).view(3, 2)),
    Graph(1, [], [], torch.tensor([[9.0, 9.5]])),
    Graph(4, [(3, 0), (0, 3), (1, 1)], [1, 1, 0], -torch.arange(8.0).view(4, 2)),
]


def test_from_graphs_numbers_nodes_one_graph_after_another():
    b = GraphBatch.from_graphs(GRAPHS)
    assert (b.num_graphs, b.num_nodes, b.num_edges, b.num_edge_types) == (3, 8, 6, 2)
    assert b.edge_index.tolist() == [[0, 1, 2, 7, 4, 5], [1, 2, 0, 4, 7, 5]]
    assert b.edge_type.tolist() == [0, 1, 0, 1, 1, 0]
    assert b.batch.tolist() == [0, 0, 0, 1, 2, 2, 2, 2]
    assert b.ptr.tolist() == [0, 3, 4, 8] and b.graph_sizes.tolist() == [3, 1, 4]
    assert torch.equal(b.x, torch.cat([g.x for g in GRAPHS]))
    assert b.edge_index.dtype == b.edge_type.dtype == b.batch.dtype == torch.int64


def test_split_gives_back_the_graphs():
    parts = GraphBatch.from_graphs(GRAPHS).split()
    assert len(parts) == 3
    for got, want in zip(parts, GRAPHS):
        assert (got.num_nodes, got.edges, got.edge_types) == (want.num_nodes, want.edges, want.edge_types)
        assert torch.equal(got.x, want.x)
    again = GraphBatch.from_graphs(parts)
    assert torch.equal(again.edge_index, GraphBatch.from_graphs(GRAPHS).edge_index)


def test_plain_tuples_token_ids_and_no_features():
    b = GraphBatch.from_graphs([(2, [(0, 1)]), (3, [(2, 0), (1, 2)])])
    assert b.x is None and b.edge_type.tolist() == [0, 0, 0] and b.num_edge_types == 1
    assert b.edge_index.tolist() == [[0, 4, 3], [1, 2, 4]]
    ids = GraphBatch.from_graphs([(2, [(0, 1)], None, torch.tensor([4, 7])), (1, [], None, torch.tensor([2]))])
    assert ids.x.tolist() == [4, 7, 2] and ids.x.dtype == torch.int64
    assert [g.x.tolist() for g in ids.split()] == [[4, 7], [2]]


def test_num_edge_types_may_exceed_the_types_used():
    b = GraphBatch.from_graphs(GRAPHS, num_edge_types=5)
    assert b.num_edge_types == 5


def test_add_reverse_edges_gives_each_edge_its_reverse_of_a_new_type():
    b = GraphBatch.from_graphs(GRAPHS)
    r = b.add_reverse_edges()
    assert r.num_edge_types == 4 and r.num_edges == 12
    assert r.edge_index[:, 6:].tolist() == [b.edge_index[1].tolist(), b.edge_index[0].tolist()]
    assert r.edge_type.tolist() == [0, 1, 0, 1, 1, 0, 2, 3, 2, 3, 3, 2]
    assert b.num_edges == 6  # the original is unchanged
    assert r.split()[0].edges == [(0, 1), (1, 2), (2, 0), (1, 0), (2, 1), (0, 2)]


def test_the_raw_constructor_and_to():
    b = GraphBatch(torch.zeros(5, 3), torch.tensor([[0, 4], [1, 3]]), torch.tensor([1, 0]), num_nodes=[2, 3])
    assert b.batch.tolist() == [0, 0, 1, 1, 1] and b.num_edge_types == 2
    moved = b.to("cpu")
    assert torch.equal(moved.edge_index, b.edge_index) and moved.num_graphs == 2
    assert "num_graphs=2" in repr(b)


def raw(edge_index, edge_type=None, num_nodes=(2, 3), x=None, **kw):
    return lambda: GraphBatch(x, edge_index, edge_type, num_nodes=list(num_nodes), **kw)


def listed(graphs, **kw):
    return lambda: GraphBatch.from_graphs(graphs, **kw)


E = torch.tensor([[0, 2], [1, 3]])
BAD = {
    "target out of range": (listed([(2, []), (3, [(0, 1), (2, 3)])]), ValueError,
                            r"graph 1, edge 1 \(2 -> 3\): target node 3 is out of range; the graph has 3 nodes"),
    "negative source": (listed([(2, [(-1, 0)])]), ValueError, r"graph 0, edge 0 \(-1 -> 0\): source node -1 is out of range"),
    "empty graph": (listed([(2, []), (0, [])]), ValueError, r"graph 1 has 0 nodes; every graph needs at least one node"),
    "no graphs": (listed([]), ValueError, r"non-empty list of graphs"),
    "edge not a pair": (listed([(3, [(0, 1, 2)])]), ValueError, r"graph 0, edge 0: expected a pair"),
    "types per edge": (listed([(3, [(0, 1)], [0, 1])]), ValueError, r"graph 0 has 1 edges but 2 edge types"),
    "negative type": (listed([(3, [(0, 1)], [-2])]), ValueError, r"graph 0, edge 0 \(0, 1\) has type -2"),
    "type above num_edge_types": (listed([(3, [(0, 1), (1, 2)], [0, 3])], num_edge_types=2), ValueError,
                                  r"graph 0, edge 1 \(1 -> 2\) has type 3; expected a type in \[0, 2\)"),
    "features for some graphs": (listed([(1, [], None, torch.zeros(1, 2)), (1, [])]), ValueError, r"graph 1 lacks node features"),
    "features of another width": (listed([(1, [], None, torch.zeros(1, 2)), (2, [], None, torch.zeros(2, 3))]), ValueError,
                                  r"graph 1: expected node features of shape \(2, 2\)"),
    "num_nodes not an int": (listed([(2.0, [])]), TypeError, r"graph 0: expected num_nodes as an int, got float"),
    "raw: target past the batch": (raw(torch.tensor([[0, 2], [1, 5]])), ValueError,
                                   r"edge 1 \(2 -> 5\): target node 5 is out of range; the batch has 5 nodes"),
    "raw: negative": (raw(torch.tensor([[0, -1], [1, 3]])), ValueError, r"edge 1 \(-1 -> 3\): source node -1 is out of range"),
    "raw: edge between graphs": (raw(torch.tensor([[0, 1], [1, 2]])), ValueError, r"edge 1 \(1 -> 2\) joins graph 0 to graph 1"),
    "raw: shape": (raw(torch.zeros(3, 2, dtype=torch.int64)), ValueError, r"expected edge_index of shape \(2, E\), got \(3, 2\)"),
    "raw: float indices": (raw(E.float()), TypeError, r"edge_index of an integer dtype.*got torch.float32"),
    "raw: type shape": (raw(E, torch.zeros(3, dtype=torch.int64)), ValueError, r"expected edge_type of shape \(2,\)"),
    "raw: type out of range": (raw(E, torch.tensor([0, 2]), num_edge_types=2), ValueError,
                               r"edge 1 \(2 -> 3\) has type 2; expected a type in \[0, 2\)"),
    "raw: float types": (raw(E, torch.zeros(2)), TypeError, r"edge_type of an integer dtype"),
    "raw: empty graph": (raw(E, num_nodes=(2, 0, 3)), ValueError, r"graph 1 has 0 nodes"),
    "raw: num_edge_types 0": (raw(E, num_edge_types=0), ValueError, r"num_edge_types as an int >= 1, got 0"),
    "raw: feature rows": (raw(E, x=torch.zeros(4, 2)), ValueError, r"node features x of shape \(5, F\), one row per node, got \(4, 2\)"),
    "raw: token ids shape": (raw(E, x=torch.zeros(5, 1, dtype=torch.int64)), ValueError, r"token ids x of shape \(5,\)"),
    "raw: negative token id": (raw(E, x=torch.tensor([0, 1, -3, 2, 2])), ValueError, r"node 2 has id -3"),
    "raw: boolean features": (raw(E, x=torch.zeros(5, 2, dtype=torch.bool)), TypeError, r"got torch.bool"),
    "raw: edge_index a list": (raw([[0, 2], [1, 3]]), TypeError, r"edge_index as a torch.Tensor"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_every_bad_graph_gets_its_error(case):
    make, error, message = BAD[case]
    with pytest.raises(error, match=message):
        make()
