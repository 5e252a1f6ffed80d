"""The cell registry: every name builds its cell; unknown and taken names are refused with the valid ones."""

import pytest

import carousel as C
from carousel.cells import cell_names, cell_summary, make_cell, register_cell


def test_every_registered_name_builds_its_cell():
    kinds = {name: type(make_cell(name, 2, 3)) for name in cell_names()}
    assert kinds["lstm"] is C.LSTMCell and not make_cell("lstm1997", 2, 3).forget_gate
    assert kinds["relu"] is C.ElmanCell and make_cell("relu", 2, 3).nonlinearity == "relu"
    assert kinds["mingru"] is C.MinGRUCell and kinds["minlstm"] is C.MinLSTMCell and kinds["irnn"] is C.IRNNCell
    assert all(make_cell(n, 2, 3).input_size == 2 for n in cell_names()) and "Feng" in cell_summary("mingru")
    assert make_cell("gru", 2, 3, variant="cho").variant == "cho"  # options reach the constructor


def test_unknown_and_taken_names():
    with pytest.raises(ValueError, match="unknown cell 'lsmt' \\(did you mean 'lstm'\\?\\); valid: lstm, lstm1997"):
        make_cell("lsmt", 2, 3)
    with pytest.raises(ValueError, match="cell name 'gru' is taken"):
        register_cell("gru", C.ElmanCell, "not a GRU")
    register_cell("gru", C.GRUCell, cell_summary("gru"))  # the same factory again is no clash
