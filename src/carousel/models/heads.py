r"""Ready heads for two task shapes: a tagger (element -> element) and a classifier (sequence -> item).

Both are built from the shared parts (``parts``): an input map (an embedding of token ids, or the
raw features), a stack of carousel recurrent layers (each layer may read both ways), and a
linear head.

.. math::
    u_t &= E[x_t] \;\text{(token ids, ``vocab_size`` given)} \quad\text{or}\quad u_t = x_t \\
    y_{1..T} &= \text{stack}(u_{1..T}) \\
    \text{tagger:}\quad z_t &= W\, y_t + b \qquad (B, T, C) \\
    \text{classifier:}\quad z &= W\, \text{readout}(y_{1..n}) + b \qquad (B, C)

Each sequence b is valid for its first ``lengths[b]`` steps; whatever lies past them (padding)
never changes a valid output, a readout or a loss. A bidirectional stack puts one
``Bidirectional`` layer (concatenated directions, as ``torch.nn.LSTM(bidirectional=True)``) per
layer; Schuster & Paliwal 1997, "Bidirectional Recurrent Neural Networks".

Class weights follow ``torch.nn.functional.cross_entropy(weight=)``: the loss is
:math:`\sum_i w_{y_i} \ell_i / \sum_i w_{y_i}` over the valid items i.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import ShapeError, check_choice, check_flag, check_lengths, check_rate, check_size, shape_str
from ..layers import Bidirectional, Deep, Recurrent
from ..regularize import VariationalDropout
from .parts import CellFactory, cell_factory, check_token_ids, last_step, recurrent_stack

READOUTS = ("last", "mean", "max", "attention")


def valid_mask(lengths: Tensor | None, batch_size: int, max_len: int, device: torch.device) -> Tensor:
    """A bool mask (B, T), True at the valid steps ``t < lengths[b]`` (every step when ``lengths`` is None)."""
    if lengths is None:
        return torch.ones(batch_size, max_len, dtype=torch.bool, device=device)
    return torch.arange(max_len, device=device).unsqueeze(0) < lengths.to(device).unsqueeze(1)


def _check_class_weights(weights: Any, num_classes: int) -> Tensor | None:
    if weights is None:
        return None
    if isinstance(weights, Tensor):
        w = weights.detach().to(torch.get_default_dtype() if not weights.is_floating_point() else weights.dtype).cpu()
    elif isinstance(weights, (str, bytes)) or not hasattr(weights, "__iter__"):
        raise TypeError(f"expected class_weights as a sequence of {num_classes} numbers or a tensor of shape ({num_classes},), "
                        f"got {type(weights).__name__}")
    else:
        w = torch.tensor([float(v) for v in weights])
    if w.shape != (num_classes,):
        raise ShapeError(f"expected class_weights of shape ({num_classes},), one per class, got {shape_str(w.shape)}")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or not bool((w > 0).any()):
        raise ValueError(f"expected class_weights finite, >= 0 and not all 0, got {w.tolist()}")
    return w


class _Front(nn.Module):
    """Input map and recurrent stack shared by the heads: ``encode(x, lengths) -> (y (B, T, H), lengths)``."""

    def __init__(self, cell: str | CellFactory, input_size: int, hidden_size: int, num_classes: int, *, layers: int,
                 bidirectional: bool, vocab_size: int | None, dropout: float, backend: str,
                 cell_options: dict[str, Any] | None, class_weights: Any) -> None:
        super().__init__()
        check_size(input_size, "input_size")
        check_size(hidden_size, "hidden_size")
        self.num_classes = check_size(num_classes, "num_classes", minimum=2)
        check_size(layers, "layers")
        self.bidirectional = check_flag(bidirectional, "bidirectional")
        self.dropout = check_rate(dropout, "dropout")
        self.embedding = None if vocab_size is None else nn.Embedding(check_size(vocab_size, "vocab_size"), input_size)
        make = cell_factory(cell, cell_options)
        if self.bidirectional:
            stack, size = [], input_size
            for _ in range(layers):
                fwd, bwd = Recurrent(make(size, hidden_size), backend=backend), Recurrent(make(size, hidden_size), backend=backend)
                stack.append(Bidirectional(fwd, bwd, merge="concat"))
                size = stack[-1].output_size
            self.rnn = Deep(stack, dropout=self.dropout, variational=True)
        else:
            self.rnn = recurrent_stack(make, input_size, [hidden_size] * layers, dropout=self.dropout, backend=backend)
        self.drop = VariationalDropout(self.dropout)
        self.register_buffer("class_weights", _check_class_weights(class_weights, self.num_classes))

    def encode(self, x: Tensor, lengths: Any = None) -> tuple[Tensor, Tensor | None]:
        """The top layer's outputs ``y`` (B, T, H) (H doubled when bidirectional) and the checked
        lengths (CPU int64 (B,), or None when every sequence fills T)."""
        if self.embedding is not None:
            x = self.embedding(check_token_ids(x, "token ids", self.embedding.weight, self.embedding.num_embeddings))  # (B, T, I)
        if isinstance(x, Tensor) and x.dim() == 3:
            lengths = check_lengths(lengths, x.shape[0], x.shape[1], device=x.device)
            if lengths is not None and bool((lengths == x.shape[1]).all()):
                lengths = None
        y, _ = self.rnn(x, None, lengths)  # checks x: (B, T, I) floating point
        return y, lengths

    def _weighted_ce(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Cross entropy over rows of ``logits`` (N, C) and ``targets`` (N,), class-weighted as torch does."""
        if targets.numel() and targets.device.type == "cpu":
            low, high = int(targets.min()), int(targets.max())
            if low < 0 or high >= self.num_classes:
                raise ValueError(f"expected targets in [0, {self.num_classes}) (the number of classes), got labels from {low} to {high}")
        w = None if self.class_weights is None else self.class_weights.to(logits.dtype)
        return F.cross_entropy(logits, targets, weight=w)


def _check_targets(targets: object, shape: tuple[int, ...], what: str) -> Tensor:
    if not isinstance(targets, Tensor) or targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        got = f"dtype {targets.dtype}" if isinstance(targets, Tensor) else type(targets).__name__
        raise TypeError(f"expected {what} as an integer tensor of class indices, got {got}")
    if tuple(targets.shape) != shape:
        raise ShapeError(f"expected {what} of shape {shape_str(shape)}, got {shape_str(targets.shape)}")
    return targets


class SequenceTagger(_Front):
    """One label per step (element -> element): ``SequenceTagger("lstm", 8, 32, 5, bidirectional=True)``.

    ``forward(x, lengths=None) -> logits`` (B, T, C): ``x`` is (B, T, I) features, or (B, T) token
    ids when ``vocab_size`` is given; ``lengths`` (B,) integers in [1, T]. Logits past a sequence's
    length are computed but meaningless; ``loss`` leaves them out. ``dropout`` is variational (one
    mask per sequence) between the layers and before the head. ``class_weights`` (C,) weigh each
    target's term as ``cross_entropy(weight=)`` does.

    Raises ``TypeError`` for a size that is not an integer, ``ValueError`` for sizes below 1
    (``num_classes`` below 2), an unknown cell, bad class weights, malformed input or lengths
    out of [1, T].
    """

    def __init__(self, cell: str | CellFactory, input_size: int, hidden_size: int, num_classes: int, *, layers: int = 1,
                 bidirectional: bool = False, vocab_size: int | None = None, dropout: float = 0.0, backend: str = "auto",
                 cell_options: dict[str, Any] | None = None, class_weights: Sequence[float] | Tensor | None = None) -> None:
        super().__init__(cell, input_size, hidden_size, num_classes, layers=layers, bidirectional=bidirectional,
                         vocab_size=vocab_size, dropout=dropout, backend=backend, cell_options=cell_options,
                         class_weights=class_weights)
        self.head = nn.Linear(self.rnn.output_size, self.num_classes)

    def forward(self, x: Tensor, lengths: Any = None) -> Tensor:
        y, _ = self.encode(x, lengths)  # (B, T, H)
        return self.head(self.drop(y))  # (B, T, C)

    def loss(self, logits: Tensor, targets: Tensor, lengths: Any = None) -> Tensor:
        """Mean cross entropy (nats per valid token; class-weighted mean with ``class_weights``) over
        the valid steps only. ``logits`` (B, T, C), ``targets`` (B, T) class indices (anything past
        a length is ignored), ``lengths`` (B,) or None (all T)."""
        if not isinstance(logits, Tensor) or logits.dim() != 3 or logits.shape[-1] != self.num_classes:
            got = shape_str(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ShapeError(f"expected logits of shape (B, T, {self.num_classes}), got {got}")
        B, T = logits.shape[:2]
        targets = _check_targets(targets, (B, T), "targets")
        mask = valid_mask(check_lengths(lengths, B, T, device=logits.device), B, T, logits.device)  # (B, T)
        return self._weighted_ce(logits[mask], targets.to(logits.device)[mask])


class SequenceClassifier(_Front):
    r"""One label per sequence (sequence -> item): ``SequenceClassifier("gru", 3, 32, 4, readout="attention")``.

    ``forward(x, lengths=None) -> logits`` (B, C); ``x`` and ``lengths`` as for ``SequenceTagger``.
    The readout turns the top layer's outputs y (B, T, H) into one vector per sequence, using only
    its valid steps ``t < n_b``:

    * ``"last"``: :math:`y_{n_b}`; when bidirectional, the forward half at step :math:`n_b` and the
      backward half at step 1 (where the backward direction has read the whole sequence);
    * ``"mean"`` / ``"max"``: the mean / elementwise max over the valid steps;
    * ``"attention"``: :math:`\sum_t \alpha_t y_t`, :math:`\alpha = \text{softmax}_{t \le n_b}(q^\top
      \tanh(W y_t + b))` with a learned query q (Yang et al. 2016, "Hierarchical Attention Networks
      for Document Classification", eqs. 5-7); ``attention_weights`` gives :math:`\alpha` (B, T).

    Raises as ``SequenceTagger`` does, and ``ValueError`` for an unknown readout.
    """

    def __init__(self, cell: str | CellFactory, input_size: int, hidden_size: int, num_classes: int, *, layers: int = 1,
                 bidirectional: bool = False, readout: str = "last", vocab_size: int | None = None, dropout: float = 0.0,
                 backend: str = "auto", cell_options: dict[str, Any] | None = None,
                 class_weights: Sequence[float] | Tensor | None = None) -> None:
        readout = check_choice(readout, READOUTS, "readout")
        super().__init__(cell, input_size, hidden_size, num_classes, layers=layers, bidirectional=bidirectional,
                         vocab_size=vocab_size, dropout=dropout, backend=backend, cell_options=cell_options,
                         class_weights=class_weights)
        self.readout = readout
        H = self.rnn.output_size
        if self.readout == "attention":
            self.attention_proj = nn.Linear(H, H)
            self.query = nn.Parameter(torch.empty(H).uniform_(-1 / math.sqrt(H), 1 / math.sqrt(H)))
        self.head = nn.Linear(H, self.num_classes)

    def attention_weights(self, y: Tensor, lengths: Tensor | None) -> Tensor:
        """Attention weights (B, T) over ``y`` (B, T, H): each row sums to 1 over its valid steps, 0 past them."""
        scores = torch.tanh(self.attention_proj(y)) @ self.query  # (B, T)
        mask = valid_mask(lengths, y.shape[0], y.shape[1], y.device)
        return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=1)

    def pool(self, y: Tensor, lengths: Tensor | None) -> Tensor:
        """The readout of ``y`` (B, T, H) with checked ``lengths`` (CPU int64 (B,) or None) -> (B, H)."""
        if self.readout == "last":
            if not self.bidirectional:
                return last_step(y, lengths)
            half = y.shape[-1] // 2  # the top Bidirectional layer concatenates [forward; backward]
            return torch.cat([last_step(y[..., :half], lengths), y[:, 0, half:]], dim=-1)
        mask = valid_mask(lengths, y.shape[0], y.shape[1], y.device).unsqueeze(-1)  # (B, T, 1)
        if self.readout == "mean":
            n = mask.sum(1).to(y.dtype)  # (B, 1)
            return torch.where(mask, y, torch.zeros((), dtype=y.dtype, device=y.device)).sum(1) / n
        if self.readout == "max":
            return torch.where(mask, y, torch.full((), float("-inf"), dtype=y.dtype, device=y.device)).amax(1)
        alpha = self.attention_weights(y, lengths).unsqueeze(-1)  # (B, T, 1)
        return (alpha * torch.where(mask, y, torch.zeros((), dtype=y.dtype, device=y.device))).sum(1)

    def forward(self, x: Tensor, lengths: Any = None) -> Tensor:
        y, lengths = self.encode(x, lengths)  # (B, T, H)
        return self.head(self.drop(self.pool(y, lengths)))  # (B, C)

    def loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Mean cross entropy (nats per sequence; class-weighted mean with ``class_weights``):
        ``logits`` (B, C), ``targets`` (B,) class indices."""
        if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[-1] != self.num_classes:
            got = shape_str(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ShapeError(f"expected logits of shape (B, {self.num_classes}), got {got}")
        targets = _check_targets(targets, (logits.shape[0],), "targets")
        return self._weighted_ce(logits, targets.to(logits.device))
