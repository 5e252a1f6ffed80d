"""Bad input to trees and graphs (``carousel.structures``): the batches' constructors, the tree cells
and layers, ``TreeEncoder``, the gated graph network and its readouts (see ``api_matrix``)."""

from __future__ import annotations

import numpy as np
import torch

import carousel as C
from carousel.structures import (
    BidirectionalTree, BottomUp, ChildSumTreeLSTMCell, GatedGraphNetwork, GatedSumReadout, Graph, GraphBatch,
    NaryTreeLSTMCell, NodeReadout, RecursiveCell, TopDown, TreeBatch, TreeEncoder, TreeGRUCell, plot_tree_states,
)
from edges.api_matrix import Case, parametrize, raises, run_case

I, H = 3, 4


def _assert(condition: bool) -> None:
    assert condition
TREES = ["(S (NP the cat) (VP sat))", "(S a b)"]


def _trees():
    return TreeBatch.from_brackets(TREES)


def _x(n=None, dtype=torch.float32, device="cpu"):
    n = _trees().num_nodes if n is None else n
    return torch.randn(n, I, generator=torch.Generator().manual_seed(1)).to(device=device, dtype=dtype)


def _up(**kw):
    torch.manual_seed(0)
    return BottomUp(ChildSumTreeLSTMCell(I, H), **kw)


def _graphs(dtype=torch.float32):
    g = torch.Generator().manual_seed(2)
    return GraphBatch.from_graphs([Graph(3, [(0, 1), (1, 2)], [0, 1], torch.randn(3, I, generator=g).to(dtype)),
                                   Graph(2, [(1, 0)], [0], torch.randn(2, I, generator=g).to(dtype))])


def _ggnn(**kw):
    torch.manual_seed(0)
    return GatedGraphNetwork(H, 2, steps=2, input_size=I, **kw)


def _states():
    return _ggnn()(_graphs())


def _same_parents(want):
    """The batch has exactly these parent indices (numbering as ``from_parents`` documents)."""

    def check(batch):
        assert batch.parent.tolist() == want, batch.parent.tolist()

    return check


def _chain_equals_lstm(out):
    """On a chain the Child-Sum Tree-LSTM is ``LSTMCell`` read from the leaf up (same state_dict)."""
    cell, xs = out
    seq = C.Recurrent(cell)(xs.flip(0).unsqueeze(0))[0][0].flip(0)
    tree_cell = ChildSumTreeLSTMCell(I, H)
    tree_cell.load_state_dict(cell.state_dict())
    nodes = BottomUp(tree_cell)(xs, TreeBatch.from_parents([[-1, 0, 1, 2]])).nodes
    torch.testing.assert_close(nodes, seq, rtol=1e-5, atol=1e-6)


def _readout_per_graph(result):
    """The gated-sum readout of the whole batch equals each graph's own, one at a time."""
    readout, whole = result
    ggnn, graphs = _ggnn(), _graphs()
    parts = [readout(*ggnn(GraphBatch.from_graphs([g])), GraphBatch.from_graphs([g])) for g in graphs.split()]
    torch.testing.assert_close(whole, torch.cat(parts), rtol=1e-5, atol=1e-6)


def _lstm_chain():
    torch.manual_seed(0)
    return C.LSTMCell(I, H), torch.randn(4, I, generator=torch.Generator().manual_seed(3))


def _readout_whole():
    torch.manual_seed(1)
    readout = GatedSumReadout(H, H, 2)
    h, h0 = _states()
    return readout, readout(h, h0, _graphs())


CASES = [
    # ---- TreeBatch constructors: wrong kinds of input, non-integral indices, bad text ----
    Case("nested-none", lambda: TreeBatch.from_nested(None), raises(TypeError, "expected a list of trees", "NoneType")),
    Case("brackets-none", lambda: TreeBatch.from_brackets(None), raises(TypeError, "expected a list of trees", "NoneType")),
    Case("brackets-bytes", lambda: TreeBatch.from_brackets(b"(S a)"), raises(TypeError, "expected a list of trees", "bytes")),
    Case("brackets-list-of-int", lambda: TreeBatch.from_brackets(["(S a)", 3]), raises(TypeError, "str", "int 3")),
    Case("parents-none", lambda: TreeBatch.from_parents(None), raises(TypeError, "expected a list of trees", "NoneType")),
    Case("parents-flat-list", lambda: TreeBatch.from_parents([-1, 0, 0]), raises(TypeError, "a list of lists", "int -1", "[[-1, 0, ...]]")),
    Case("parents-float", lambda: TreeBatch.from_parents([[-1, 0.0]]), raises(TypeError, "tree 0, node 1", "parent 0.0", "expected an integer")),
    Case("parents-float-tensor", lambda: TreeBatch.from_parents([torch.tensor([-1.0, 0.0])]), raises(TypeError, "integer parent indices", "torch.float32")),
    Case("parents-numpy-ints", lambda: TreeBatch.from_parents([np.array([-1, 0, 0])]), _same_parents([-1, 0, 0])),
    Case("parents-int-tensor", lambda: TreeBatch.from_parents([torch.tensor([-1, 0, 1])]), _same_parents([-1, 0, 1])),
    Case("positions-float", lambda: TreeBatch.from_parents([[-1, 0, 0]], positions=[[0, 0.5, 1.5]]), raises(TypeError, "position 0.5", "expected an integer")),
    Case("positions-negative", lambda: TreeBatch.from_parents([[-1, 0, 0]], positions=[[0, -1, 0]]), raises(ValueError, "position -1", ">= 0")),
    Case("edges-float-end", lambda: TreeBatch.from_edges([(0, 1.7)], 2), raises(TypeError, "1.7", "expected an integer")),
    Case("edges-one-end", lambda: TreeBatch.from_edges([(0,)], 2), raises(ValueError, "edge 0", "(parent, child)", "(0,)")),
    Case("edges-num-nodes-float", lambda: TreeBatch.from_edges([(0, 1)], 2.5), raises(TypeError, "num_nodes", ">= 1", "2.5")),
    Case("edges-num-nodes-0", lambda: TreeBatch.from_edges([], 0), raises(ValueError, "num_nodes", ">= 1", "0")),
    Case("ast-syntax-error", lambda: TreeBatch.from_ast("def f(:"), raises(ValueError, "tree 0", "valid Python source", "line 1")),
    Case("ast-int", lambda: TreeBatch.from_ast(3), raises(TypeError, "expected a list of trees", "int 3")),
    Case("conllu-garbage", lambda: TreeBatch.from_conllu("hello world\n\n"), raises(ValueError, "expected CoNLL-U text", "cannot parse")),
    Case("conllu-none", lambda: TreeBatch.from_conllu(None), raises(TypeError, "expected a list of trees", "NoneType")),
    Case("vocabulary-min-count-str", lambda: _trees().vocabulary(min_count="a"), raises(TypeError, "min_count", "str 'a'")),
    Case("encode-list", lambda: _trees().encode(["S"]), raises(TypeError, "mapping from label to id", "list")),
    Case("to-bad-device", lambda: _trees().to("gpu7"), raises(ValueError, "expected a device", "'gpu7'")),
    # ---- tree cells: parameter dtype, device, flags, a missing arity ----
    Case("recursive-int-dtype", lambda: RecursiveCell(I, H, dtype=torch.int32), raises(ValueError, "floating-point dtype", "torch.int32")),
    Case("child-sum-int-dtype", lambda: ChildSumTreeLSTMCell(I, H, dtype=torch.int64), raises(ValueError, "floating-point dtype", "torch.int64")),
    Case("tree-gru-int-dtype", lambda: TreeGRUCell(I, H, dtype=torch.int32), raises(ValueError, "floating-point dtype", "torch.int32")),
    Case("nary-int-dtype", lambda: NaryTreeLSTMCell(I, H, max_arity=2, dtype=torch.int32), raises(ValueError, "floating-point dtype", "torch.int32")),
    Case("child-sum-bad-device", lambda: ChildSumTreeLSTMCell(I, H, device="gpu7"), raises(ValueError, "expected a device", "'gpu7'")),
    Case("child-sum-bias-str", lambda: ChildSumTreeLSTMCell(I, H, bias="yes"), raises(TypeError, "bias", "True or False", "'yes'")),
    Case("nary-arity-none", lambda: NaryTreeLSTMCell(I, H, max_arity=None), raises(ValueError, "max_arity", "got None")),
    Case("encoder-arity-for-order-free-cell", lambda: TreeEncoder(10, I, H, cell="child_sum_lstm", max_arity=2),
         raises(ValueError, "'child_sum_lstm'", "expected max_arity=None, got 2")),
    Case("encoder-arity-for-positional-cell", lambda: TreeEncoder(10, I, H, cell="nary_lstm", max_arity=2).layer.cell,
         lambda cell: _assert(isinstance(cell, NaryTreeLSTMCell) and cell.max_arity == 2)),
    # ---- tree layers: node inputs of another dtype or device, integer inputs, a batch elsewhere ----
    Case("up-float64-x", lambda: _up()(_x(dtype=torch.float64), _trees()), raises(ValueError, "torch.float32", "torch.float64")),
    Case("up-reference-float64-x", lambda: _up(backend="reference")(_x(dtype=torch.float64), _trees()),
         raises(ValueError, "torch.float32", "torch.float64")),
    Case("up-int-x", lambda: _up()(_x().long(), _trees()), raises(ValueError, "floating-point node inputs", "torch.int64")),
    Case("up-meta-x", lambda: _up()(_x(device="meta"), _trees()), raises(ValueError, "cpu", "meta")),
    Case("up-batch-on-meta", lambda: _up()(_x(), _trees().to("meta")), raises(ValueError, "TreeBatch on cpu", "meta")),
    Case("down-float64-x", lambda: TopDown(C.GRUCell(I, H))(_x(dtype=torch.float64), _trees()), raises(ValueError, "torch.float32", "torch.float64")),
    Case("down-meta-x", lambda: TopDown(C.GRUCell(I, H))(_x(device="meta"), _trees()), raises(ValueError, "cpu", "meta")),
    Case("both-float64-x", lambda: BidirectionalTree(ChildSumTreeLSTMCell(I, H), C.LSTMCell(I + H, H))(_x(dtype=torch.float64), _trees()),
         raises(ValueError, "torch.float32", "torch.float64")),
    Case("chain-equals-lstm", _lstm_chain, _chain_equals_lstm),
    # ---- TreeEncoder ----
    Case("encoder-embedding-dim-float", lambda: TreeEncoder(10, 2.5, H), raises(TypeError, "embedding_dim", "2.5")),
    Case("encoder-embedding-dim-0", lambda: TreeEncoder(10, 0, H), raises(ValueError, "embedding_dim", "0")),
    Case("encoder-padding-idx-out", lambda: TreeEncoder(10, I, H, padding_idx=20), raises(ValueError, "padding_idx", "[-10, 9]", "20")),
    Case("encoder-bidirectional-str", lambda: TreeEncoder(10, I, H, bidirectional="yes"), raises(TypeError, "bidirectional", "'yes'")),
    Case("encoder-int-dtype", lambda: TreeEncoder(10, I, H, dtype=torch.int32), raises(ValueError, "floating-point dtype", "torch.int32")),
    Case("encoder-ids-on-meta", lambda: TreeEncoder(10, I, H)(_trees(), torch.zeros(_trees().num_nodes, dtype=torch.int64, device="meta")),
         raises(ValueError, "token ids on cpu", "meta")),
    Case("plot-units-0", lambda: plot_tree_states(_trees(), torch.zeros(_trees().num_nodes, H), "unused.png", units=0),
         raises(ValueError, "units", ">= 1", "0")),
    # ---- GraphBatch ----
    Case("graphs-num-edge-types-0", lambda: GraphBatch.from_graphs([(2, [(0, 1)])], num_edge_types=0), raises(ValueError, "num_edge_types", ">= 1", "0")),
    Case("graphs-feature-dtypes-differ", lambda: GraphBatch.from_graphs([(2, [], None, torch.zeros(2, I)), (2, [], None, torch.zeros(2, I, dtype=torch.float64))]),
         raises(ValueError, "graph 1", "torch.float32", "torch.float64")),
    Case("graphs-edge-type-elsewhere", lambda: GraphBatch(None, torch.tensor([[0], [1]]), torch.tensor([0], device="meta"), num_nodes=[2]),
         raises(ValueError, "edge_type on cpu", "meta")),
    Case("graphs-edge-index-on-meta", lambda: GraphBatch(None, torch.tensor([[0], [1]], device="meta"), num_nodes=[2]),
         raises(ValueError, "edge_index", "meta")),
    # ---- gated graph network and readouts ----
    Case("ggnn-int-dtype", lambda: _ggnn(dtype=torch.int32), raises(ValueError, "floating-point dtype", "torch.int32")),
    Case("ggnn-bias-str", lambda: _ggnn(bias="no"), raises(TypeError, "bias", "True or False", "'no'")),
    Case("sum-readout-float64", lambda: GatedSumReadout(H, H, 2)(*(t.double() for t in _states()), _graphs()), raises(ValueError, "torch.float32", "torch.float64")),
    Case("sum-readout-graphs-none", lambda: GatedSumReadout(H, H, 2)(*_states(), None), raises(TypeError, "GraphBatch", "NoneType")),
    Case("sum-readout-h-list", lambda: GatedSumReadout(H, H, 2)([1.0], _states()[1], _graphs()), raises(TypeError, "node states h", "list")),
    Case("node-readout-float64", lambda: NodeReadout(H, H, 2)(*(t.double() for t in _states())), raises(ValueError, "torch.float32", "torch.float64")),
    Case("node-readout-int-dtype", lambda: NodeReadout(H, H, 2, dtype=torch.int64), raises(ValueError, "floating-point dtype", "torch.int64")),
    Case("readout-per-graph", _readout_whole, _readout_per_graph),
]


@parametrize(CASES)
def test_api_edge(case):
    run_case(case)
