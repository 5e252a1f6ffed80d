"""The cell registry: cells by name, for models, tasks and the command line: ``make_cell("lstm", 2, 64)``.

``register_cell(name, factory, summary)`` adds one; a factory is called as
``factory(input_size, hidden_size, **kwargs)`` and returns a carousel ``Cell``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from .._checks import unknown_message
from .antisymmetric import AntisymmetricCell
from .base import Cell
from .elman import ElmanCell, IRNNCell
from .gru import GRUCell
from .lstm import LSTMCell
from .minimal import MinGRUCell, MinLSTMCell
from .orthogonal import OrthogonalCell


class CellEntry(NamedTuple):
    """A registered cell: how to build it, and one line for ``--help``."""

    factory: Callable[..., Cell]
    summary: str


_CELLS: dict[str, CellEntry] = {}


def register_cell(name: str, factory: Callable[..., Cell], summary: str) -> None:
    """Make ``factory`` available as ``--cell name``."""
    if name in _CELLS and _CELLS[name].factory is not factory:
        raise ValueError(f"cell name {name!r} is taken")
    _CELLS[name] = CellEntry(factory, summary)


def cell_names() -> tuple[str, ...]:
    """Every registered cell name, in registration order."""
    return tuple(_CELLS)


def cell_summary(name: str) -> str:
    """The one-line description of a registered cell."""
    return _CELLS[name].summary


def make_cell(name: str, input_size: int, hidden_size: int, **kwargs: Any) -> Cell:
    """A fresh cell of kind ``name``; an unknown name raises ValueError listing the valid ones."""
    if name not in _CELLS:
        raise ValueError(unknown_message("cell", name, cell_names()))
    return _CELLS[name].factory(input_size, hidden_size, **kwargs)


register_cell("lstm", LSTMCell, "LSTM with forget gate (Gers et al. 2000)")
register_cell("lstm1997", lambda i, h, **kw: LSTMCell(i, h, forget_gate=False, **kw), "LSTM without forget gate (Hochreiter & Schmidhuber 1997)")
register_cell("gru", GRUCell, "GRU (Cho et al. 2014), torch's form")
register_cell("elman", ElmanCell, "tanh Elman RNN (Elman 1990)")
register_cell("relu", lambda i, h, **kw: ElmanCell(i, h, nonlinearity="relu", **kw), "ReLU Elman RNN")
register_cell("irnn", IRNNCell, "ReLU RNN with identity recurrent start (Le et al. 2015)")
register_cell("antisymmetric", AntisymmetricCell, "AntisymmetricRNN (Chang et al. 2019)")
register_cell("orthogonal", OrthogonalCell, "RNN with an exactly orthogonal recurrent matrix")
register_cell("mingru", MinGRUCell, "minGRU, gates from the input only (Feng et al. 2024)")
register_cell("minlstm", MinLSTMCell, "minLSTM, gates from the input only (Feng et al. 2024)")
