"""Attention maps as PNG images: which source token each target token read (matplotlib, loaded when called)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from .._checks import ShapeError, shape_str


def plot_attention(weights: Tensor, source_labels: Sequence[str], target_labels: Sequence[str], path: str | Path, *,
                   title: str | None = None) -> Path:
    """Save the attention weights (T, S) of one pair as a PNG at ``path``: one row per target token
    (``target_labels``, T), one column per source token (``source_labels``, S), darker = more weight.
    Returns the path. Raises ``ValueError`` when the labels do not match the weights' shape or the
    weights are not a finite (T, S) tensor with T, S >= 1. Needs matplotlib (``pip install carousel[plot]``)."""
    w = torch.as_tensor(weights).detach().float().cpu()
    if w.dim() != 2 or 0 in w.shape or not bool(torch.isfinite(w).all()):
        raise ShapeError(f"expected finite attention weights of shape (T, S) with T, S >= 1, got {shape_str(w.shape)}")
    T, S = w.shape
    if len(source_labels) != S or len(target_labels) != T:
        raise ValueError(f"expected {S} source labels and {T} target labels for weights of shape ({T}, {S}), "
                         f"got {len(source_labels)} and {len(target_labels)}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.0 + 0.4 * S, 1.0 + 0.4 * T))
    ax.imshow(w.numpy(), cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(S), [str(s) for s in source_labels], rotation=90)
    ax.set_yticks(range(T), [str(t) for t in target_labels])
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
