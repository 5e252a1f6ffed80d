r"""A fully convolutional branch beside a recurrent one: LSTM-FCN for time-series classification.

``ConvBranch`` is the fully convolutional network (FCN) of Wang, Yan & Oates 2017 ("Time series
classification from scratch with deep neural networks: a strong baseline", sec. 2.2): three blocks
of a 1-D convolution along time, batch normalisation and a ReLU (128, 256, 128 filters of widths 8,
5, 3, stride 1, "same" zero padding, so every block keeps the length T), then the global average
over time of the last block's maps:

.. math::
    h^{(0)} &= x \quad (B, C, T) \\
    h^{(k)} &= \mathrm{ReLU}(\mathrm{BN}_k(W_k * h^{(k-1)} + b_k)) \quad (B, F_k, T), \quad k = 1, 2, 3 \\
    \mathrm{features} &= \frac{1}{n_b} \sum_{t < n_b} h^{(3)}_{:, t} \quad (B, F_3)

``FCNClassifier`` is the LSTM-FCN of Karim, Majumdar, Darabi & Chen 2018 ("LSTM Fully
Convolutional Networks for Time Series Classification", IEEE Access 6, fig. 1): the pooled conv
features concatenated with the readout of a recurrent stack (a ``SequenceClassifier``'s own
``encode`` and ``pool``), and one linear head over both. The recurrent branch reads the series in
time (``patch`` P steps per recurrent step, see ``to_frames``) or, with ``shuffle``, "dimension
shuffled": each channel is one step whose input is its whole series of ``length`` values (their
sec. III-A; a univariate series is then a single step).

Variable lengths: series b is valid for its first ``lengths[b]`` steps. Values past them never
change an output: they are zeroed before every convolution (so the "same" padding at a series' end
is the zero padding a series of exactly that length gets), batch normalisation takes its batch
statistics over the valid steps only, and the average runs over the valid steps. In evaluation mode
a padded series scores exactly as the same series alone, cut to its length.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import ShapeError, check_flag, check_lengths, check_rate, check_sequence_input, check_size, factory_kwargs, shape_str
from .heads import SequenceClassifier, valid_mask
from .parts import CellFactory

FCN_FILTERS = (128, 256, 128)  # Wang et al. 2017, sec. 2.2
FCN_KERNELS = (8, 5, 3)


def to_frames(x: Tensor, lengths: Tensor, patch: int) -> tuple[Tensor, Tensor]:
    """``x`` (N, T, C) as frames of ``patch`` consecutive steps: (N, ceil(T / P), C * P), step t of
    frame f at columns [C * (t - P f), C * (t - P f + 1)); lengths ceil(lengths / P) (N,). The
    steps past a length keep what was there (zeros, for padding); the last frame is padded with zeros."""
    if patch == 1:
        return x, lengths
    N, T, C = x.shape
    frames = -(-T // patch)
    x = F.pad(x, (0, 0, 0, frames * patch - T))  # (N, frames * P, C)
    return x.reshape(N, frames, patch * C), -(-lengths // patch)


def _sizes(values: Sequence[int], name: str) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"expected {name} as a sequence of integers >= 1, got {type(values).__name__} {values!r}")
    sizes = tuple(check_size(v, f"every entry of {name}") for v in values)
    if not sizes:
        raise ValueError(f"expected at least one entry in {name}, got an empty sequence")
    return sizes


class ConvBranch(nn.Module):
    """The FCN feature extractor: ``ConvBranch(C)`` maps series (B, T, C) to features (B, F_last).

    ``forward(x, lengths=None)``: ``x`` (B, T, C) batch-first like the recurrent layers (it is
    transposed to torch's (B, C, T) for ``Conv1d``), ``lengths`` (B,) integers in [1, T] or None
    (every series fills T). Returns the average over each series' valid steps of the last block's
    maps, (B, ``filters[-1]``) = (B, ``output_size``). ``filters`` and ``kernels`` give the blocks
    (one entry per block, the same count); every convolution has stride 1 and "same" padding (for a
    width k, (k - 1) // 2 zeros before and k // 2 after, as ``Conv1d(padding="same")`` does).

    Raises ``TypeError``/``ValueError`` for sizes that are not integers >= 1 or lists of unequal
    length, ``ShapeError`` for input not of shape (B, T, C), ``ValueError`` for bad lengths.
    """

    def __init__(self, in_channels: int, filters: Sequence[int] = FCN_FILTERS, kernels: Sequence[int] = FCN_KERNELS, *,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        kw = factory_kwargs(device, dtype)
        self.in_channels = check_size(in_channels, "in_channels")
        self.filters, self.kernels = _sizes(filters, "filters"), _sizes(kernels, "kernels")
        if len(self.filters) != len(self.kernels):
            raise ValueError(f"expected one kernel width per block, got {len(self.filters)} filters {list(self.filters)} "
                             f"and {len(self.kernels)} kernels {list(self.kernels)}")
        sizes = (self.in_channels, *self.filters)
        self.convs = nn.ModuleList(nn.Conv1d(i, o, k, **kw) for i, o, k in zip(sizes, self.filters, self.kernels))
        self.norms = nn.ModuleList(nn.BatchNorm1d(o, **kw) for o in self.filters)
        self.output_size = self.filters[-1]

    def _norm(self, bn: nn.BatchNorm1d, h: Tensor, mask: Tensor | None) -> Tensor:
        """``bn`` over ``h`` (B, F, T) with its batch statistics from the valid steps (``mask`` (B, T))
        only; zero past them."""
        if mask is None:
            return bn(h)
        rows = h.transpose(1, 2)[mask]  # (sum of lengths, F): the valid steps
        out = h.new_zeros(h.shape[0], h.shape[2], h.shape[1])  # (B, T, F)
        out[mask] = bn(rows)
        return out.transpose(1, 2)  # (B, F, T)

    def forward(self, x: Tensor, lengths: Any = None) -> Tensor:
        x = check_sequence_input(x, self.in_channels, what="series")  # (B, T, C)
        B, T, _ = x.shape
        lengths = check_lengths(lengths, B, T, device=x.device)
        if lengths is not None and bool((lengths == T).all()):
            lengths = None
        mask = None if lengths is None else valid_mask(lengths, B, T, x.device)  # (B, T)
        keep = None if mask is None else mask.unsqueeze(1)  # (B, 1, T)
        h = x.transpose(1, 2)  # (B, C, T)
        for conv, bn in zip(self.convs, self.norms):
            if keep is not None:  # zero past each length (even NaN): the conv sees the zeros a cut series is padded with
                h = torch.where(keep, h, torch.zeros((), dtype=h.dtype, device=h.device))
            k = conv.kernel_size[0]
            h = F.pad(h, ((k - 1) // 2, k // 2))  # (B, F_(k-1), T + k - 1): "same" padding
            h = torch.relu(self._norm(bn, conv(h), mask))  # (B, F_k, T)
        if keep is None:
            return h.mean(2)  # (B, F)
        # h is 0 past each length (_norm writes zeros there and ReLU keeps them): the sum runs over the valid steps
        return h.sum(2) / lengths.to(device=h.device, dtype=h.dtype).unsqueeze(1)  # (B, F)


class FCNClassifier(SequenceClassifier):
    """LSTM-FCN: ``FCNClassifier("lstm", C, 64, num_classes)`` classifies series (B, T, C).

    ``forward(x, lengths=None) -> logits`` (B, num_classes): ``x`` (B, T, C) real series (C =
    ``input_size`` channels), ``lengths`` (B,) integers in [1, T] or None. The features are
    ``[pool(recurrent(x')), ConvBranch(x)]`` (B, H' + ``filters[-1]``), H' the recurrent stack's
    output size (2 H when bidirectional); ``dropout`` acts between the recurrent layers and on these
    features before the linear head, and ``readout_dropout`` on the recurrent readout alone before
    the concatenation (in training mode only; Karim et al. drop 0.8 of the LSTM's output there,
    fig. 1, so that the convolutional features carry most of the decision). The recurrent branch
    reads x' =

    * the frames of ``patch`` steps of x (``to_frames``: (B, ceil(T / P), C P)), its readout over the
      valid frames; or
    * with ``shuffle``, the transpose (B, C, ``length``): one step per channel, each step that
      channel's whole series, zero past its length and up to ``length`` (needed with ``shuffle``:
      the longest series the model will read).

    Other arguments as ``SequenceClassifier`` (no token input). Raises as it does, and
    ``ValueError`` for ``shuffle`` without ``length`` or with ``patch`` > 1 and for a
    ``readout_dropout`` outside [0, 1), ``ShapeError`` for a series longer than ``length``.
    """

    def __init__(self, cell: str | CellFactory, input_size: int, hidden_size: int, num_classes: int, *, layers: int = 1,
                 bidirectional: bool = False, readout: str = "mean", dropout: float = 0.0,
                 filters: Sequence[int] = FCN_FILTERS, kernels: Sequence[int] = FCN_KERNELS, patch: int = 1,
                 shuffle: bool = False, length: int | None = None, readout_dropout: float = 0.0, backend: str = "auto",
                 cell_options: dict[str, Any] | None = None, class_weights: Sequence[float] | Tensor | None = None) -> None:
        channels = check_size(input_size, "input_size")
        self_patch = check_size(patch, "patch")
        self_shuffle = check_flag(shuffle, "shuffle")
        if self_shuffle:
            if length is None:
                raise ValueError("expected length (the longest series to read) with shuffle=True: each channel becomes one "
                                 "step of `length` values, got length=None")
            if self_patch != 1:
                raise ValueError(f"expected patch 1 with shuffle=True (a shuffled channel is already one step), got patch {patch}")
            recurrent_input = check_size(length, "length")
        else:
            recurrent_input = channels * self_patch
        super().__init__(cell, recurrent_input, hidden_size, num_classes, layers=layers, bidirectional=bidirectional,
                         readout=readout, dropout=dropout, backend=backend, cell_options=cell_options,
                         class_weights=class_weights)
        self.input_size, self.patch, self.shuffle = channels, self_patch, self_shuffle
        self.length = recurrent_input if self_shuffle else None
        self.conv = ConvBranch(channels, filters, kernels)
        self.readout_dropout = check_rate(readout_dropout, "readout_dropout")
        self.readout_drop = nn.Dropout(self.readout_dropout)
        self.head = nn.Linear(self.rnn.output_size + self.conv.output_size, self.num_classes)

    def recurrent_input(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """What the recurrent branch reads from ``x`` (B, T, C) (zero past ``lengths`` (B,) or None):
        frames (B, ceil(T / P), C P) with their lengths, or, with ``shuffle``, (B, C, length) and None."""
        B, T, C = x.shape
        if self.shuffle:
            if T > self.length:
                raise ShapeError(f"expected series of at most length={self.length} steps (shuffle reads each channel as "
                                 f"one step of that many values), got {shape_str(x.shape)}")
            return F.pad(x.transpose(1, 2), (0, self.length - T)), None  # (B, C, length)
        full = torch.full((B,), T, dtype=torch.int64) if lengths is None else lengths
        frames, frame_lengths = to_frames(x, full, self.patch)  # (B, ceil(T / P), C P)
        return frames, (None if lengths is None else frame_lengths)

    def features(self, x: Tensor, lengths: Any = None) -> Tensor:
        """The concatenated features (B, H' + F) of ``x`` (B, T, C) before dropout and the head."""
        x = check_sequence_input(x, self.input_size, what="series")  # (B, T, C)
        lengths = check_lengths(lengths, x.shape[0], x.shape[1], device=x.device)
        if lengths is not None:  # zero past each length, whatever was there (even NaN)
            keep = valid_mask(lengths, x.shape[0], x.shape[1], x.device).unsqueeze(-1)  # (B, T, 1)
            x = torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))
        conv = self.conv(x, lengths)  # (B, F)
        y, r_lengths = self.encode(*self.recurrent_input(x, lengths))  # (B, T', H')
        return torch.cat([self.readout_drop(self.pool(y, r_lengths)), conv], dim=-1)  # (B, H' + F)

    def forward(self, x: Tensor, lengths: Any = None) -> Tensor:
        return self.head(self.drop(self.features(x, lengths)))  # (B, num_classes)
