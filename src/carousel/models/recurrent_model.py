r"""``RecurrentModel``: an input map, a stack of carousel recurrent layers, and a linear head.

.. math::
    u_t &= E[x_t] \;\text{(token ids, ``vocab_size`` given)} \quad\text{or}\quad u_t = x_t \\
    y, s &= \text{Deep}([\text{Recurrent}(\text{cell}_1), \dots, \text{Recurrent}(\text{cell}_L)])(u, s_0) \\
    z_t &= W\, \text{dropout}(y_t) + b

``readout="all"`` returns ``z`` at every step (B, T, O) (tagging, language models);
``readout="last"`` returns ``z`` at each sequence's last step (B, O) (sequence to item). The
forward is layer-shaped: ``model(x, state=None, lengths=None) -> (z, final_state)``, so a
trainer can carry the state across windows. The cell is a registered name (``"lstm"``, ``"gru"``,
...) or a factory ``(input_size, hidden_size) -> Cell`` (a cell with an initialisation of its own).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from .._checks import check_choice, check_rate, check_size
from ..regularize import VariationalDropout
from .parts import CellFactory, cell_factory, check_token_ids, last_step, recurrent_stack


class RecurrentModel(nn.Module):
    """``RecurrentModel("lstm", 2, 64, 1, layers=2, readout="last")``; see the module docstring.

    ``x`` is (B, T, I) features, or (B, T) token ids when ``vocab_size`` is given; raises
    ``ValueError`` for sizes below 1, an unknown cell or readout, and malformed input.
    """

    def __init__(
        self,
        cell: str | CellFactory,
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
        self.dropout = check_rate(dropout, "dropout")
        self.embedding = None if vocab_size is None else nn.Embedding(check_size(vocab_size, "vocab_size"), input_size)
        self.rnn = recurrent_stack(cell_factory(cell, cell_options), input_size, [hidden_size] * layers,
                                   dropout=self.dropout, backend=backend)
        self.drop = VariationalDropout(self.dropout)
        self.head = nn.Linear(self.rnn.output_size, output_size)

    def forward(self, x: Tensor, state: Any = None, lengths: Tensor | None = None) -> tuple[Tensor, Any]:
        if self.embedding is not None:
            x = self.embedding(check_token_ids(x, "token ids", self.embedding.weight, self.embedding.num_embeddings))  # (B, T, I)
        y, state = self.rnn(x, state, lengths)  # (B, T, H)
        if self.readout == "last":
            y = last_step(y, lengths)  # (B, H)
        return self.head(self.drop(y)), state
