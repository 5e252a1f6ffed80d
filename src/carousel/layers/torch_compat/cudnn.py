"""cuDNN's weight layout: a drop-in's weights as views of one buffer in cuDNN's order, as torch.nn keeps them.

cuDNN reads a stack's weights from one contiguous buffer; weights kept apart are copied into one
at every call (and cuDNN warns each time). ``flatten_into_cudnn_buffer`` moves the parameters of a
plain stack into such a buffer once, on a GPU; the drop-ins call it after every move, like
``torch.nn.RNNBase.flatten_parameters``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.backends.cudnn import rnn
from torch.nn.utils import parametrize

from ...cells.base import Cell
from ...runners.fused import stack_fused_mode

_CUDNN_MODES = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN_TANH", "rnn_relu": "RNN_RELU"}


def flatten_into_cudnn_buffer(
    cells: Sequence[Cell], *, input_size: int, hidden_size: int, proj_size: int, num_layers: int, batch_first: bool,
    bidirectional: bool,
) -> bool:
    """Make the parameters of ``cells`` (torch's order) views of one cuDNN-ordered buffer; whether it was done.

    Nothing happens on the CPU, for computed weights (DropConnect, an orthogonal map: they are new
    tensors at every call), for cells no fused kernel computes, and for shared weights.
    """
    if any(parametrize.is_parametrized(c) for c in cells):
        return False
    weights = [w for c in cells for w in c.fused_weights()]
    first = weights[0]
    if not first.is_cuda or not torch.backends.cudnn.is_acceptable(first):
        return False
    mode = stack_fused_mode(cells, first)
    if mode is None or any(not isinstance(w, nn.Parameter) or w.dtype != first.dtype or w.device != first.device for w in weights):
        return False
    if len({w.data_ptr() for w in weights}) != len(weights) or not torch._use_cudnn_rnn_flatten_weight():
        return False  # shared weights, or a build without the flat layout
    with torch.cuda.device_of(first), torch.no_grad():  # the parameters become views of one new buffer
        torch._cudnn_rnn_flatten_weight(
            weights, len(cells[0].fused_weights()), input_size, rnn.get_cudnn_mode(_CUDNN_MODES[mode]),
            hidden_size, proj_size, num_layers, batch_first, bidirectional,
        )
    return True
