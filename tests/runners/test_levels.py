"""The level runner equals the node-by-node computation (values and every gradient, float64), passes
gradcheck, runs one cell call per level, and refuses plans that do not fit the tree."""

from __future__ import annotations

import random

import pytest
import torch

import carousel
from carousel.runners.levels import (
    Children,
    run_down,
    run_down_reference,
    run_up,
    run_up_reference,
    schedule_down,
    schedule_up,
)
from carousel.structures import ChildSumTreeLSTMCell, NaryTreeLSTMCell, RecursiveCell, TreeGRUCell

I, H = 3, 4


def random_forest(sizes: list[int], seed: int, max_arity: int | None = None) -> tuple[list[int], list[int]]:
    """Global ``parent`` (-1 at roots) and ``position`` lists of random trees, nodes numbered at random
    (not in pre-order, so the runner may not rely on any numbering)."""
    rng = random.Random(seed)
    parent, position = [], []
    for n in sizes:
        base = len(parent)
        local = [-1]
        kids = [0] * n
        for k in range(1, n):
            choices = [p for p in range(k) if max_arity is None or kids[p] < max_arity]
            p = rng.choice(choices)
            local.append(p)
            kids[p] += 1
        perm = list(range(n))
        rng.shuffle(perm)  # node k of the tree becomes node base + perm[k]
        par, pos, seen = [0] * n, [0] * n, [0] * n
        for k in range(n):
            p = local[k]
            par[perm[k]] = -1 if p < 0 else base + perm[p]
            pos[perm[k]] = 0 if p < 0 else seen[p]
            if p >= 0:
                seen[p] += 1
        parent += par
        position += pos
    return parent, position


def heights_and_depths(parent: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """By repeated relaxation, independent of the library: height (leaves 0) and depth (roots 0)."""
    n = len(parent)
    height, depth = [0] * n, [0] * n
    for _ in range(n):
        for v, p in enumerate(parent):
            if p >= 0:
                height[p] = max(height[p], height[v] + 1)
                depth[v] = depth[p] + 1
    return torch.tensor(height), torch.tensor(depth)


FORESTS = {
    "random": ([7, 1, 12, 5, 9], 0),
    "chain": ([6], None),
    "star": ([8], None),
    "single leaves": ([1, 1, 1], 0),
}


def forest(name: str, max_arity: int | None = None):
    sizes, seed = FORESTS[name]
    if name == "chain":
        parent, position = [-1, 0, 1, 2, 3, 4], [0] * 6
    elif name == "star":
        parent, position = [-1] + [0] * 7, [0] + list(range(7))
    else:
        parent, position = random_forest(sizes, seed, max_arity)
    height, depth = heights_and_depths(parent)
    return torch.tensor(parent), torch.tensor(position), height, depth


def tree_cells():
    return {
        "child-sum LSTM": ChildSumTreeLSTMCell(I, H),
        "N-ary LSTM": NaryTreeLSTMCell(I, H, max_arity=7),
        "tree GRU": TreeGRUCell(I, H),
        "recursive shared": RecursiveCell(I, H),
        "recursive positional": RecursiveCell(I, H, weights="positional", max_arity=7),
    }


def _grads(cell, x, state) -> list[torch.Tensor]:
    # a loss that weighs every node and every field differently
    loss = sum(((k + 1) * torch.sin(t * torch.arange(1, t.shape[0] + 1, dtype=t.dtype)[:, None])).sum()
               for k, t in enumerate(state))
    return torch.autograd.grad(loss, [x, *cell.parameters()], allow_unused=True, materialize_grads=True)


@pytest.mark.parametrize("shape", sorted(FORESTS))
@pytest.mark.parametrize("name", sorted(tree_cells()))
def test_level_runner_equals_node_by_node_values_and_gradients(name, shape):
    torch.manual_seed(1)
    cell = tree_cells()[name].double()
    parent, position, height, _ = forest(shape, max_arity=7)
    x = torch.randn(parent.numel(), I, dtype=torch.float64, requires_grad=True)
    fast = run_up(cell, x, schedule_up(parent, position, height))
    slow = run_up_reference(cell, x, parent, position)
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(_grads(cell, x, fast), _grads(cell, x, slow)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", sorted(FORESTS))
@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell"])
def test_top_down_level_runner_equals_node_by_node(kind, shape):
    torch.manual_seed(2)
    cell = getattr(carousel, kind)(I, H).double()
    parent, _, _, depth = forest(shape)
    roots = int((parent < 0).sum())
    x = torch.randn(parent.numel(), I, dtype=torch.float64, requires_grad=True)
    start = cell.state_type(*(torch.randn(roots, H, dtype=torch.float64) for _ in cell.state_type._fields))
    fast = run_down(cell, x, schedule_down(parent, depth), start)
    slow = run_down_reference(cell, x, parent, start)
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(_grads(cell, x, fast), _grads(cell, x, slow)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_top_down_on_a_chain_is_the_sequence_from_the_root():
    torch.manual_seed(3)
    cell = carousel.LSTMCell(I, H).double()
    parent = torch.tensor([3, -1, 4, 1, 0])  # root 1 -> 3 -> 0 -> 4 -> 2
    _, depth = heights_and_depths(parent.tolist())
    x = torch.randn(5, I, dtype=torch.float64)
    out = run_down(cell, x, schedule_down(parent, depth))
    path = [1, 3, 0, 4, 2]
    seq, _ = carousel.run(cell, x[path].unsqueeze(0), backend="reference")
    torch.testing.assert_close(out.h[path], seq[0])


SMALL_CELLS = {
    "child-sum LSTM": lambda: ChildSumTreeLSTMCell(2, 3),
    "N-ary LSTM": lambda: NaryTreeLSTMCell(2, 3, max_arity=3),
    "tree GRU": lambda: TreeGRUCell(2, 3),
    "recursive positional": lambda: RecursiveCell(2, 3, weights="positional", max_arity=3),
}


@pytest.mark.parametrize("name", sorted(SMALL_CELLS))
def test_gradcheck_of_the_level_runner(name):
    torch.manual_seed(4)
    cell = SMALL_CELLS[name]().double()
    parent, position = random_forest([5, 3], seed=6, max_arity=3)
    height, _ = heights_and_depths(parent)
    plan = schedule_up(torch.tensor(parent), torch.tensor(position), height)
    x = torch.randn(len(parent), 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: tuple(run_up(cell, x, plan)), (x,))

    def with_weight(w):  # through the recurrent weights: the parameter swapped for a function input
        saved = cell.weight_hh
        del cell.weight_hh
        cell.weight_hh = w
        try:
            return tuple(run_up(cell, x.detach(), plan))
        finally:
            del cell.weight_hh
            cell.weight_hh = saved

    assert torch.autograd.gradcheck(with_weight, (cell.weight_hh.detach().clone().requires_grad_(),), fast_mode=True)


def test_gradcheck_of_the_top_down_runner():
    torch.manual_seed(5)
    cell = carousel.GRUCell(2, 3).double()
    parent, _ = random_forest([5, 3], seed=7)
    _, depth = heights_and_depths(parent)
    x = torch.randn(len(parent), 2, dtype=torch.float64, requires_grad=True)
    plan = schedule_down(torch.tensor(parent), depth)
    assert torch.autograd.gradcheck(lambda x: run_down(cell, x, plan).h, (x,))


class CountingCell(ChildSumTreeLSTMCell):
    """Counts the cell calls and the nodes each one gets."""

    def __init__(self) -> None:
        super().__init__(I, H)
        self.calls: list[int] = []

    def leaf(self, px):
        self.calls.append(px.shape[0])
        return super().leaf(px)

    def node(self, px, children):
        self.calls.append(px.shape[0])
        return super().node(px, children)


def test_one_cell_call_per_level_with_every_node_of_that_height():
    parent, position, height, _ = forest("random", max_arity=7)
    cell = CountingCell()
    run_up(cell, torch.randn(parent.numel(), I), schedule_up(parent, position, height))
    assert cell.calls == torch.bincount(height).tolist()
    cell.calls = []
    run_up_reference(cell, torch.randn(parent.numel(), I), parent, position)
    assert cell.calls == [1] * parent.numel()  # the reference goes node by node


def test_children_sum_and_slots():
    t = torch.arange(10.0).view(5, 2)
    ch = Children(None, torch.tensor([1, 0, 1, 2, 1]), torch.tensor([0, 0, 2, 0, 1]), 4)
    torch.testing.assert_close(ch.sum(t), torch.tensor([[2.0, 3], [0 + 4 + 8, 1 + 5 + 9], [6, 7], [0, 0]]))
    slots = ch.slots(t, 3)  # (4, 3, 2)
    assert slots.shape == (4, 3, 2)
    torch.testing.assert_close(slots[1], torch.tensor([[0.0, 1], [8, 9], [4, 5]]))
    torch.testing.assert_close(slots[0], torch.tensor([[2.0, 3], [0, 0], [0, 0]]))
    torch.testing.assert_close(slots[3], torch.zeros(3, 2))


def test_a_node_wider_than_the_cell_is_refused_by_both_runners():
    parent, position, height, _ = forest("star")
    cell = RecursiveCell(I, H, weights="positional", max_arity=3)
    x = torch.randn(parent.numel(), I)
    with pytest.raises(ValueError, match=r"node 0 has 7 children; RecursiveCell takes at most max_arity=3"):
        run_up(cell, x, schedule_up(parent, position, height))
    with pytest.raises(ValueError, match=r"node 0 has 7 children"):
        run_up_reference(cell, x, parent, position)


def test_plans_that_do_not_fit_the_tree_are_refused():
    parent, position = torch.tensor([-1, 0, 0, 1]), torch.tensor([0, 0, 1, 0])
    with pytest.raises(ValueError, match=r"node 0 has height 1 but its child 1 has height 1"):
        schedule_up(parent, position, torch.tensor([1, 1, 0, 0]))
    with pytest.raises(ValueError, match=r"height 0 exactly at the nodes without children"):
        schedule_up(parent, position, torch.tensor([3, 1, 1, 0]))
    with pytest.raises(ValueError, match=r"depth 0 at the roots"):
        schedule_down(parent, torch.tensor([0, 1, 1, 3]))
    with pytest.raises(ValueError, match=r"parent indices in -1..3"):
        schedule_up(torch.tensor([-1, 0, 0, 7]), position, torch.tensor([2, 1, 0, 0]))
    with pytest.raises(ValueError, match=r"expected parent as a 1-d integer tensor"):
        schedule_up(parent.float(), position, torch.tensor([2, 1, 0, 0]))
    with pytest.raises(ValueError, match=r"expected node features of shape \(N=4, I\), got \(3, 3\)"):
        run_up(RecursiveCell(I, H), torch.randn(3, I), schedule_up(parent, position, torch.tensor([2, 1, 0, 0])))
    with pytest.raises(ValueError, match=r"on a cycle"):
        run_up_reference(RecursiveCell(I, H), torch.randn(4, I), torch.tensor([-1, 2, 1, 0]), position)
