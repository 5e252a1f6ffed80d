"""The ``trees`` group: the level runner against the node-by-node recursion, and the price of structure.

* ``Child-Sum Tree-LSTM, levels vs node by node``: the same cell (same weights, same outputs) run
  by the level runner (one matrix product per height) and node by node; target: training step at
  least 20 x faster on 256 random trees of 20-100 nodes.
* ``Child-Sum Tree-LSTM (levels) vs carousel.LSTM``: the same nodes read as 256 sequences (each
  tree's nodes in pre-order, padded to the longest) by ``carousel.LSTM`` (torch's fused kernel):
  what a user pays for the tree structure (reported, no target).

A case's size is ``(N, 1, I, H)``: the harness's input (1, N, I) holds the N nodes' features.
Trees are random recursive trees (node k hangs from a uniformly drawn earlier node), seeded.
"""

from __future__ import annotations

import functools
import random

import torch
from torch import Tensor, nn

import carousel
from carousel.structures import BottomUp, ChildSumTreeLSTMCell, TreeBatch

from .harness import Case, Result, table

TREES, MIN_NODES, MAX_NODES = 256, 20, 100
SIZES = [(64, 128)]  # (I, H)


def random_trees(count: int, low: int, high: int, seed: int = 0) -> TreeBatch:
    """``count`` random recursive trees of ``low``..``high`` nodes."""
    rng = random.Random(seed)
    parents = []
    for _ in range(count):
        n = rng.randint(low, high)
        parents.append([-1] + [rng.randrange(k) for k in range(1, n)])
    return TreeBatch.from_parents(parents)


class _OnTrees(nn.Module):
    """``x`` (1, N, I) -> node states (N, H) of a bottom-up tree layer over a fixed batch."""

    def __init__(self, layer: BottomUp, batch: TreeBatch) -> None:
        super().__init__()
        self.layer, self.batch = layer, batch

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x[0], self.batch).nodes


class _InSequence(nn.Module):
    """``x`` (1, N, I) -> ``carousel.LSTM`` outputs (N, H) over each tree's nodes read in node order
    (pre-order) as one sequence per tree, padded to the longest tree."""

    def __init__(self, input_size: int, hidden_size: int, batch: TreeBatch) -> None:
        super().__init__()
        self.lstm = carousel.LSTM(input_size, hidden_size, batch_first=True)
        sizes = batch.tree_sizes
        start = torch.cumsum(sizes, 0) - sizes
        self.rows = batch.tree  # (N,)
        self.cols = torch.arange(batch.num_nodes) - start[batch.tree]  # (N,) place within its tree
        self.shape = (len(batch), int(sizes.max()))

    def forward(self, x: Tensor) -> Tensor:
        padded = x.new_zeros(*self.shape, x.shape[-1])
        padded[self.rows, self.cols] = x[0]  # (T, L, I)
        return self.lstm(padded)[0][self.rows, self.cols]  # (N, H)


def _levels_vs(versus: str, trees: TreeBatch, size) -> tuple[nn.Module, nn.Module]:
    _, _, I, H = size
    cell = ChildSumTreeLSTMCell(I, H)
    ours = _OnTrees(BottomUp(cell, backend="levels"), trees)
    if versus == "reference":
        return ours, _OnTrees(BottomUp(cell, backend="reference"), trees)
    return ours, _InSequence(I, H, trees)


def tree_cases(sizes=None) -> list[Case]:
    smoke = sizes is not None  # the harness passes its tiny size for --smoke
    trees = random_trees(2, 3, 6) if smoke else random_trees(TREES, MIN_NODES, MAX_NODES)
    dims = [(3, 4)] if smoke else SIZES
    cases = []
    for I, H in dims:
        size = (trees.num_nodes, 1, I, H)
        cases += [
            Case("trees", "Child-Sum Tree-LSTM, levels vs node by node", size,
                 functools.partial(_levels_vs, "reference", trees, size), ">= 20x faster (<= 0.05)", lambda r: r <= 0.05),
            Case("trees", "Child-Sum Tree-LSTM (levels) vs carousel.LSTM over the nodes in order", size,
                 functools.partial(_levels_vs, "sequence", trees, size), "report"),
        ]
    return cases


def tree_table(results: list[Result], *, judge: bool = True) -> str:
    """The harness's table, its columns named for this group: the baseline is the node-by-node
    recursion or ``carousel.LSTM`` (named in each row), not torch.nn."""
    return table(results, judge=judge).replace("torch.nn", "baseline").replace("| T, B, I, H |", "| N, 1, I, H |")
