"""The models of the gradients study: each a cell with the initialisation its lesson needs.

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
from torch import Tensor, nn

from ..cells import AntisymmetricCell, Cell, ElmanCell, GRUCell, IRNNCell, LSTMCell, OrthogonalCell
from ..layers import Recurrent


def set_spectral_radius_(cell: ElmanCell, rho: float) -> ElmanCell:
    """Rescale ``cell.weight_hh`` in place so that its largest |eigenvalue| is ``rho``."""
    if not rho > 0:
        raise ValueError(f"expected a positive spectral radius, got {rho!r}")
    with torch.no_grad():
        w = cell.weight_hh
        current = torch.linalg.eigvals(w.double()).abs().max().item()
        w.mul_(rho / current)
    return cell


def henaff_rotations(hidden_size: int, *, generator: torch.Generator | None = None) -> Tensor:
    """Block-diagonal orthogonal matrix of 2x2 rotations by angles from U(-pi, pi) (a 1 for odd sizes)."""
    theta = (torch.rand(hidden_size // 2, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi
    u = torch.eye(hidden_size, dtype=torch.float64)
    for j, a in enumerate(theta.tolist()):
        c, s = math.cos(a), math.sin(a)
        u[2 * j : 2 * j + 2, 2 * j : 2 * j + 2] = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    return u


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
    if name not in STUDY_MODELS:
        raise ValueError(f"unknown study model {name!r}; expected one of: {', '.join(STUDY_MODELS)}")
    return STUDY_MODELS[name]


class StudyNet(nn.Module):
    """``Recurrent(cell)`` and a linear head, read at the last step or at every step."""

    def __init__(self, cell: Cell, output_size: int, *, every_step: bool) -> None:
        super().__init__()
        self.rnn = Recurrent(cell)
        self.head = nn.Linear(cell.output_size, output_size)
        self.every_step = bool(every_step)

    def forward(self, x: Tensor) -> Tensor:
        y, _ = self.rnn(x)  # (B, T, H)
        return self.head(y if self.every_step else y[:, -1])  # (B, T, O) or (B, O)
