"""The gated graph network against a node-by-node reference written from the paper's equations
(Li et al. 2016, eqs. 1-7), in float64 with gradients and gradcheck; permutation equivariance and
invariance; edge types that matter; batching without leaks; and errors at the boundary."""

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from carousel.structures import GatedGraphNetwork, GatedSumReadout, Graph, GraphBatch, NodeReadout

D = torch.float64


def random_graph(n, num_edges, num_types, width, *, seed, tokens=None):
    g = torch.Generator().manual_seed(seed)
    ends = torch.randint(n, (num_edges, 2), generator=g).tolist()
    types = torch.randint(num_types, (num_edges,), generator=g).tolist()
    x = torch.randint(tokens, (n,), generator=g) if tokens else torch.randn(n, width, generator=g, dtype=D)
    return Graph(n, [tuple(e) for e in ends], types, x)


def batch_of(*graphs, num_edge_types=3):
    return GraphBatch.from_graphs(list(graphs), num_edge_types=num_edge_types)


def model(H=5, T=3, *, seed=0, **kw):
    torch.manual_seed(seed)
    if "num_tokens" not in kw:
        kw.setdefault("input_size", 3)
    return GatedGraphNetwork(H, T, steps=3, dtype=D, **kw)


# ---- the reference: plain Python loops over nodes and their incoming edges ------------------------
def reference_states(net, graphs):
    """h^(K) and h^(1) node by node: eq. 1, then K times eq. 2 (a sum over v's incoming edges) and
    eqs. 3-6 written out in the paper's form from the cell's weights."""
    x = graphs.x
    if net.num_tokens is not None:
        h0 = [net.embedding.weight[int(t)] for t in x]
    elif net.init == "linear":
        h0 = [net.embedding.weight @ xv + net.embedding.bias for xv in x]
    else:
        h0 = [torch.cat([xv, xv.new_zeros(net.hidden_size - xv.shape[0])]) for xv in x]
    cell, H = net.cell, net.hidden_size
    W_r, W_z, W_n = cell.weight_ih.split(H)
    U_r, U_z, U_n = cell.weight_hh.split(H)
    b_r, b_z, b_n = cell.bias_ih.split(H)
    c_r, c_z, c_n = cell.bias_hh.split(H)
    edges = list(zip(graphs.edge_index[0].tolist(), graphs.edge_index[1].tolist(), graphs.edge_type.tolist()))
    h = list(h0)
    for _ in range(net.steps):
        new = []
        for v in range(graphs.num_nodes):
            a = h[v].new_zeros(H)
            for u, target, t in edges:
                if target == v:
                    a = a + net.edge_weight[t] @ h[u] + (net.edge_bias[t] if net.edge_bias is not None else 0)
            z = torch.sigmoid(-(W_z @ a + b_z + U_z @ h[v] + c_z))  # the paper's z: carousel's 1 - z
            r = torch.sigmoid(W_r @ a + b_r + U_r @ h[v] + c_r)
            if cell.variant == "cho":
                candidate = torch.tanh(W_n @ a + b_n + U_n @ (r * h[v]) + c_n)  # eq. 5
            else:
                candidate = torch.tanh(W_n @ a + b_n + r * (U_n @ h[v] + c_n))
            new.append((1 - z) * h[v] + z * candidate)  # eq. 6
        h = new
    return torch.stack(h), torch.stack(h0)


def reference_gated_sum(readout, h, x, graphs):
    """Eq. 7, one graph at a time: tanh of the sum over its nodes of σ(i([h, x])) ⊙ tanh(j([h, x]))."""
    out = []
    for g in range(graphs.num_graphs):
        total = 0
        for v in range(int(graphs.ptr[g]), int(graphs.ptr[g + 1])):
            hx = torch.cat([h[v], x[v]])
            total = total + torch.sigmoid(readout.i.weight @ hx + readout.i.bias) * torch.tanh(readout.j.weight @ hx + readout.j.bias)
        out.append(torch.tanh(total))
    return torch.stack(out)


def grads(loss, tensors):
    return torch.autograd.grad(loss, tensors)


@pytest.mark.parametrize("variant, init, bias", [("cho", "pad", True), ("torch", "linear", True), ("cho", "linear", False)])
def test_equals_the_node_by_node_reference_values_and_gradients(variant, init, bias):
    net = model(gru_variant=variant, init=init, bias=bias)
    readout = GatedSumReadout(5, 5, 4, dtype=D)
    graphs = batch_of(random_graph(6, 11, 3, 3, seed=1), random_graph(4, 6, 3, 3, seed=2), Graph(1, [], [], torch.randn(1, 3, dtype=D)))
    graphs.x.requires_grad_(True)
    h, h0 = net(graphs)
    want_h, want_h0 = reference_states(net, graphs)
    torch.testing.assert_close(h, want_h, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h0, want_h0, rtol=1e-12, atol=1e-12)  # init="linear": a batched product against one per node
    hg = readout(h, h0, graphs)
    torch.testing.assert_close(hg, reference_gated_sum(readout, want_h, want_h0, graphs), rtol=1e-12, atol=1e-12)
    weights = torch.randn(hg.shape, dtype=D)
    tensors = [graphs.x, *net.parameters(), *readout.parameters()]
    got = grads((hg * weights).sum() + h.sum(), tensors)
    want = grads((reference_gated_sum(readout, want_h, want_h0, graphs) * weights).sum() + want_h.sum(), tensors)
    for g, w, p in zip(got, want, tensors):
        assert w.abs().sum() > 0
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


def test_token_ids_and_the_node_readout_against_the_reference():
    net = model(num_tokens=7)
    graphs = batch_of(random_graph(5, 8, 3, 0, seed=3, tokens=7), random_graph(3, 4, 3, 0, seed=4, tokens=7))
    h, h0 = net(graphs)
    want_h, want_h0 = reference_states(net, graphs)
    torch.testing.assert_close(h, want_h, rtol=1e-12, atol=1e-12)
    readout = NodeReadout(5, 5, 2, dtype=D)
    o = readout(h, h0)
    torch.testing.assert_close(o, torch.stack([readout.g.weight @ torch.cat([a, b]) + readout.g.bias for a, b in zip(want_h, want_h0)]))
    g_net = grads(o.square().sum(), [net.embedding.weight, net.edge_weight])
    g_ref = grads(torch.stack([readout.g.weight @ torch.cat([a, b]) + readout.g.bias for a, b in zip(want_h, want_h0)]).square().sum(),
                  [net.embedding.weight, net.edge_weight])
    for a, b in zip(g_net, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_gradcheck_on_a_tiny_graph():
    net = model(H=3, T=2, input_size=2)
    readout = GatedSumReadout(3, 3, 2, dtype=D)
    graphs = batch_of(Graph(3, [(0, 1), (1, 2), (2, 2), (0, 2)], [0, 1, 0, 1], torch.randn(3, 2, dtype=D)), num_edge_types=2)
    names = ["edge_weight", "edge_bias", "cell.weight_ih", "cell.weight_hh"]

    def f(x, *params):
        graphs.x = x
        h, h0 = functional_call(net, dict(zip(names, params)), (graphs,))
        return readout(h, h0, graphs)

    inputs = [graphs.x.clone().requires_grad_(True)] + [net.get_parameter(n).detach().clone().requires_grad_(True) for n in names]
    assert torch.autograd.gradcheck(f, inputs)


def permuted(graphs, perm):
    """The one-graph batch with node i of the new numbering being node perm[i] of the old."""
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(len(perm))
    return GraphBatch(graphs.x[perm], inverse[graphs.edge_index], graphs.edge_type, num_nodes=[len(perm)],
                      num_edge_types=graphs.num_edge_types)


def test_node_states_permute_with_the_nodes_and_the_graph_readout_does_not_change():
    net, readout = model(), GatedSumReadout(5, 5, 4, dtype=D)
    graphs = batch_of(random_graph(9, 20, 3, 3, seed=5))
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(perm, torch.arange(9))
    h, h0 = net(graphs)
    hp, h0p = net(permuted(graphs, perm))
    torch.testing.assert_close(hp, h[perm], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(readout(hp, h0p, graphs), readout(h, h0, graphs), rtol=1e-12, atol=1e-12)


def test_the_type_of_an_edge_matters():
    net = model()
    graphs = batch_of(Graph(3, [(0, 1), (1, 2)], [0, 0], torch.randn(3, 3, dtype=D)))
    swapped = GraphBatch(graphs.x, graphs.edge_index, torch.tensor([0, 2]), num_nodes=[3], num_edge_types=3)
    h, _ = net(graphs)
    hs, _ = net(swapped)
    assert (h[2] - hs[2]).abs().max() > 1e-3  # node 2 hears its edge's new type
    torch.testing.assert_close(h[:2], hs[:2], rtol=0, atol=0)  # nodes 0 and 1 do not hear the edge 1 -> 2
    reversed_ = GraphBatch(graphs.x, graphs.edge_index.flip(0), graphs.edge_type, num_nodes=[3], num_edge_types=3)
    assert (net(reversed_).h[0] - h[0]).abs().max() > 1e-3  # and direction matters


def test_a_batch_equals_each_graph_alone_and_messages_do_not_leak():
    net, readout = model(), GatedSumReadout(5, 5, 4, dtype=D)
    parts = [random_graph(n, 2 * n, 3, 3, seed=10 + n) for n in (4, 7, 2)]
    graphs = batch_of(*parts)
    h, h0 = net(graphs)
    hg = readout(h, h0, graphs)
    for g, part in enumerate(parts):
        alone = batch_of(part)
        ha, h0a = net(alone)
        rows = slice(int(graphs.ptr[g]), int(graphs.ptr[g + 1]))
        torch.testing.assert_close(h[rows], ha, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(hg[g], readout(ha, h0a, alone)[0], rtol=1e-13, atol=1e-13)
    changed = batch_of(parts[0]._replace(x=parts[0].x + 1.0), *parts[1:])
    hc, _ = net(changed)
    assert (hc[:4] - h[:4]).abs().max() > 1e-2
    torch.testing.assert_close(hc[4:], h[4:], rtol=0, atol=1e-14)


def test_messages_follow_the_edges_one_step_per_edge():
    """On a chain 0 -> 1 -> 2 -> 3 with K = 2 steps, changing node 0 reaches node 2 but not node 3."""
    torch.manual_seed(0)
    net = GatedGraphNetwork(4, 1, steps=2, input_size=2, dtype=D)
    x = torch.randn(4, 2, dtype=D)
    chain = lambda x: GraphBatch(x, torch.tensor([[0, 1, 2], [1, 2, 3]]), num_nodes=[4])  # noqa: E731
    h, _ = net(chain(x))
    x2 = x.clone()
    x2[0] += 1.0
    h2, _ = net(chain(x2))
    assert (h2[2] - h[2]).abs().max() > 1e-3
    torch.testing.assert_close(h2[3], h[3], rtol=0, atol=0)


BAD = {
    "feature width": (lambda: model()(batch_of(random_graph(3, 2, 3, 4, seed=0))), ValueError, r"node features x of shape \(N, 3\), got \(3, 4\)"),
    "token ids to a feature model": (lambda: model()(batch_of(random_graph(3, 2, 3, 0, seed=0, tokens=5))), ValueError, r"got token ids"),
    "features to a token model": (lambda: model(num_tokens=5)(batch_of(random_graph(3, 2, 3, 3, seed=0))), ValueError, r"embeds token ids"),
    "token id out of range": (lambda: model(num_tokens=3)(batch_of(Graph(2, [], [], torch.tensor([0, 3])))), ValueError, r"token id 3 is out of range"),
    "too many edge types": (lambda: model(T=2)(batch_of(random_graph(3, 2, 3, 3, seed=0), num_edge_types=3)), ValueError,
                            r"the batch has 3 edge types but the model has weights for 2"),
    "no features": (lambda: model()(batch_of(Graph(2, [(0, 1)], [0]))), ValueError, r"got x=None"),
    "float32 features": (lambda: model()(batch_of(Graph(2, [(0, 1)], [0], torch.zeros(2, 3)))), ValueError, r"dtype torch.float64"),
    "not a GraphBatch": (lambda: model()(torch.zeros(3, 3, dtype=D)), TypeError, r"expected a GraphBatch, got Tensor"),
    "pad wider than hidden": (lambda: GatedGraphNetwork(4, 1, input_size=6), ValueError, r"needs input_size <= hidden_size"),
    "neither features nor tokens": (lambda: GatedGraphNetwork(4, 1), ValueError, r"exactly one of input_size"),
    "both features and tokens": (lambda: GatedGraphNetwork(4, 1, input_size=2, num_tokens=3), ValueError, r"exactly one of input_size"),
    "unknown init": (lambda: GatedGraphNetwork(4, 1, input_size=2, init="zeros"), ValueError, r"unknown GGNN init 'zeros'"),
    "readout shapes": (lambda: GatedSumReadout(4, 2, 3)(torch.zeros(3, 4), torch.zeros(3, 3), batch_of(Graph(3, [], []))), ValueError,
                       r"annotations x \(N, 2\)"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gets_its_error(case):
    make, error, message = BAD[case]
    with pytest.raises(error, match=message):
        make()


def test_messages_are_one_index_add_and_match_a_dense_adjacency():
    """Eq. 2 as the paper writes it: a_v = Σ_t A_t[v, :] (h W_t^T) + (incoming edges of type t) b_t."""
    net = model()
    graphs = batch_of(random_graph(6, 15, 3, 3, seed=7))
    h = torch.randn(6, 5, dtype=D)
    dense = torch.zeros(6, 5, dtype=D)
    for t in range(3):
        A = torch.zeros(6, 6, dtype=D)
        mask = graphs.edge_type == t
        A.index_put_((graphs.edge_index[1][mask], graphs.edge_index[0][mask]), torch.ones(int(mask.sum()), dtype=D), accumulate=True)
        dense += A @ F.linear(h, net.edge_weight[t]) + A.sum(1, keepdim=True) * net.edge_bias[t]
    torch.testing.assert_close(net.messages(h, graphs), dense, rtol=1e-12, atol=1e-12)
