"""A picture of one tree's node states (matplotlib, imported only when a picture is asked for)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from .trees import TreeBatch


def tree_layout(batch: TreeBatch, tree: int = 0) -> dict[int, tuple[float, float]]:
    """``node -> (x, y)`` for the nodes of tree ``tree``: leaves one unit apart in pre-order, a parent
    centred over its children, ``y = -depth``."""
    if not 0 <= tree < len(batch):
        raise ValueError(f"expected a tree index in 0..{len(batch) - 1}, got {tree}")
    nodes = (batch.tree == tree).nonzero().squeeze(1).tolist()
    kids: dict[int, list[int]] = {v: [] for v in nodes}
    for v in nodes:
        p = int(batch.parent[v])
        if p >= 0:
            kids[p].append(v)
    where: dict[int, tuple[float, float]] = {}
    leaves = 0
    for v in nodes:  # pre-order: leaves from left to right
        if not kids[v]:
            where[v] = (float(leaves), -float(batch.depth[v]))
            leaves += 1
    for v in reversed(nodes):  # children before parents
        if kids[v]:
            xs = [where[c][0] for c in kids[v]]
            where[v] = ((min(xs) + max(xs)) / 2, -float(batch.depth[v]))
    return where


def plot_tree_states(batch: TreeBatch, states: Tensor, path: str | Path, *, tree: int = 0, units: int = 16,
                     title: str = "") -> Any:
    """Draw tree ``tree`` of ``batch`` with each node's state as a strip of its first ``units`` values
    (red negative, blue positive, on a symmetric scale to the tree's largest |value|, shown by a
    colour bar) under the node's label; write a PNG at
    ``path`` and return the figure (its images, one per node in node order, hold the plotted values).

    ``states`` (N, H): one row per node of the batch (``TreeOutput.nodes``). Raises ``ValueError``
    for states of the wrong shape or a tree index out of range; ``ImportError`` without matplotlib.
    """
    if not isinstance(states, Tensor) or states.dim() != 2 or states.shape[0] != batch.num_nodes:
        got = tuple(states.shape) if isinstance(states, Tensor) else type(states).__name__
        raise ValueError(f"expected node states of shape (N={batch.num_nodes}, H), got {got}")
    if isinstance(units, bool) or not isinstance(units, int) or units < 1:
        raise ValueError(f"expected units to be an integer >= 1 (state values drawn per node), got {units!r}")
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("carousel's plots need matplotlib: pip install 'carousel[plot]'") from err
    where = tree_layout(batch, tree)
    values = states.detach().float().cpu()[:, :units]
    scale = float(values[sorted(where)].abs().max()) or 1.0
    width = max(x for x, _ in where.values()) + 1
    depth = -min(y for _, y in where.values()) + 1
    fig = Figure(figsize=(max(4.0, 1.1 * width), max(2.5, 1.2 * depth)), layout="constrained")
    ax = fig.subplots()
    for v, (x, y) in where.items():
        p = int(batch.parent[v])
        if p >= 0:
            px, py = where[p]
            ax.plot([px, x], [py - 0.28, y + 0.12], color="0.6", linewidth=0.8, zorder=1)
    for v in sorted(where):
        x, y = where[v]
        image = ax.imshow(values[v : v + 1].numpy(), cmap="RdBu", vmin=-scale, vmax=scale, aspect="auto",
                  extent=(x - 0.42, x + 0.42, y - 0.22, y - 0.06), zorder=2)
        ax.text(x, y + 0.02, str(batch.labels[v]), ha="center", va="bottom", fontsize=8)
    ax.set_xlim(-0.6, width - 0.4)
    ax.set_ylim(-depth + 0.6, 0.4)
    ax.set_axis_off()
    fig.colorbar(image, ax=ax, shrink=0.4, label="state value")
    ax.set_title(title or f"tree {tree}: node states (first {values.shape[1]} units)", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return fig
