"""Every cell configuration carousel ships, built from seeded weights (importable by any test)."""

from __future__ import annotations

import functools

import torch

import carousel as C

# name -> factory(input_size, hidden_size, **kw). Every configuration a contract test must cover.
CELLS = {
    "elman_tanh": functools.partial(C.ElmanCell, nonlinearity="tanh"),
    "elman_relu": functools.partial(C.ElmanCell, nonlinearity="relu"),
    "elman_identity": functools.partial(C.ElmanCell, nonlinearity="identity"),
    "elman_nobias": functools.partial(C.ElmanCell, bias=False),
    "irnn": C.IRNNCell,
    "lstm": C.LSTMCell,
    "lstm_forget_bias": functools.partial(C.LSTMCell, forget_bias=1.0),
    "lstm_no_forget_gate": functools.partial(C.LSTMCell, forget_gate=False),
    "lstm_peephole": functools.partial(C.LSTMCell, peephole=True),
    "lstm_peephole_no_forget": functools.partial(C.LSTMCell, peephole=True, forget_gate=False),
    "lstm_layer_norm": functools.partial(C.LSTMCell, layer_norm=True),
    "lstm_proj": functools.partial(C.LSTMCell, proj_size=2),
    "lstm_everything": functools.partial(C.LSTMCell, peephole=True, layer_norm=True, proj_size=2, bias=False),
    "gru": C.GRUCell,
    "gru_cho": functools.partial(C.GRUCell, variant="cho"),
    "antisymmetric": C.AntisymmetricCell,
    "antisymmetric_gated": functools.partial(C.AntisymmetricCell, gated=True, epsilon=0.5),
    "orthogonal_tanh": C.OrthogonalCell,
    "orthogonal_modrelu": functools.partial(C.OrthogonalCell, nonlinearity="modrelu"),
    "orthogonal_cayley": functools.partial(C.OrthogonalCell, orthogonal_map="cayley"),
    "min_gru": C.MinGRUCell,
    "min_lstm": C.MinLSTMCell,
}


def make_cell(name: str, input_size: int = 3, hidden_size: int = 4, *, dtype=torch.float64, seed: int = 0):
    """A cell with seeded random weights; every parameter is perturbed so no weight is constant."""
    torch.manual_seed(seed)
    cell = CELLS[name](input_size, hidden_size, dtype=dtype)
    with torch.no_grad():
        for p in cell.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return cell


def random_state(cell, batch_size: int, *, dtype=torch.float64, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return cell.state_type(*(0.5 * torch.randn(batch_size, n, generator=g, dtype=dtype) for n in cell.state_sizes))


