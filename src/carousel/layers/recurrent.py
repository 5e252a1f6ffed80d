"""``Recurrent(cell)``: one cell run over sequences by the chosen backend."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..cells.base import Cell, check_cell
from ..runners import check_backend, dispatch
from .base import SequenceLayer


class Recurrent(SequenceLayer):
    """A cell over time: ``Recurrent(LSTMCell(32, 64))(x) -> (outputs, final_state)``.

    ``x`` is (B, T, I) (or (T, B, I) with ``batch_first=False``) or a ``PackedSequence``;
    ``lengths`` (B,) marks where each padded sequence ends. ``backend`` is one of
    ``carousel.runners.backend_names()``; ``"auto"`` picks the fastest that serves the cell.
    """

    def __init__(self, cell: Cell, *, batch_first: bool = True, backend: str = "auto") -> None:
        super().__init__(batch_first=batch_first)
        self.cell = check_cell(cell)
        self.backend = check_backend(backend)

    @property
    def input_size(self) -> int:  # type: ignore[override]
        return self.cell.input_size

    @property
    def output_size(self) -> int:  # type: ignore[override]
        return self.cell.output_size

    def forward_padded(self, x: Tensor, state: Any, lengths: Tensor | None) -> tuple[Tensor, Any]:
        state = self.cell.check_state(state, x.shape[0], like=self.cell.check_input(x))
        return dispatch(self.cell, x, state, lengths, self.backend)

    def extra_repr(self) -> str:
        return f"batch_first={self.batch_first}, backend={self.backend!r}"
