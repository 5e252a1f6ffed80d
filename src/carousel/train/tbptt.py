"""Truncated backpropagation through time: running a window, carrying and cutting the state.

``run_window(model, window, state)`` runs a layer-shaped model (``model(x, state) -> (y, state)``)
over a ``Window`` in pieces: it resets the state of a stream where a document starts in it, and it
keeps the state after ``window.carry_at`` steps, detached, for the next window. Detaching is what
truncates: the next window's graph starts at a leaf, so no gradient flows into earlier windows.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from ..state import detach_state, map_state
from .streams import Window


def reset_rows(state: Any, mask: Tensor) -> Any:
    """Zero the rows (streams) of every state tensor (B, ...) where ``mask`` (B,) is True."""
    if state is None:
        return None

    def reset(s: Tensor) -> Tensor:
        keep = ~mask.to(s.device).view(-1, *([1] * (s.dim() - 1)))  # (B, 1, ...)
        return s * keep

    return map_state(reset, state)


def run_window(model: Callable[..., tuple[Tensor, Any]], window: Window, state: Any) -> tuple[Tensor, Any]:
    """Run ``model`` over ``window.x`` from ``state``; returns outputs (b, W, ...) and the detached
    state after ``window.carry_at`` steps (the next window's initial state).

    The window is run in pieces cut where a stream starts a document (its rows are reset to zero
    before that step) and at ``carry_at``; the pieces are chained with the state passed across,
    which equals one run over the whole window (the layers' chunking contract).
    """
    W = window.x.shape[1]
    begins = window.starts.any(dim=0).nonzero().flatten().tolist()
    cuts = sorted({0, W, window.carry_at, *begins})
    outputs, carried = [], detach_state(state) if window.carry_at == 0 else None
    for a, b in zip(cuts[:-1], cuts[1:]):
        mask = window.starts[:, a]
        if bool(mask.any()):
            state = reset_rows(state, mask)
        y, state = model(window.x[:, a:b], state)
        outputs.append(y)
        if b == window.carry_at:
            carried = detach_state(state)
    return torch.cat(outputs, dim=1), carried
