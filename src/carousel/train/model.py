r"""``RecurrentModel``: an input map, a stack of carousel recurrent layers, and a linear head.

.. math::
    u_t &= E[x_t] \;\text{(token ids, ``vocab_size`` given)} \quad\text{or}\quad u_t = x_t \\
    y, s &= \text{Deep}([\text{Recurrent}(\text{cell}_1), \dots, \text{Recurrent}(\text{cell}_L)])(u, s_0) \\
    z_t &= W\, \text{dropout}(y_t) + b

``readout="all"`` returns ``z`` at every step (B, T, O) (tagging, language models);
``readout="last"`` returns ``z`` at each sequence's last step (B, O) (sequence to item). The
forward is layer-shaped: ``model(x, state=None, lengths=None) -> (z, final_state)``, so a
trainer can carry the state across windows.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_choice, check_probability, check_size
from ..layers import Deep, Recurrent
from ..regularize.variational import VariationalDropout
from .cells import make_cell


class RecurrentModel(nn.Module):
    """``RecurrentModel("lstm", 2, 64, 1, layers=2, readout="last")``; see the module docstring."""

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        output_size: int,
        *,
        layers: int = 1,
        vocab_size: int | None = None,
        dropout: float = 0.0,
        readout: str = "last",
        backend: str = "auto",
        cell_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        check_size(input_size, "input_size")
        check_size(hidden_size, "hidden_size")
        check_size(output_size, "output_size")
        check_size(layers, "layers")
        self.readout = check_choice(readout, ("last", "all"), "readout")
        self.dropout = check_probability(dropout, "dropout")
        self.embedding = None if vocab_size is None else nn.Embedding(check_size(vocab_size, "vocab_size"), input_size)
        kw = dict(cell_options or {})
        stack, size = [], input_size
        for _ in range(layers):
            c = make_cell(cell, size, hidden_size, **kw)
            stack.append(Recurrent(c, backend=backend))
            size = c.output_size
        self.rnn = Deep(stack, dropout=self.dropout, variational=True)
        self.drop = VariationalDropout(self.dropout)
        self.head = nn.Linear(size, output_size)

    def forward(self, x: Tensor, state: Any = None, lengths: Tensor | None = None) -> tuple[Tensor, Any]:
        if self.embedding is not None:
            if not isinstance(x, Tensor) or x.dim() != 2 or x.is_floating_point():
                got = f"shape {tuple(x.shape)} dtype {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
                raise ValueError(f"expected token ids of shape (B, T) and an integer dtype, got {got}")
            x = self.embedding(x)  # (B, T, I)
        y, state = self.rnn(x, state, lengths)  # (B, T, H)
        if self.readout == "last":
            if lengths is None:
                y = y[:, -1]  # (B, H)
            else:
                last = torch.as_tensor(lengths, device=y.device).long() - 1
                y = y[torch.arange(y.shape[0], device=y.device), last]  # (B, H)
        return self.head(self.drop(y)), state
