"""Layers over a ``TreeBatch``: bottom-up (leaves to root), top-down (root to leaves) and both.

Each returns a ``TreeOutput``: ``nodes`` (N, F), one vector per node in the batch's node order;
``roots`` (T, F), one per tree (the roots' rows); ``state``, the cell's whole state per node.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .._checks import check_choice, check_same_kind
from ..cells.base import Cell
from ..runners.levels import run_down, run_down_reference, run_up, run_up_reference
from .recursive import TreeCell
from .trees import TreeBatch

BACKENDS = ("levels", "reference")


class TreeOutput(NamedTuple):
    """``nodes`` (N, F) per node, ``roots`` (T, F) per tree, ``state``: the per-node state (or a pair of them)."""

    nodes: Tensor
    roots: Tensor
    state: Any


def _check_batch(batch: object, x: Tensor, cell: nn.Module) -> TreeBatch:
    """The layers' boundary: a ``TreeBatch``, floating node inputs (N, I) of the cell's dtype and
    device, and the batch's index tensors on that device (``ValueError`` naming both otherwise)."""
    if not isinstance(batch, TreeBatch):
        raise TypeError(f"expected a TreeBatch, got {type(batch).__name__}")
    input_size = cell.input_size
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape != (batch.num_nodes, input_size):
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"expected node inputs of shape (N={batch.num_nodes}, {input_size}), got {got}")
    if not x.is_floating_point():
        raise ValueError(f"expected floating-point node inputs, got dtype {x.dtype}; embed token ids first (TreeEncoder does)")
    ref = next(cell.parameters(), None)
    if ref is not None:
        check_same_kind(x, ref, "node inputs", f"{type(cell).__name__}'s parameters")
    if batch.parent.device != x.device:
        raise ValueError(f"expected the TreeBatch on {x.device} (where the node inputs are), got it on "
                         f"{batch.parent.device}; move it with batch.to(device)")
    return batch


class BottomUp(nn.Module):
    """A tree cell (``RecursiveCell``, ``ChildSumTreeLSTMCell``, ``NaryTreeLSTMCell``, ``TreeGRUCell``)
    run from the leaves to the roots: each node's state sums up its subtree.

    ``backend``: ``"levels"`` (the level runner, one matrix product per height) or ``"reference"``
    (node by node). ``forward(x, batch)``: ``x`` (N, I) node inputs -> ``TreeOutput`` with ``nodes``
    (N, H) and ``roots`` (T, H). Raises ``ValueError`` for inputs of the wrong shape or a node with
    more children than the cell's ``max_arity`` (naming it).
    """

    def __init__(self, cell: TreeCell, *, backend: str = "levels") -> None:
        super().__init__()
        if not isinstance(cell, TreeCell):
            raise TypeError(f"expected a tree cell (carousel.structures.TreeCell), got {type(cell).__name__}")
        self.cell = cell
        self.backend = check_choice(backend, BACKENDS, "tree backend")

    @property
    def output_size(self) -> int:
        return self.cell.output_size

    def forward(self, x: Tensor, batch: TreeBatch) -> TreeOutput:
        _check_batch(batch, x, self.cell)
        batch.check_arity(self.cell.max_arity)
        if self.backend == "levels":
            state = run_up(self.cell, x, batch.schedule("up"))
        else:
            state = run_up_reference(self.cell, x, batch.parent, batch.position)
        return TreeOutput(state.h, state.h.index_select(0, batch.roots), state)


class TopDown(nn.Module):
    """A sequence cell of ``carousel.cells`` (``LSTMCell``, ``GRUCell``, ...) run from each root down:
    a node's state is one ``step`` of its input from its parent's state, so it sees the path from
    the root (roots start from ``state``, zeros by default).

    ``forward(x, batch, state=None)``: ``x`` (N, I) -> ``TreeOutput`` with ``nodes`` (N, H) and
    ``roots`` (T, H) (the roots' own states).
    """

    def __init__(self, cell: Cell, *, backend: str = "levels") -> None:
        super().__init__()
        if not isinstance(cell, Cell):
            raise TypeError(f"expected a sequence cell (carousel.Cell), got {type(cell).__name__}")
        self.cell = cell
        self.backend = check_choice(backend, BACKENDS, "tree backend")

    @property
    def output_size(self) -> int:
        return self.cell.output_size

    def forward(self, x: Tensor, batch: TreeBatch, state: Any = None) -> TreeOutput:
        _check_batch(batch, x, self.cell)
        if self.backend == "levels":
            out = run_down(self.cell, x, batch.schedule("down"), state)
        else:
            out = run_down_reference(self.cell, x, batch.parent, state)
        return TreeOutput(out.h, out.h.index_select(0, batch.roots), out)


class BidirectionalTree(nn.Module):
    r"""Bottom-up then top-down, for node-level tagging: every node sees its subtree and, through
    its ancestors, the rest of the tree.

    .. math::
        h^\uparrow_j &= \text{up}(x_j, \{h^\uparrow_k\}_{k \in C(j)}) \\
        h^\downarrow_j &= \text{down.step}([x_j; h^\uparrow_j],\ h^\downarrow_{p(j)})
            \quad (h^\downarrow_{p(\text{root})} = 0) \\
        y_j &= [h^\uparrow_j ; h^\downarrow_j]

    The top-down cell reads the node's input beside its bottom-up state, so its ``input_size``
    must be ``up.input_size + up.hidden_size``. ``forward(x, batch)``: ``x`` (N, I) ->
    ``TreeOutput`` with ``nodes`` (N, H_up + H_down), ``roots`` (T, H_up + H_down) and ``state``
    the pair (up state, down state).
    """

    def __init__(self, up: TreeCell, down: Cell, *, backend: str = "levels") -> None:
        super().__init__()
        self.up = BottomUp(up, backend=backend)
        self.down = TopDown(down, backend=backend)
        if down.input_size != up.input_size + up.hidden_size:
            raise ValueError(f"expected the top-down cell's input_size to be {up.input_size} + {up.hidden_size} "
                             f"(the node input beside the bottom-up state), got {down.input_size}")

    @property
    def output_size(self) -> int:
        return self.up.output_size + self.down.output_size

    def forward(self, x: Tensor, batch: TreeBatch) -> TreeOutput:
        up = self.up(x, batch)
        down = self.down(torch.cat([x, up.nodes], dim=1), batch)
        nodes = torch.cat([up.nodes, down.nodes], dim=1)  # (N, H_up + H_down)
        return TreeOutput(nodes, nodes.index_select(0, batch.roots), (up.state, down.state))
