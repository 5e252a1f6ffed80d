"""Layers: what is built around a cell (stacks, directions, variational dropout in every place,
torch-compatible drop-ins)."""

from .attention import ATTENTION_KINDS, Attention
from .base import SequenceLayer, reverse_padded
from .bidirectional import Bidirectional
from .deep import Deep
from .mixture import MixtureOfExperts
from .recurrent import Recurrent
from .torch_compat import GRU, LSTM, RNN
from .variational import PLACES, VariationalLayer, add_variational_dropout

__all__ = [
    "Attention",
    "ATTENTION_KINDS",
    "SequenceLayer",
    "Recurrent",
    "Deep",
    "Bidirectional",
    "MixtureOfExperts",
    "RNN",
    "LSTM",
    "GRU",
    "reverse_padded",
    "VariationalLayer",
    "add_variational_dropout",
    "PLACES",
]
