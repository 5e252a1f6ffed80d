"""The level runner: a recurrent cell over trees, one matrix product per tree level.

A tree's node depends on its children (bottom-up) or on its parent (top-down), so every node of
the same *height* (leaves 0, a parent one more than its highest child) can be computed at once
from the levels below it, and every node of the same *depth* (roots 0) from the level above.
This module runs a cell over a forest given as plain index tensors — ``parent`` (N,) with -1 at
each root, ``position`` (N,) (the node's place among its siblings), ``height`` or ``depth`` (N,)
— so that it knows nothing of how the trees were built (``carousel.structures.TreeBatch`` builds
them and passes its tensors here).

Bottom-up (``run_up``): a *tree cell* answers

* ``project(x)``: ``(N, I) -> (N, G)``, the input half of every node in one matrix product;
* ``leaf(px)``: the state of nodes without children, from ``px`` (L, G);
* ``node(px, children)``: the state of nodes with children, from ``px`` (L, G) and
  :class:`Children` (the children's states one row per edge, and where each edge goes);
* ``state_type`` (a NamedTuple, ``h`` first) and ``max_arity`` (the most children a node may
  have, None for any number).

The runner moves each level's states to the level of their parents (a slice and a split, no
Python loop over nodes); a cell sums children with :meth:`Children.sum` (``index_add_``).

Top-down (``run_down``): any sequence cell of ``carousel.cells`` (``project``, ``step``,
``initial_state``): a node's state is one ``step`` from its parent's state, so a path from the
root to a node is a sequence.

``run_up_reference`` and ``run_down_reference`` are the plain node-by-node computations the level
runner is tested against (same cell calls, one node at a time).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from .._checks import ShapeError, shape_str


class Children(NamedTuple):
    """The children of the nodes of one level, one row per parent->child edge.

    ``state``: the children's states (the cell's state type, each field (E, F)); ``parent`` (E,):
    the row of each edge's parent among the level's ``count`` nodes; ``position`` (E,): the
    child's place among its siblings (0 first).
    """

    state: Any
    parent: Tensor
    position: Tensor
    count: int

    def sum(self, t: Tensor) -> Tensor:
        """Per-parent sum of per-edge rows: ``(E, ...) -> (count, ...)`` by ``index_add_``."""
        return t.new_zeros((self.count, *t.shape[1:])).index_add_(0, self.parent, t)

    def slots(self, t: Tensor, arity: int) -> Tensor:
        """Per-edge rows placed at their child position: ``(E, F) -> (count, arity, F)``, zeros where
        a node has no child at a position. Positions must be below ``arity`` (the runner checks)."""
        out = t.new_zeros((self.count * arity, *t.shape[1:]))
        out.index_add_(0, self.parent * arity + self.position, t)
        return out.view(self.count, arity, *t.shape[1:])

    def of_parent(self, t: Tensor) -> Tensor:
        """Each edge's parent row of a per-node tensor: ``(count, ...) -> (E, ...)``."""
        return t.index_select(0, self.parent)


class UpSchedule(NamedTuple):
    """The plan of a bottom-up sweep (built by :func:`schedule_up`, all index tensors on one device).

    ``order`` (N,): node ids in level order (height, then by the height of their parent, roots
    last); ``inverse`` (N,): its inverse permutation; ``sizes``: nodes per level. Per level ``l``:
    ``edge_parent[l]``, ``edge_position[l]`` (E_l,) describe the edges into the level, in the order
    in which the lower levels send them; ``sends[l]``: ``(destination level, count)`` pairs for the
    level's first rows (its non-roots, grouped by their parent's level). ``max_arity``: the most
    children of any node, ``widest``: a node that has them.
    """

    order: Tensor
    inverse: Tensor
    sizes: tuple[int, ...]
    edge_parent: tuple[Tensor, ...]
    edge_position: tuple[Tensor, ...]
    sends: tuple[tuple[tuple[int, int], ...], ...]
    max_arity: int
    widest: int

    def to(self, device) -> "UpSchedule":
        move = lambda ts: tuple(t.to(device) for t in ts)  # noqa: E731
        return self._replace(order=self.order.to(device), inverse=self.inverse.to(device),
                             edge_parent=move(self.edge_parent), edge_position=move(self.edge_position))


class DownSchedule(NamedTuple):
    """The plan of a top-down sweep (built by :func:`schedule_down`): ``order``/``inverse``/``sizes``
    as in :class:`UpSchedule` but by depth (roots first, in the order of their node ids), and
    ``parent_row[d]`` (L_d,): each node's parent's row in level ``d - 1`` (empty for the roots)."""

    order: Tensor
    inverse: Tensor
    sizes: tuple[int, ...]
    parent_row: tuple[Tensor, ...]

    def to(self, device) -> "DownSchedule":
        return self._replace(order=self.order.to(device), inverse=self.inverse.to(device),
                             parent_row=tuple(t.to(device) for t in self.parent_row))


def _check_index(t: object, name: str, n: int | None = None) -> Tensor:
    if not isinstance(t, Tensor) or t.dim() != 1 or t.dtype not in (torch.int64, torch.int32):
        got = f"a tensor of shape {shape_str(t.shape)} and dtype {t.dtype}" if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"expected {name} as a 1-d integer tensor (N,), got {got}")
    if n is not None and t.numel() != n:
        raise ShapeError(f"expected {name} of shape ({n},), one per node, got {shape_str(t.shape)}")
    return t.detach().to("cpu", torch.int64)


def _local_rows(order: Tensor, level: Tensor, sizes: Tensor) -> Tensor:
    """Each node's row within its level, given the level order."""
    start = torch.cumsum(sizes, 0) - sizes  # (levels,)
    local = torch.empty_like(order)
    local[order] = torch.arange(order.numel()) - start[level[order]]
    return local


def schedule_up(parent: Tensor, position: Tensor, height: Tensor) -> UpSchedule:
    """Plan a bottom-up sweep over a forest given by ``parent`` (N,) (-1 at roots), ``position``
    (N,) and ``height`` (N,) (leaves 0). Raises ``ValueError`` when a parent is not higher than its
    child (the heights do not belong to the parents) or an index is out of range."""
    device = height.device if isinstance(height, Tensor) else None
    parent = _check_index(parent, "parent")
    n = parent.numel()
    position, height = _check_index(position, "position", n), _check_index(height, "height", n)
    if n == 0:
        raise ValueError("expected at least one node, got an empty forest")
    if int(parent.min()) < -1 or int(parent.max()) >= n:
        raise ValueError(f"expected parent indices in -1..{n - 1}, got values from {int(parent.min())} to {int(parent.max())}")
    child = (parent >= 0).nonzero().squeeze(1)  # (E,) the non-roots
    if child.numel():
        bad = (height[parent[child]] <= height[child]).nonzero()
        if bad.numel():
            v = int(child[bad[0, 0]])
            p = int(parent[v])
            raise ValueError(f"node {p} has height {int(height[p])} but its child {v} has height "
                             f"{int(height[v])}; expected a parent higher than each of its children")
    if int(height.min()) < 0 or ((height > 0) & (torch.bincount(parent[child], minlength=n) == 0)).any():
        raise ValueError("expected height 0 exactly at the nodes without children")
    levels = int(height.max()) + 1
    sizes = torch.bincount(height, minlength=levels)
    up = torch.full((n,), levels, dtype=torch.int64)  # the parent's level; roots sort last
    up[child] = height[parent[child]]
    order = torch.argsort(height * (levels + 1) + up, stable=True)
    local = _local_rows(order, height, sizes)
    arity = torch.bincount(parent[child], minlength=n)
    # edges into each level, in the order the lower levels send them: by (child level, child row)
    dest = height[parent[child]]
    recv = child[torch.argsort((dest * levels + height[child]) * n + local[child], stable=True)]
    per_level = torch.bincount(height[parent[recv]], minlength=levels).tolist()
    edge_parent = local[parent[recv]].split(per_level)
    edge_position = position[recv].split(per_level)
    sends = []
    for lvl in range(levels):
        nodes = order[int(sizes[:lvl].sum()) : int(sizes[: lvl + 1].sum())]
        to = up[nodes]
        to = to[to < levels]
        if to.numel():
            targets, counts = torch.unique_consecutive(to, return_counts=True)
            sends.append(tuple(zip(targets.tolist(), counts.tolist())))
        else:
            sends.append(())
    widest = int(torch.argmax(arity))
    return UpSchedule(order.to(device), torch.argsort(order).to(device), tuple(sizes.tolist()), tuple(edge_parent),
                      tuple(edge_position), tuple(sends), int(arity[widest]), widest)


def schedule_down(parent: Tensor, depth: Tensor) -> DownSchedule:
    """Plan a top-down sweep over a forest given by ``parent`` (N,) (-1 at roots) and ``depth`` (N,)
    (roots 0). Raises ``ValueError`` when a depth is not its parent's plus one."""
    device = depth.device if isinstance(depth, Tensor) else None
    parent = _check_index(parent, "parent")
    n = parent.numel()
    depth = _check_index(depth, "depth", n)
    if n == 0:
        raise ValueError("expected at least one node, got an empty forest")
    if int(parent.min()) < -1 or int(parent.max()) >= n:
        raise ValueError(f"expected parent indices in -1..{n - 1}, got values from {int(parent.min())} to {int(parent.max())}")
    root = parent < 0
    if (depth[root] != 0).any() or (depth[~root] != depth[parent[~root]] + 1).any():
        raise ValueError("expected depth 0 at the roots and each node's depth one more than its parent's")
    levels = int(depth.max()) + 1
    sizes = torch.bincount(depth, minlength=levels)
    order = torch.argsort(depth, stable=True)
    local = _local_rows(order, depth, sizes)
    parent_row = tuple(local[parent[nodes]] if d else torch.empty(0, dtype=torch.int64)
                       for d, nodes in enumerate(order.split(sizes.tolist())))
    return DownSchedule(order, torch.argsort(order), tuple(sizes.tolist()), parent_row).to(device)


def _check_features(x: object, n: int) -> Tensor:
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[0] != n:
        got = shape_str(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ShapeError(f"expected node features of shape (N={n}, I), got {got}")
    return x


def _check_arity(cell, max_arity: int, widest: int) -> None:
    limit = cell.max_arity
    if limit is not None and max_arity > limit:
        raise ValueError(f"node {widest} has {max_arity} children; {type(cell).__name__} takes at most max_arity={limit}")


def _cat(parts: list) -> Any:
    """Concatenate a list of states field by field (rows)."""
    if len(parts) == 1:
        return parts[0]
    return type(parts[0])(*(torch.cat(fields) for fields in zip(*parts)))


def run_up(cell, x: Tensor, schedule: UpSchedule) -> Any:
    """Run a tree cell bottom-up, one level (all nodes of one height) per step.

    ``x`` (N, I): the nodes' inputs in node order. Returns the cell's state type with every field
    (N, F) in node order. Raises ``ValueError`` when a node has more children than ``cell.max_arity``.
    """
    _check_features(x, schedule.order.numel())
    _check_arity(cell, schedule.max_arity, schedule.widest)
    px = cell.project(x.index_select(0, schedule.order))  # (N, G) in level order
    pending: list[list] = [[] for _ in schedule.sizes]
    outs = []
    for lvl, px_l in enumerate(px.split(schedule.sizes)):
        if lvl == 0:
            state = cell.leaf(px_l)
        else:
            children = Children(_cat(pending[lvl]), schedule.edge_parent[lvl], schedule.edge_position[lvl], px_l.shape[0])
            pending[lvl] = []
            state = cell.node(px_l, children)
        outs.append(state)
        if schedule.sends[lvl]:
            counts = [c for _, c in schedule.sends[lvl]]
            parts = [t[: sum(counts)].split(counts) for t in state]  # the non-roots come first
            for k, (dest, _) in enumerate(schedule.sends[lvl]):
                pending[dest].append(type(state)(*(p[k] for p in parts)))
    return type(outs[0])(*(torch.cat(fields).index_select(0, schedule.inverse) for fields in zip(*outs)))


def run_down(cell, x: Tensor, schedule: DownSchedule, state: Any = None) -> Any:
    """Run a sequence cell top-down: each node's state is ``cell.step`` of its input from its parent's
    state; one level (all nodes of one depth) per step.

    ``x`` (N, I) in node order; ``state``: the state the roots start from, each field (R, F) for the
    R roots in the order of their node ids (zeros when None). Returns the state type, each field
    (N, F) in node order.
    """
    _check_features(x, schedule.order.numel())
    px = cell.project(x.index_select(0, schedule.order))  # (N, G) in depth order
    start = cell.check_state(state, schedule.sizes[0], like=px)
    outs = []
    for d, px_d in enumerate(px.split(schedule.sizes)):
        if d == 0:
            prev = cell.step(px_d, start)
        else:
            prev = cell.step(px_d, type(prev)(*(t.index_select(0, schedule.parent_row[d]) for t in prev)))
        outs.append(prev)
    return type(outs[0])(*(torch.cat(fields).index_select(0, schedule.inverse) for fields in zip(*outs)))


def _post_order(parent: list[int], position: list[int]) -> tuple[list[list[int]], list[int]]:
    """Children lists (by position) and an order in which every child comes before its parent."""
    n = len(parent)
    kids: list[list[int]] = [[] for _ in range(n)]
    for v, p in enumerate(parent):
        if p >= 0:
            kids[p].append(v)
    for k in kids:
        k.sort(key=lambda v: position[v])
    order, stack = [], [(v, False) for v in range(n) if parent[v] < 0]
    while stack:
        v, done = stack.pop()
        if done:
            order.append(v)
        else:
            stack.append((v, True))
            stack += [(c, False) for c in kids[v]]
    if len(order) != n:
        raise ValueError("expected a forest: some nodes are on a cycle and reach no root")
    return kids, order


def run_up_reference(cell, x: Tensor, parent: Tensor, position: Tensor) -> Any:
    """The node-by-node bottom-up computation: ``cell.leaf`` or ``cell.node`` for one node at a
    time, children before parents. Same arguments and result as :func:`run_up` (with the plain
    ``parent`` and ``position`` tensors instead of a schedule)."""
    parent_l = _check_index(parent, "parent").tolist()
    position_l = _check_index(position, "position", len(parent_l)).tolist()
    _check_features(x, len(parent_l))
    kids, order = _post_order(parent_l, position_l)
    px = cell.project(x).unbind(0)  # N rows (G,)
    states: list[Any] = [None] * len(parent_l)
    for v in order:
        px_v = px[v].unsqueeze(0)  # (1, G)
        if not kids[v]:
            states[v] = cell.leaf(px_v)
        else:
            if cell.max_arity is not None and len(kids[v]) > cell.max_arity:
                raise ValueError(f"node {v} has {len(kids[v])} children; {type(cell).__name__} takes at most "
                                 f"max_arity={cell.max_arity}")
            child = _cat([states[c] for c in kids[v]])
            e = len(kids[v])
            where = torch.zeros(e, dtype=torch.int64, device=x.device)
            pos = torch.tensor([position_l[c] for c in kids[v]], dtype=torch.int64, device=x.device)
            states[v] = cell.node(px_v, Children(child, where, pos, 1))
    return _cat(states)


def run_down_reference(cell, x: Tensor, parent: Tensor, state: Any = None) -> Any:
    """The node-by-node top-down computation: ``cell.step`` for one node at a time from its parent's
    state, parents before children. Same result as :func:`run_down`."""
    parent_l = _check_index(parent, "parent").tolist()
    _check_features(x, len(parent_l))
    kids, order = _post_order(parent_l, [0] * len(parent_l))
    roots = [v for v, p in enumerate(parent_l) if p < 0]
    px = cell.project(x).unbind(0)
    start = cell.check_state(state, len(roots), like=x)
    states: list[Any] = [None] * len(parent_l)
    for r, v in enumerate(roots):
        states[v] = cell.step(px[v].unsqueeze(0), type(start)(*(t[r : r + 1] for t in start)))
    for v in reversed(order):  # parents before children
        if parent_l[v] >= 0:
            states[v] = cell.step(px[v].unsqueeze(0), states[parent_l[v]])
    return _cat(states)
