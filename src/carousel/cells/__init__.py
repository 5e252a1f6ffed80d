"""Recurrent cells: the math of one time step (see ``Cell``)."""

from .antisymmetric import AntisymmetricCell, AntisymmetricMatrix
from .base import Cell
from .elman import ElmanCell, ElmanState, IRNNCell
from .gru import GRUCell, GRUState
from .lstm import LSTMCell, LSTMState
from .minimal import MinGRUCell, MinLSTMCell
from .orthogonal import OrthogonalCell

__all__ = [
    "Cell",
    "ElmanState",
    "LSTMState",
    "GRUState",
    "ElmanCell",
    "IRNNCell",
    "LSTMCell",
    "GRUCell",
    "AntisymmetricCell",
    "AntisymmetricMatrix",
    "OrthogonalCell",
    "MinGRUCell",
    "MinLSTMCell",
]
