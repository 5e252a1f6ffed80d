"""Tree cells and layers: positional weights see child order and shared weights do not; on a chain
each cell is its sequence cell; forget (reset) gates are per child; the bidirectional layer lets
every node see the whole tree; the encoder's checks."""

from __future__ import annotations

import pytest
import torch

import carousel
from carousel.runners.levels import Children, run_down_reference
from carousel.structures import (
    BidirectionalTree,
    BottomUp,
    ChildSumTreeLSTMCell,
    NaryTreeLSTMCell,
    RecursiveCell,
    TopDown,
    TreeBatch,
    TreeEncoder,
    TreeGRUCell,
    make_tree_cell,
)

I, H = 3, 5
DT = torch.float64


def _cells():
    return {
        "recursive positional": (RecursiveCell(I, H, weights="positional", max_arity=3), True),
        "N-ary LSTM": (NaryTreeLSTMCell(I, H, max_arity=3), True),
        "recursive shared": (RecursiveCell(I, H), False),
        "child-sum LSTM": (ChildSumTreeLSTMCell(I, H), False),
        "tree GRU": (TreeGRUCell(I, H), False),
    }


@pytest.mark.parametrize("name", sorted(_cells()))
def test_positional_weights_see_child_order_and_shared_weights_do_not(name):
    torch.manual_seed(0)
    cell, ordered = _cells()[name]
    cell = cell.double()
    # the same root over the same two subtrees, in both orders; inputs travel with their labels
    b = TreeBatch.from_nested([("r", ("p", "a"), "q"), ("r", "q", ("p", "a"))])
    feats = {lab: torch.randn(I, dtype=DT) for lab in "rpaq"}
    x = torch.stack([feats[lab] for lab in b.labels])
    out = BottomUp(cell)(x, b)
    first, second = out.roots
    if ordered:
        assert (first - second).abs().max() > 1e-3
    else:
        torch.testing.assert_close(first, second)
    # every other node's state is the same in both trees (the subtrees did not change)
    for lab in "paq":
        rows = [k for k, v in enumerate(b.labels) if v == lab]
        torch.testing.assert_close(out.nodes[rows[0]], out.nodes[rows[1]])


CHAINS = {
    "child-sum LSTM = LSTMCell": (lambda: ChildSumTreeLSTMCell(I, H), lambda: carousel.LSTMCell(I, H)),
    "N-ary LSTM (N=1) = LSTMCell": (lambda: NaryTreeLSTMCell(I, H, max_arity=1), lambda: carousel.LSTMCell(I, H)),
    "tree GRU = GRUCell(cho)": (lambda: TreeGRUCell(I, H), lambda: carousel.GRUCell(I, H, variant="cho")),
    "recursive shared = ElmanCell": (lambda: RecursiveCell(I, H), lambda: carousel.ElmanCell(I, H)),
    "recursive positional (1) = ElmanCell": (lambda: RecursiveCell(I, H, weights="positional", max_arity=1),
                                             lambda: carousel.ElmanCell(I, H)),
}


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_on_a_chain_each_tree_cell_is_its_sequence_cell(name):
    torch.manual_seed(1)
    make_tree, make_seq = CHAINS[name]
    seq_cell, tree_cell = make_seq().double(), make_tree().double()
    tree_cell.load_state_dict(seq_cell.state_dict())  # the same parameter names and shapes
    T = 7
    b = TreeBatch.from_parents([[-1] + list(range(T - 1))])  # node 0 the root, node T-1 the leaf
    x = torch.randn(T, I, dtype=DT)
    out = BottomUp(tree_cell)(x, b)
    seq, final = carousel.run(seq_cell, x.flip(0).unsqueeze(0), backend="reference")  # leaf first
    torch.testing.assert_close(out.nodes.flip(0), seq[0])
    for a, s in zip(out.state, final):
        torch.testing.assert_close(a[0], s[0])  # every field at the root = the final state


def _three_children(cell, seed=2):
    torch.manual_seed(seed)
    px = cell.project(torch.randn(1, I, dtype=DT))  # one parent
    kids = cell.state_type(*(torch.randn(3, H, dtype=DT) for _ in cell.state_type._fields))
    return px, kids


def test_each_childs_forget_gate_comes_from_that_childs_own_state():
    cell = ChildSumTreeLSTMCell(I, H).double()
    px, kids = _three_children(cell)
    where, pos = torch.zeros(3, dtype=torch.int64), torch.arange(3)
    f = cell.forget_gates(px, Children(kids, where, pos, 1))  # (3, H)
    # eq. (4) written out for child 1: sigma(W_f x + b_f + U_f h_1)
    Hs = slice(H, 2 * H)
    expected = torch.sigmoid(px[0, Hs] + cell.weight_hh[Hs] @ kids.h[1])
    torch.testing.assert_close(f[1], expected)
    changed = kids._replace(h=kids.h.clone())
    changed.h[1] = 3.0  # a distinct state for child 1 only
    g = cell.forget_gates(px, Children(changed, where, pos, 1))
    torch.testing.assert_close(g[[0, 2]], f[[0, 2]])
    assert (g[1] - f[1]).abs().min() > 1e-6
    # the node's memory takes child 1's cell through child 1's gate alone: c changes by f_1 * delta
    before = cell.node(px, Children(kids, where, pos, 1))
    after = cell.node(px, Children(kids._replace(c=kids.c + torch.tensor([[0.0], [1.0], [0.0]], dtype=DT)), where, pos, 1))
    torch.testing.assert_close(after.c - before.c, f[1:2])


def test_each_childs_reset_gate_in_the_tree_gru_comes_from_that_childs_own_state():
    cell = TreeGRUCell(I, H).double()
    px, kids = _three_children(cell, seed=3)
    where, pos = torch.zeros(3, dtype=torch.int64), torch.arange(3)
    r = cell.reset_gates(px, Children(kids, where, pos, 1))
    changed = kids._replace(h=kids.h.clone())
    changed.h[2] = -2.0
    s = cell.reset_gates(px, Children(changed, where, pos, 1))
    torch.testing.assert_close(s[:2], r[:2])
    assert (s[2] - r[2]).abs().min() > 1e-6


def test_nary_forget_gates_are_one_per_position():
    cell = NaryTreeLSTMCell(I, H, max_arity=3).double()
    px, kids = _three_children(cell, seed=4)
    same = kids._replace(h=kids.h[:1].expand(3, H), c=kids.c[:1].expand(3, H))  # three identical children
    f = cell.forget_gates(px, Children(same, torch.zeros(3, dtype=torch.int64), torch.arange(3), 1))  # (1, 3, H)
    assert f.shape == (1, 3, H)
    assert (f[0, 0] - f[0, 1]).abs().max() > 1e-4 and (f[0, 1] - f[0, 2]).abs().max() > 1e-4


def test_bidirectional_layer_is_up_then_down_and_every_node_sees_the_whole_tree():
    torch.manual_seed(5)
    b = TreeBatch.from_brackets(["(S (A a1 a2) (B b1 (C c1 c2)))", "(T t)"])
    x = torch.randn(b.num_nodes, I, dtype=DT, requires_grad=True)
    up, down = ChildSumTreeLSTMCell(I, H).double(), carousel.GRUCell(I + H, 4).double()
    layer = BidirectionalTree(up, down)
    out = layer(x, b)
    assert out.nodes.shape == (b.num_nodes, H + 4) and layer.output_size == H + 4
    h_up = BottomUp(up, backend="reference")(x, b).nodes
    h_down = run_down_reference(down, torch.cat([x, h_up], 1), b.parent).h
    torch.testing.assert_close(out.nodes, torch.cat([h_up, h_down], 1))
    torch.testing.assert_close(out.roots, out.nodes[b.roots])
    # leaf a1 (node 2): bottom-up it sees only itself; with the top-down half it sees c2 (node 9) too
    a1, c2 = b.labels.index("a1"), b.labels.index("c2")
    (g_up,) = torch.autograd.grad(out.nodes[a1, :H].sum(), x, retain_graph=True)
    (g_all,) = torch.autograd.grad(out.nodes[a1].sum(), x)
    assert g_up[c2].abs().max() == 0 and g_all[c2].abs().max() > 0
    assert g_all[b.labels.index("t")].abs().max() == 0  # and never another tree
    with pytest.raises(ValueError, match=r"top-down cell's input_size to be 3 \+ 5 .* got 3"):
        BidirectionalTree(up, carousel.GRUCell(I, 4))


def test_top_down_layer_backends_agree_and_roots_start_from_the_given_state():
    torch.manual_seed(6)
    b = TreeBatch.from_brackets(["(S a (B b c))", "(T t u)"])
    cell = carousel.LSTMCell(I, H).double()
    x = torch.randn(b.num_nodes, I, dtype=DT)
    start = carousel.LSTMState(torch.randn(2, H, dtype=DT), torch.randn(2, H, dtype=DT))
    fast = TopDown(cell)(x, b, start)
    slow = TopDown(cell, backend="reference")(x, b, start)
    torch.testing.assert_close(fast.nodes, slow.nodes)
    root = cell.step(cell.project(x[b.roots]), start)
    torch.testing.assert_close(fast.roots, root.h)


def test_tree_encoder_embeds_runs_and_checks():
    torch.manual_seed(7)
    b = TreeBatch.from_brackets(["(S (NP the cat) (VP sat))", "(S (NP a dog) (VP ran fast))"])
    b = b.encode(b.vocabulary())
    enc = TreeEncoder(20, 4, H).double()
    out = enc(b)
    assert out.nodes.shape == (b.num_nodes, H) and out.roots.shape == (2, H)
    manual = BottomUp(enc.layer.cell)(enc.embedding(b.x), b)
    torch.testing.assert_close(out.nodes, manual.nodes)
    both = TreeEncoder(20, 4, H, bidirectional=True, down_cell="gru")
    assert both(b).nodes.shape == (b.num_nodes, 2 * H)
    with pytest.raises(ValueError, match=r"token ids in 0..19, got ids from 0 to 25"):
        enc(b, torch.tensor([25] + [0] * (b.num_nodes - 1)))
    with pytest.raises(ValueError, match=r"token ids of shape \(13,\) and dtype int64"):
        enc(b, b.x.float())
    binary = TreeEncoder(20, 4, H, cell="nary_lstm", max_arity=2)
    assert binary(b).roots.shape == (2, H)  # binary trees fit
    wide = TreeBatch.from_brackets("(X a b c)")
    with pytest.raises(ValueError, match=r"node 0 \(tree 0, 'X'\) has 3 children; the positional cell takes at most max_arity=2"):
        binary(wide.encode({"<unk>": 0}))


def test_cell_options_are_checked():
    with pytest.raises(ValueError, match="weights='positional' needs max_arity"):
        RecursiveCell(I, H, weights="positional")
    with pytest.raises(ValueError, match="weights='shared' takes any number of children; max_arity=2 was given"):
        RecursiveCell(I, H, max_arity=2)
    with pytest.raises(ValueError, match="unknown recursive weights 'tied'"):
        RecursiveCell(I, H, weights="tied")
    with pytest.raises(ValueError, match="tree cell 'nary_lstm' has one weight per child position and needs max_arity"):
        make_tree_cell("nary_lstm", I, H)
    with pytest.raises(ValueError, match="unknown tree cell 'treelstm'"):
        make_tree_cell("treelstm", I, H)
    with pytest.raises(TypeError, match="expected a tree cell"):
        BottomUp(carousel.LSTMCell(I, H))
    with pytest.raises(ValueError, match=r"expected node inputs of shape \(N=3, 3\), got \(3, 4\)"):
        BottomUp(ChildSumTreeLSTMCell(I, H))(torch.zeros(3, 4), TreeBatch.from_nested(("a", "b", "c")))
