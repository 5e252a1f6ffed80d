"""Layers: what is built around a cell (stacks, directions, torch-compatible drop-ins)."""

from .base import SequenceLayer, reverse_padded
from .bidirectional import Bidirectional
from .deep import Deep
from .recurrent import Recurrent
from .torch_compat import GRU, LSTM, RNN

__all__ = ["SequenceLayer", "Recurrent", "Deep", "Bidirectional", "RNN", "LSTM", "GRU", "reverse_padded"]
