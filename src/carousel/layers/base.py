"""What every sequence layer shares: the boundary between users' tensors and batch-first padding.

A layer's public ``forward(x, state=None, lengths=None)`` accepts a padded tensor (batch-first
unless the layer was built with ``batch_first=False``) or a ``PackedSequence``, checks it once,
and calls ``forward_padded`` on a batch-first tensor with validated ``lengths``. Layers that
contain layers call their children's ``forward_padded`` directly, so the check and the layout
change happen once, at the outermost layer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .._checks import check_flag, check_instance, check_lengths, check_sequence_input
from ..cells.base import Cell


class SequenceLayer(nn.Module):
    """Base class: subclasses define ``input_size``, ``output_size`` and ``forward_padded``."""

    input_size: int
    output_size: int

    def __init__(self, *, batch_first: bool = True) -> None:
        super().__init__()
        self.batch_first = check_flag(batch_first, "batch_first")

    def forward_padded(self, x: Tensor, state: Any, lengths: Tensor | None) -> tuple[Tensor, Any]:
        """Run over batch-first padded ``x`` (B, T, I) with validated ``lengths`` (or None)."""
        raise NotImplementedError

    def forward(self, x: Tensor | PackedSequence, state: Any = None, lengths: Any = None) -> tuple[Any, Any]:
        """Returns ``(outputs, final_state)``; outputs have the layout of ``x`` (padded or packed).

        ``x`` is (B, T, I) (``batch_first=False``: (T, B, I)) with T >= 1, floating-point, of the
        parameters' dtype and device; ``lengths`` (B,) integers in [1, T] (a list, tuple or integer
        tensor on the CPU or on ``x``'s device). Raises ``TypeError`` for a non-tensor input,
        non-integer lengths and a state of the wrong kind (one layer's state given to a stack),
        ``ValueError`` (a ``ShapeError`` for shapes) for the wrong shape, dtype or device (naming both)
        or lengths out of range.
        """
        if isinstance(x, PackedSequence):
            if lengths is not None:
                raise ValueError("lengths were given with a PackedSequence, which carries its own lengths; give one or the other")
            padded, lens = pad_packed_sequence(x, batch_first=True)  # (B, T, I), original order
            check_sequence_input(padded, self.input_size)
            out, final = self.forward_padded(padded, state, None if bool((lens == padded.shape[1]).all()) else lens)
            return repack_like(out, lens, x), final
        x = check_sequence_input(x, self.input_size, batch_first=self.batch_first)
        if not self.batch_first:
            x = x.transpose(0, 1)  # (B, T, I)
        lengths = check_lengths(lengths, x.shape[0], x.shape[1], device=x.device)
        if lengths is not None and bool((lengths == x.shape[1]).all()):
            lengths = None
        out, final = self.forward_padded(x, state, lengths)
        return (out if self.batch_first else out.transpose(0, 1)), final


def check_layer(value: object, what: str = "layer") -> SequenceLayer:
    """``value`` if it is a carousel sequence layer, else ``TypeError`` saying what was given and what
    to do (a cell: wrap it in ``Recurrent``; a torch.nn module or a drop-in: build the layer from cells)."""
    return check_instance(value, SequenceLayer, what, "a carousel sequence layer (Recurrent, Deep, Bidirectional, ...)", hints=(
        (Cell, "wrap the cell in Recurrent: Recurrent(cell)"),
        (nn.RNNCellBase, "torch.nn cells are not carousel layers; use Recurrent(carousel.LSTMCell(...)) (or GRUCell, ElmanCell)"),
        (nn.RNNBase, "torch.nn.LSTM/GRU/RNN and carousel's drop-ins take torch's (input, hx); build the layer from cells, "
                     "Recurrent(carousel.LSTMCell(...)), or use the module on its own"),
        (lambda v: type(v).__name__ in ("LSTM", "GRU", "RNN"),
         "carousel's drop-ins take torch's (input, hx); build the layer from cells, Recurrent(carousel.LSTMCell(...)), "
         "or use the drop-in on its own"),
    ))


def repack_like(padded: Tensor, lengths: Tensor, like: PackedSequence) -> PackedSequence:
    """Pack batch-first ``padded`` with the same batch sizes and sorting as the packed input ``like``."""
    if like.sorted_indices is not None:
        padded = padded.index_select(0, like.sorted_indices)
        lengths = lengths.index_select(0, like.sorted_indices.cpu())
    packed = pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=True)
    return PackedSequence(packed.data, packed.batch_sizes, like.sorted_indices, like.unsorted_indices)


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of batch-first ``x`` (B, T, F) within its own length; padding stays put."""
    if lengths is None:
        return x.flip(1)
    B, T = x.shape[:2]
    t = torch.arange(T).unsqueeze(0)  # (1, T)
    last = (lengths - 1).unsqueeze(1)  # (B, 1)
    index = torch.where(t <= last, last - t, t).to(x.device)  # (B, T)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))
