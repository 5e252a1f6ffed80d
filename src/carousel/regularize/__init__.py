"""Regularisation that keeps recurrent memory intact.

Masks drawn once per sequence (``VariationalDropout``, ``RecurrentDropout``), once per forward
pass over the weights (``weight_drop``), per step but never zeroing (``Zoneout``), per token type
(``EmbeddingDropout``); ``hold_masks`` keeps masks across one-step calls; ``mc_dropout`` keeps
them on at prediction time to measure uncertainty. ``carousel.layers.add_variational_dropout``
puts the variational masks in every place of a layer.
"""

from .embedding import EmbeddingDropout
from .masks import MaskHolder, Stochastic, bernoulli_mask, hold_masks
from .mc import MCPrediction, mc_dropout, mc_mode, summarise
from .recurrent import RecurrentDropout
from .variational import VariationalDropout
from .weight_drop import WeightDrop, remove_weight_drop, weight_drop
from .wrapper import CellWrapper
from .zoneout import Zoneout

__all__ = [
    "VariationalDropout",
    "RecurrentDropout",
    "Zoneout",
    "WeightDrop",
    "weight_drop",
    "remove_weight_drop",
    "EmbeddingDropout",
    "hold_masks",
    "mc_dropout",
    "mc_mode",
    "MCPrediction",
    "summarise",
    "Stochastic",
    "MaskHolder",
    "CellWrapper",
    "bernoulli_mask",
]
