"""State layout: torch's ``(L*D, B, F)`` hidden tensors and carousel's nested per-layer states.

torch.nn gives a stack's state as one tensor per state field (``h_0``, and ``c_0`` for an LSTM),
layers and directions stacked in its first dimension (layer 0 forward, layer 0 reverse, layer 1
forward, ...). A ``Deep`` stack carries one state per layer, a ``(forward, backward)`` pair per
``Bidirectional`` layer, each in its cell's state type.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from ..._checks import ShapeError, check_same_kind, shape_str


def check_hidden(
    tensors: Sequence[Any], fields: Sequence[tuple[str, int]], layers_directions: int, batch: int, unbatched: bool,
    like: Tensor | None = None,
) -> tuple[Tensor, ...]:
    """The initial state fields, each checked to be (L*D, B, F) (unbatched: (L*D, F), returned as (L*D, 1, F)).

    ``fields`` holds ``(name, size)`` per state field. Raises ``ValueError`` naming the field and
    the shapes expected and given, and (with ``like``, the input) a field of another dtype or device.
    """
    checked = []
    for (name, size), t in zip(fields, tensors):
        want = (layers_directions, size) if unbatched else (layers_directions, batch, size)
        if not isinstance(t, Tensor) or tuple(t.shape) != want:
            got = shape_str(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ShapeError(f"expected initial state {name!r} of shape {shape_str(want)}, got {got}")
        if like is not None:
            check_same_kind(t, like, f"initial state {name!r}", "the input")
        checked.append(t.unsqueeze(1) if unbatched else t)
    return tuple(checked)


def split_hidden(fields: Sequence[Tensor], state_type: type, num_layers: int, bidirectional: bool) -> tuple:
    """torch's (L*D, B, F) tensors -> carousel's nested per-layer states."""
    per_field = [t.unbind(0) for t in fields]
    states = [state_type(*parts) for parts in zip(*per_field)]  # one per (layer, direction)
    if bidirectional:
        return tuple((states[2 * i], states[2 * i + 1]) for i in range(num_layers))
    return tuple(states)


def join_hidden(finals: Sequence[Any], bidirectional: bool) -> tuple[Tensor, ...]:
    """carousel's nested per-layer final states -> torch's (L*D, B, F) tensors, one per state field."""
    flat = [s for layer in finals for s in (layer if bidirectional else (layer,))]
    return tuple(torch.stack([s[k] for s in flat], dim=0) for k in range(len(flat[0])))  # (L*D, B, F)
