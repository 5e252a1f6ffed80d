r"""Variational dropout: one mask per sequence, shared by every time step.

Gal & Ghahramani 2016, "A Theoretically Grounded Application of Dropout in Recurrent Neural
Networks": dropout read as approximate Bayesian inference drops the *same* units at every step
of a sequence. A mask drawn afresh at every step is noise the recurrence accumulates; one mask
per sequence is a thinned network that is consistent through time.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from .._checks import check_flag, check_rate, shape_str
from .masks import MaskHolder


class VariationalDropout(MaskHolder):
    r"""Dropout whose mask is drawn once per sequence and applied at every time step.

    .. math::
        y_{b,t} = x_{b,t} \odot m_b, \qquad m_b = z_b / (1 - p), \quad z_b \sim \text{Bernoulli}(1 - p)^F

    for a batch-first ``x`` of shape (B, T, F) (``batch_first=False``: (T, B, F)); any tensor
    with the batch at dim 0 (or 1) and features last works, e.g. one step (B, F). A
    ``PackedSequence`` is accepted too. The inverted scaling ``1 / (1 - p)`` keeps ``E[y] = x``,
    so evaluation mode is the identity.

    Use it on the inputs of a recurrent layer, between stacked layers (``Deep(...,
    variational=True)``) and on the outputs; ``RecurrentDropout`` puts the same kind of mask on
    the recurrent state ``h_{t-1}``. Each call is one sequence; inside ``hold_masks`` the mask of
    the first call is kept (for models called one step at a time).
    """

    def __init__(self, p: float = 0.5, *, batch_first: bool = True) -> None:
        super().__init__()
        self.p = check_rate(p, "p", allow_one=True)  # 1 drops everything, as torch.nn.Dropout(1.0)
        self.batch_first = check_flag(batch_first, "batch_first")

    def forward(self, x: Tensor | PackedSequence) -> Tensor | PackedSequence:
        if isinstance(x, PackedSequence):
            return self._packed(x)
        if not isinstance(x, Tensor):
            raise TypeError(f"expected a tensor or a PackedSequence, got {type(x).__name__}")
        if not self.training or self.p == 0.0:
            return x
        if not x.is_floating_point():
            raise ValueError(f"expected a floating-point tensor to drop units of, got dtype {x.dtype}")
        if x.dim() < 2:
            raise ValueError(f"expected a tensor with a batch and a feature dimension, got shape {shape_str(x.shape)}")
        batch_dim = 0 if (self.batch_first or x.dim() == 2) else 1
        shape = [1] * x.dim()
        shape[batch_dim], shape[-1] = x.shape[batch_dim], x.shape[-1]  # (B, 1, ..., F): one mask per sequence
        self._new_unit()
        return x * self._unit_mask(shape, x, self.p)

    def _packed(self, x: PackedSequence) -> PackedSequence:
        if not self.training or self.p == 0.0:
            return x
        data, batch_sizes = x.data, x.batch_sizes
        B = int(batch_sizes[0])
        self._new_unit()
        mask = self._unit_mask((B, data.shape[-1]), data, self.p)  # (B, F) in the packed (sorted) order
        # row k of data belongs to sequence index[k] of the sorted batch
        index = torch.cat([torch.arange(int(n)) for n in batch_sizes]).to(data.device)  # (N,)
        return PackedSequence(data * mask[index], batch_sizes, x.sorted_indices, x.unsorted_indices)

    def extra_repr(self) -> str:
        return f"p={self.p}" + ("" if self.batch_first else ", batch_first=False")
