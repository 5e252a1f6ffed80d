"""The generated reachability graphs: labels that agree with a transitive closure computed another way,
the same data from the same seed, balanced classes, and errors for bad arguments."""

import pytest
import torch

from carousel.data.graphs import reachability, reachable_from


def closure(n, edges):
    """Reachability by repeated boolean matrix products: R = (I + A)^(n-1)."""
    step = torch.eye(n, dtype=torch.int64)
    for u, v in edges:
        step[u, v] = 1
    reach = step.clone()
    for _ in range(n):
        reach = ((reach @ step) > 0).long()
    return reach.bool()


@pytest.mark.parametrize("family", ["random", "chains"])
def test_labels_agree_with_the_transitive_closure(family):
    data = reachability(300, 10, family=family, seed=5)
    for (n, edges, types, x), label in zip(data.graphs, data.labels.tolist()):
        assert types is None and x.shape == (n, 2) and 5 <= n <= 10
        assert all(u != v for u, v in edges)
        s, t = int(x[:, 0].argmax()), int(x[:, 1].argmax())
        assert s != t and x.sum() == 2
        assert any(u == s for u, _ in edges) and any(v == t for _, v in edges)  # neither end tells the answer alone
        assert bool(closure(n, edges)[s, t]) == bool(label)
    assert 0.4 < data.labels.double().mean() < 0.6


def test_chains_are_two_directed_paths_covering_every_node():
    for n, edges, _, _ in reachability(50, 12, family="chains", seed=1).graphs:
        outs, ins = [u for u, _ in edges], [v for _, v in edges]
        assert len(edges) == n - 2 and len(set(outs)) == len(outs) and len(set(ins)) == len(ins)
        heads = sorted(set(range(n)) - set(ins))
        assert len(heads) == 2 and sum(len(reachable_from(n, edges, h)) for h in heads) == n


def test_the_same_seed_gives_the_same_data_and_the_classes_balance():
    a, b, c = reachability(400, 12, seed=1), reachability(400, 12, seed=1), reachability(400, 12, seed=2)
    assert torch.equal(a.labels, b.labels) and a.graphs[7][1] == b.graphs[7][1] and torch.equal(a.graphs[7][3], b.graphs[7][3])
    assert [g[1] for g in a.graphs] != [g[1] for g in c.graphs]
    assert 0.42 < a.labels.double().mean() < 0.58


def test_reachable_from_follows_direction():
    assert reachable_from(4, [(0, 1), (1, 2), (3, 2)], 0) == {0, 1, 2}
    assert reachable_from(4, [(0, 1), (1, 2), (3, 2)], 2) == {2}


@pytest.mark.parametrize("kw, message", [({"num_graphs": 0}, "num_graphs to be an integer >= 1"), ({"max_nodes": 1}, "max_nodes to be an integer >= 2"),
                                         ({"min_nodes": 9, "max_nodes": 8}, "min_nodes=9"), ({"mean_degree": 0.0}, "mean_degree > 0"),
                                         ({"family": "trees"}, "unknown graph family 'trees'"),
                                         ({"family": "chains", "min_nodes": 3}, "two chains need at least 4 nodes")])
def test_bad_arguments(kw, message):
    args = {"num_graphs": 2, "max_nodes": 8, **kw}
    with pytest.raises(ValueError, match=message):
        reachability(**args)
