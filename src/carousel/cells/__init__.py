"""Recurrent cells: the math of one time step (see ``Cell``), their initialisations and the cell registry."""

from ..state import ElmanState, GRUState, LSTMState, MinLSTMState
from .antisymmetric import AntisymmetricCell, AntisymmetricMatrix
from .base import Cell
from .elman import ElmanCell, IRNNCell
from .gru import GRUCell
from .init import henaff_rotations, set_spectral_radius_, uniform_init_
from .lstm import LSTMCell
from .minimal import MinGRUCell, MinLSTMCell
from .mixture import MixtureCell, importance_loss
from .orthogonal import OrthogonalCell
from .registry import cell_names, cell_summary, make_cell, register_cell

__all__ = [
    "Cell",
    "ElmanState",
    "LSTMState",
    "GRUState",
    "MinLSTMState",
    "ElmanCell",
    "IRNNCell",
    "LSTMCell",
    "GRUCell",
    "AntisymmetricCell",
    "AntisymmetricMatrix",
    "OrthogonalCell",
    "MinGRUCell",
    "MinLSTMCell",
    "MixtureCell",
    "importance_loss",
    "uniform_init_",
    "set_spectral_radius_",
    "henaff_rotations",
    "make_cell",
    "cell_names",
    "cell_summary",
    "register_cell",
]
