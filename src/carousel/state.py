"""Recurrent state: one ``NamedTuple`` per cell family, and the walk over nested states.

Every state type has ``h`` first, the output the layer above sees. A layer's state nests these
(``Deep``: one per layer; ``Bidirectional``: a pair), so ``map_state`` applies a function to every
tensor of any nesting of tuples, NamedTuples, lists and dicts.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from torch import Tensor


class ElmanState(NamedTuple):
    """State of a cell whose memory is one vector: ``h`` of shape (B, H) (Elman, IRNN,
    antisymmetric and orthogonal cells)."""

    h: Tensor


class LSTMState(NamedTuple):
    """LSTM state: output ``h`` (B, P or H) and cell ``c`` (B, H), the constant error carousel."""

    h: Tensor
    c: Tensor


class GRUState(NamedTuple):
    """GRU state: ``h`` of shape (B, H) (the GRU and the minGRU)."""

    h: Tensor


class MinLSTMState(NamedTuple):
    """minLSTM state: ``h`` of shape (B, H); unlike the LSTM it keeps no separate cell ``c``."""

    h: Tensor


def map_state(fn: Callable[[Tensor], Tensor], state: Any, *, keep_others: bool = False) -> Any:
    """Apply ``fn`` to every tensor in a nested state (tuples, NamedTuples, lists, dicts, None).

    Anything else raises ``TypeError``, or with ``keep_others`` passes through unchanged (a
    batch's labels, say).
    """
    if state is None:
        return None
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(map_state(fn, s, keep_others=keep_others) for s in state))
    if isinstance(state, (tuple, list)):
        return type(state)(map_state(fn, s, keep_others=keep_others) for s in state)
    if isinstance(state, dict):
        return {k: map_state(fn, v, keep_others=keep_others) for k, v in state.items()}
    if keep_others:
        return state
    raise TypeError(f"expected a recurrent state made of tensors, tuples, lists or dicts, got {type(state).__name__}")


def detach_state(state: Any) -> Any:
    """The same state cut from the graph that produced it (what truncated BPTT carries)."""
    return map_state(Tensor.detach, state)
