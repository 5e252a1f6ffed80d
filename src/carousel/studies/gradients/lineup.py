"""The line-up of the gradients study: each model a cell with the initialisation its lesson needs.

| name | cell | start | clipping |
|---|---|---|---|
| ``tanh-0.9``, ``tanh-1.0``, ``tanh-1.1`` | tanh Elman | ``W_hh`` rescaled to spectral radius 0.9, 1.0, 1.1 | none |
| ``tanh-0.9-clip`` ... ``tanh-1.1-clip`` | the same | the same | global norm 1 |
| ``irnn`` | ReLU Elman | ``W_hh = I`` (Le et al. 2015) | norm 1 |
| ``lstm`` | LSTM | forget bias 1 (Jozefowicz et al. 2015) | norm 1 |
| ``lstm-no-forget`` | LSTM of 1997, ``c = c + i g`` | torch's uniform | norm 1 |
| ``gru`` | GRU | torch's uniform | norm 1 |
| ``antisymmetric`` | AntisymmetricRNN, epsilon 0.1, gamma 0.01 | ``W ~ N(0, 1/H)`` | norm 1 |
| ``orthogonal`` | orthogonal ``U``, modReLU | Henaff et al. 2016 rotations | norm 1 |

The orthogonal start follows Henaff, Szlam & LeCun 2016 ("Recurrent Orthogonal Networks and
Long-Memory Tasks", section 4): ``U`` block-diagonal with 2x2 rotations by angles drawn from
U(-pi, pi), which keeps every input alive for as long as the rotation takes to come back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ...cells import (
    AntisymmetricCell,
    Cell,
    ElmanCell,
    GRUCell,
    IRNNCell,
    LSTMCell,
    OrthogonalCell,
    henaff_rotations,
    set_spectral_radius_,
)


def henaff_orthogonal_cell(input_size: int, hidden_size: int) -> OrthogonalCell:
    """``OrthogonalCell`` with modReLU whose ``U`` starts as Henaff et al.'s rotations."""
    cell = OrthogonalCell(input_size, hidden_size, nonlinearity="modrelu")
    u = henaff_rotations(hidden_size).to(cell.weight_hh.dtype)
    with torch.no_grad():
        cell.weight_hh = u  # through the parametrisation's right inverse
    return cell


def _tanh(rho: float) -> Callable[[int, int], Cell]:
    def build(i: int, h: int) -> Cell:
        cell = ElmanCell(i, h)
        with torch.no_grad():
            nn.init.normal_(cell.weight_hh, 0.0, 1.0 / math.sqrt(h))
        return set_spectral_radius_(cell, rho)

    return build


@dataclass(frozen=True)
class StudyModel:
    """A row of the study: how to build its cell, and the gradient clipping it trains with."""

    name: str
    label: str
    build: Callable[[int, int], Cell]
    clip: float | None


def _models() -> dict[str, StudyModel]:
    rows = []
    for rho in (0.9, 1.0, 1.1):
        rows.append(StudyModel(f"tanh-{rho}", f"tanh RNN, radius {rho}", _tanh(rho), None))
        rows.append(StudyModel(f"tanh-{rho}-clip", f"tanh RNN, radius {rho}, clipped", _tanh(rho), 1.0))
    rows += [
        StudyModel("irnn", "IRNN", lambda i, h: IRNNCell(i, h), 1.0),
        StudyModel("lstm", "LSTM", lambda i, h: LSTMCell(i, h, forget_bias=1.0), 1.0),
        StudyModel("lstm-no-forget", "LSTM without forget gate", lambda i, h: LSTMCell(i, h, forget_gate=False), 1.0),
        StudyModel("gru", "GRU", lambda i, h: GRUCell(i, h), 1.0),
        StudyModel("antisymmetric", "AntisymmetricRNN", lambda i, h: AntisymmetricCell(i, h, epsilon=0.1, gamma=0.01), 1.0),
        StudyModel("orthogonal", "orthogonal RNN (modReLU)", henaff_orthogonal_cell, 1.0),
    ]
    return {m.name: m for m in rows}


STUDY_MODELS: dict[str, StudyModel] = _models()


def study_model(name: str) -> StudyModel:
    """The line-up's model called ``name``; ``ValueError`` listing the names otherwise."""
    if name not in STUDY_MODELS:
        raise ValueError(f"unknown study model {name!r}; expected one of: {', '.join(STUDY_MODELS)}")
    return STUDY_MODELS[name]
