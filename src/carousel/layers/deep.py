"""``Deep``: a stack of sequence layers with dropout, residual and input-skip connections."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from .._checks import check_flag, check_rate
from ..regularize.variational import VariationalDropout
from .base import SequenceLayer, check_layer


class Deep(SequenceLayer):
    r"""Stack ``layers`` so that layer ``l`` reads layer ``l-1``'s outputs.

    .. math::
        u_l &= \text{dropout}(y_{l-1}) \quad (\text{or } [x; \text{dropout}(y_{l-1})] \text{ with skip\_input}) \\
        y_l &= f_l(u_l) \; (+\, y_{l-1} \text{ with residual, for } l \ge 1)

    * ``dropout``: drawn afresh per element between layers (not after the last), like
      ``torch.nn.LSTM``'s ``dropout``; with ``variational=True`` one mask per sequence, shared by
      all its time steps (Gal & Ghahramani 2016, see ``carousel.VariationalDropout``).
    * ``residual``: each layer after the first adds its input layer's output to its own
      (He et al. 2016 applied to stacked RNNs, as in GNMT); sizes must agree.
    * ``skip_input``: every layer after the first also sees the stack's input ``x``
      (Graves 2013, "Generating Sequences With Recurrent Neural Networks").

    The state is a tuple with one entry per layer (each in that layer's own state form); a single
    layer's state (one ``LSTMState``) is a ``TypeError`` saying so. Layers must be carousel
    sequence layers (a cell is refused with the advice to wrap it in ``Recurrent``); options are
    checked as given (``dropout`` a number in [0, 1], the flags ``bool``).
    """

    def __init__(
        self,
        layers: Sequence[SequenceLayer],
        *,
        dropout: float = 0.0,
        residual: bool = False,
        skip_input: bool = False,
        variational: bool = False,
        batch_first: bool = True,
    ) -> None:
        super().__init__(batch_first=batch_first)
        if isinstance(layers, nn.Module) or not hasattr(layers, "__iter__"):
            raise TypeError(f"expected layers as a list of carousel sequence layers, got {type(layers).__name__}")
        layers = list(layers)
        if not layers:
            raise ValueError("Deep needs at least one layer, got none")
        for i, layer in enumerate(layers):
            check_layer(layer, f"layer {i} of Deep")
        self.residual = check_flag(residual, "residual")
        self.skip_input = check_flag(skip_input, "skip_input")
        x_size = layers[0].input_size
        for i in range(1, len(layers)):
            below = layers[i - 1].output_size
            want = below + (x_size if skip_input else 0)
            if layers[i].input_size != want:
                how = f"{below} from layer {i - 1}" + (f" + {x_size} from the skipped input" if skip_input else "")
                raise ValueError(f"layer {i} expects inputs of size {layers[i].input_size}, but gets {want} ({how})")
            if residual and layers[i].output_size != below:
                raise ValueError(
                    f"residual connections need equal sizes: layer {i} outputs {layers[i].output_size}, "
                    f"layer {i - 1} outputs {below}"
                )
        self.layers = nn.ModuleList(layers)
        self.set_dropout(dropout, variational=variational)

    def set_dropout(self, p: float, *, variational: bool) -> None:
        """Dropout of rate ``p`` between layers: drawn per element (``variational=False``, like
        ``torch.nn.LSTM``'s ``dropout``) or one mask per sequence (``variational=True``). The only
        place that sets it: the constructor and wrappers such as ``add_variational_dropout`` call it."""
        self.dropout = check_rate(p, "dropout", allow_one=True)
        self.variational = check_flag(variational, "variational")
        self.drop = VariationalDropout(self.dropout) if self.variational else nn.Dropout(self.dropout)
        self.drop.train(self.training)

    @property
    def drops_between(self) -> bool:
        """Whether a call draws dropout between layers now (a rate above 0 and the dropout in training mode)."""
        return self.dropout > 0 and self.drop.training

    @property
    def input_size(self) -> int:  # type: ignore[override]
        return self.layers[0].input_size

    @property
    def output_size(self) -> int:  # type: ignore[override]
        return self.layers[-1].output_size

    def __len__(self) -> int:
        return len(self.layers)

    def forward_padded(self, x: Tensor, state: Any, lengths: Tensor | None) -> tuple[Tensor, tuple]:
        L = len(self.layers)
        if state is None:
            state = (None,) * L
        elif not isinstance(state, (tuple, list)) or hasattr(state, "_fields"):
            one = f"one {type(state).__name__} (a single layer's state)" if hasattr(state, "_fields") else type(state).__name__
            raise TypeError(
                f"expected a tuple of {L} per-layer states (one per layer, each in its layer's state form) for a "
                f"{L}-layer Deep stack, got {one}"
            )
        elif len(state) != L:
            raise ValueError(
                f"expected a tuple of {L} per-layer states for a {L}-layer Deep stack, got {type(state).__name__} of length {len(state)}"
            )
        finals = []
        y = x
        for i, (layer, s) in enumerate(zip(self.layers, state)):
            if i == 0:
                u = x
            else:
                u = self.drop(y) if self.dropout > 0 else y
                if self.skip_input:
                    u = torch.cat([x, u], dim=-1)  # (B, T, I + H)
            out, final = layer.forward_padded(u, s, lengths)
            y = out + y if (self.residual and i > 0) else out
            finals.append(final)
        return y, tuple(finals)

    def extra_repr(self) -> str:
        extra = ", variational=True" if self.variational else ""
        return f"dropout={self.dropout}{extra}, residual={self.residual}, skip_input={self.skip_input}"
