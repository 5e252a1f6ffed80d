"""``Bidirectional``: one layer reads each sequence forwards, another backwards."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._checks import check_choice
from .base import SequenceLayer, check_layer, reverse_padded


class Bidirectional(SequenceLayer):
    """Run ``forward`` over each sequence and ``backward`` over it reversed within its own length.

    ``merge="concat"`` gives ``[y_fwd; y_bwd]`` (size H_f + H_b), ``"sum"`` gives ``y_fwd + y_bwd``.
    The backward outputs are re-reversed, so position t of both halves describes input t.
    The state is the pair ``(forward_state, backward_state)``; the backward final state is the
    one after reading the sequence's first element. Both directions must be carousel sequence
    layers (``TypeError`` otherwise: wrap a cell in ``Recurrent``); a single state where the pair
    belongs is a ``TypeError``.
    """

    def __init__(self, forward: SequenceLayer, backward: SequenceLayer, *, merge: str = "concat", batch_first: bool = True) -> None:
        check_layer(forward, "the forward layer of Bidirectional")
        check_layer(backward, "the backward layer of Bidirectional")
        super().__init__(batch_first=batch_first)
        self.merge = check_choice(merge, ("concat", "sum"), "merge mode")
        if forward.input_size != backward.input_size:
            raise ValueError(
                f"both directions must read the same input size, got {forward.input_size} (forward) "
                f"and {backward.input_size} (backward)"
            )
        if merge == "sum" and forward.output_size != backward.output_size:
            raise ValueError(
                f"merge='sum' needs equal output sizes, got {forward.output_size} (forward) and {backward.output_size} (backward)"
            )
        self.forward_layer = forward
        self.backward_layer = backward

    @property
    def input_size(self) -> int:  # type: ignore[override]
        return self.forward_layer.input_size

    @property
    def output_size(self) -> int:  # type: ignore[override]
        f, b = self.forward_layer.output_size, self.backward_layer.output_size
        return f + b if self.merge == "concat" else f

    def forward_padded(self, x: Tensor, state: Any, lengths: Tensor | None) -> tuple[Tensor, tuple]:
        if state is None:
            state = (None, None)
        elif not isinstance(state, (tuple, list)) or hasattr(state, "_fields"):
            one = " (one direction's state)" if hasattr(state, "_fields") else ""
            raise TypeError(
                f"expected a pair (forward_state, backward_state) for a Bidirectional layer, got {type(state).__name__}{one}"
            )
        elif len(state) != 2:
            raise ValueError(
                f"expected a pair (forward_state, backward_state) for a Bidirectional layer, got {type(state).__name__} of length {len(state)}"
            )
        y_f, s_f = self.forward_layer.forward_padded(x, state[0], lengths)
        y_b, s_b = self.backward_layer.forward_padded(reverse_padded(x, lengths), state[1], lengths)
        y_b = reverse_padded(y_b, lengths)
        y = torch.cat([y_f, y_b], dim=-1) if self.merge == "concat" else y_f + y_b
        return y, (s_f, s_b)

    def extra_repr(self) -> str:
        return f"merge={self.merge!r}"
