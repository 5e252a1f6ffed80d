"""The comparisons: carousel's backends against the torch.nn module that does the same job.

* ``fused``: the drop-ins ``carousel.LSTM/GRU/RNN`` (fused backend) against ``torch.nn`` with the
  same weights (the outputs are compared too); target: training step <= 1.05 x torch.nn.
* ``loop``: cells no fused kernel computes (layer-norm LSTM, LSTM with recurrent dropout), the explicit
  backend and the reference loop, against ``torch.nn.LSTM`` of the same size; target <= 2 x at
  (256, 32, 128, 256).
* ``scan``: minGRU / minLSTM (scan backend) against ``torch.nn.GRU`` / ``LSTM``; target: training
  step at least 8 x faster at (4096, 16, 64, 128).
* ``trees`` (``benchmarks/trees.py``): the tree level runner against the node-by-node recursion
  (target >= 20 x faster) and against ``carousel.LSTM`` over the same nodes in order.
"""

from __future__ import annotations

import functools

from torch import nn

import carousel

from .harness import Case
from .trees import tree_cases

FUSED_SIZES = [(256, 32, 128, 256), (1000, 16, 32, 64)]
LOOP_SIZES = [(256, 32, 128, 256), (1000, 16, 32, 64)]
SCAN_SIZES = [(4096, 16, 64, 128)]
SMOKE_SIZE = (6, 2, 3, 4)


class _Outputs(nn.Module):
    """``x -> outputs`` of a carousel layer (drops the final state)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x)[0]


def _drop_in(kind: str, size, **kw) -> tuple[nn.Module, nn.Module]:
    _, _, I, H = size
    theirs = getattr(nn, kind)(I, H, batch_first=True, **kw)
    ours = getattr(carousel, kind)(I, H, batch_first=True, **kw)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def _cell_layer(make_cell, versus: str, size, backend: str = "auto") -> tuple[nn.Module, nn.Module]:
    _, _, I, H = size
    return _Outputs(carousel.Recurrent(make_cell(I, H), backend=backend)), getattr(nn, versus)(I, H, batch_first=True)


def _recurrent_dropout_lstm(I: int, H: int, p: float = 0.25) -> carousel.Cell:
    """An LSTM with a per-sequence dropout mask on h_{t-1}, in training mode."""
    return carousel.RecurrentDropout(carousel.LSTMCell(I, H), p=p).train()


def _at_most(limit: float):
    return lambda ratio: ratio <= limit


def fused_cases(sizes=FUSED_SIZES) -> list[Case]:
    cases = []
    for size in sizes:
        for kind in ("LSTM", "GRU", "RNN"):
            cases.append(Case("fused", kind, size, functools.partial(_drop_in, kind, size), "<= 1.05", _at_most(1.05)))
    big = sizes[0]
    cases.append(Case("fused", "LSTM, 2 layers, bidirectional", big,
                      functools.partial(_drop_in, "LSTM", big, num_layers=2, bidirectional=True), "<= 1.05", _at_most(1.05)))
    return cases


def loop_cases(sizes=LOOP_SIZES) -> list[Case]:
    cases = []
    for k, size in enumerate(sizes):
        target, meets = ("<= 2", _at_most(2.0)) if k == 0 else ("report", None)
        ln = functools.partial(carousel.LSTMCell, layer_norm=True)
        cases += [
            Case("loop", "layer-norm LSTM", size, functools.partial(_cell_layer, ln, "LSTM", size, "explicit"), target, meets),
            Case("loop", "layer-norm LSTM, reference loop", size,
                 functools.partial(_cell_layer, ln, "LSTM", size, "reference"), "report"),
            Case("loop", "LSTM + recurrent dropout", size,
                 functools.partial(_cell_layer, _recurrent_dropout_lstm, "LSTM", size, "explicit"), target, meets),
        ]
    return cases


def scan_cases(sizes=SCAN_SIZES) -> list[Case]:
    cases = []
    for size in sizes:
        cases += [
            Case("scan", "minGRU vs GRU", size, functools.partial(_cell_layer, carousel.MinGRUCell, "GRU", size, "scan"),
                 "<= 0.125 (8x faster)", _at_most(0.125)),
            Case("scan", "minLSTM vs LSTM", size, functools.partial(_cell_layer, carousel.MinLSTMCell, "LSTM", size, "scan"),
                 "<= 0.125 (8x faster)", _at_most(0.125)),
        ]
    return cases


GROUPS = {"fused": fused_cases, "loop": loop_cases, "scan": scan_cases, "trees": tree_cases}


def all_cases(groups=tuple(GROUPS), *, smoke: bool = False) -> list[Case]:
    """Every case of ``groups``; ``smoke`` replaces every size by a tiny one (for CI)."""
    cases = []
    for g in groups:
        build = GROUPS[g]
        cases += build([SMOKE_SIZE]) if smoke else build()
    return cases


def same_function(case: Case) -> bool:
    """Whether both modules compute the same function (then their outputs must agree)."""
    return case.group == "fused"

