r"""Embedding dropout: whole rows of an embedding matrix dropped, so a token type vanishes everywhere."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_rate
from .masks import MaskHolder
from .wrapper import make_transparent


class EmbeddingDropout(MaskHolder):
    r"""Look up ``embedding`` with whole rows dropped, one mask over the vocabulary per call.

    .. math::
        E' = \text{diag}(m)\, E, \qquad m = z / (1 - p), \quad z \sim \text{Bernoulli}(1 - p)^{V}

    so every occurrence of a dropped word (or character) type in the batch reads a zero vector,
    and the kept rows are scaled by ``1 / (1 - p)``. Dropping word types rather than positions is
    the word-embedding dropout of Gal & Ghahramani 2016 ("A Theoretically Grounded Application of
    Dropout in Recurrent Neural Networks"), used as "embedding dropout" by Merity et al. 2017
    ("Regularizing and Optimizing LSTM Language Models"). Use it in language models, where a
    model must not lean on any single token type. Only the rows that are looked up are
    multiplied (``E[ids] * m[ids]``), never the whole (V, D) matrix. The ``nn.Embedding``'s own
    options (``padding_idx``, ``max_norm``, ...) apply; its ``state_dict`` keys are kept.
    """

    shares_mask_across_batch = True  # one mask over the vocabulary for the whole batch

    def __init__(self, embedding: nn.Embedding, p: float = 0.1) -> None:
        super().__init__()
        if not isinstance(embedding, nn.Embedding):
            raise TypeError(f"expected a torch.nn.Embedding, got {type(embedding).__name__}")
        self.embedding = embedding
        self.p = check_rate(p, "p")
        make_transparent(self, "embedding")

    @property
    def weight(self) -> Tensor:
        return self.embedding.weight

    def forward(self, ids: Tensor) -> Tensor:
        """The rows of the looked-up ``ids`` (any shape, an integer dtype, on the embedding's device)."""
        e = self.embedding
        if not isinstance(ids, Tensor) or ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
            got = f"dtype {ids.dtype}" if isinstance(ids, Tensor) else type(ids).__name__
            raise ValueError(f"expected token ids as an integer tensor, got {got}")
        if ids.device != e.weight.device:
            raise ValueError(f"expected token ids on {e.weight.device} (where the embedding is), got a tensor on {ids.device}")
        out = e(ids)  # (..., D)
        if not self.training or self.p == 0.0:
            return out
        self._new_unit()
        m = self._unit_mask((e.num_embeddings,), out, self.p)  # (V,): one factor per row of E
        return out * m[ids].unsqueeze(-1)  # (..., 1): the factor of each looked-up row

    def extra_repr(self) -> str:
        return f"p={self.p}"
