"""carousel: recurrent neural networks and their gradient problems, on PyTorch.

A network is three things kept apart: the *cell* (one time step, ``carousel.cells``), the
*runner* (how the cell meets time, ``carousel.runners``; ``carousel.run`` runs a cell) and the
*layer* (what is built around it, ``carousel.layers``). Nothing heavy is imported here.
"""

from .cells import (
    AntisymmetricCell,
    Cell,
    ElmanCell,
    ElmanState,
    GRUCell,
    GRUState,
    IRNNCell,
    LSTMCell,
    LSTMState,
    MinGRUCell,
    MinLSTMCell,
    MinLSTMState,
    OrthogonalCell,
)
from .layers import GRU, LSTM, RNN, Bidirectional, Deep, Recurrent, SequenceLayer, add_variational_dropout
from .regularize import (
    EmbeddingDropout,
    RecurrentDropout,
    VariationalDropout,
    WeightDrop,
    Zoneout,
    hold_masks,
    mc_dropout,
    remove_weight_drop,
    weight_drop,
)
from .runners import run

__version__ = "0.1.0"

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
    "OrthogonalCell",
    "MinGRUCell",
    "MinLSTMCell",
    "SequenceLayer",
    "Recurrent",
    "Deep",
    "Bidirectional",
    "RNN",
    "LSTM",
    "GRU",
    "run",
    "VariationalDropout",
    "RecurrentDropout",
    "Zoneout",
    "WeightDrop",
    "weight_drop",
    "remove_weight_drop",
    "EmbeddingDropout",
    "add_variational_dropout",
    "hold_masks",
    "mc_dropout",
]
