"""Gate statistics: how open each gate is, and how often it is saturated, at every step.

A gate ``a`` in (0, 1) is *saturated* where ``a < low`` or ``a > high`` (0.05 and 0.95 by
default): a saturated forget gate near 1 is the constant error carousel at work (the cell keeps
its content and its gradient), near 0 it wipes the memory; a saturated gate also passes almost no
gradient to its own pre-activation (``sigma' = a (1 - a)`` is small). Gates come from each gated
cell's ``gates(px_t, state)`` (LSTM ``i, f, o``; GRU ``r, z``; minGRU ``z``; minLSTM ``f, i``;
gated AntisymmetricRNN ``z``); cells without gates have no statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .trace import LayerTrace

LOW, HIGH = 0.05, 0.95


@dataclass
class GateStats:
    """Per gate of one layer, one value per step ``k`` (index 0 is the first step)."""

    mean: dict[str, Tensor]  # gate -> (T,) mean activation over sequences and units
    saturation: dict[str, Tensor]  # gate -> (T,) share of activations below ``low`` or above ``high``
    low_share: dict[str, Tensor]  # gate -> (T,) share below ``low`` (closed)
    high_share: dict[str, Tensor]  # gate -> (T,) share above ``high`` (open)

    @property
    def gates(self) -> tuple[str, ...]:
        return tuple(self.mean)

    def overall(self) -> dict[str, tuple[float, float]]:
        """Gate -> (mean activation, saturated share), averaged over all steps."""
        return {g: (float(self.mean[g].mean()), float(self.saturation[g].mean())) for g in self.mean}


def gate_stats(trace: LayerTrace, *, low: float = LOW, high: float = HIGH) -> GateStats | None:
    """Statistics of every gate of a recorded layer, or None when its cell has no gates."""
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"expected saturation thresholds 0 <= low < high <= 1, got low={low!r}, high={high!r}")
    if not isinstance(trace, LayerTrace):
        raise TypeError(f"expected a LayerTrace (from carousel.diagnostics.recording), got {type(trace).__name__}")
    cell = trace.cell
    if trace.steps == 0:
        return None
    per_gate: dict[str, list[tuple[float, float, float]]] = {}
    with torch.no_grad():
        for px_t, state in zip(trace.px, trace.inputs):
            for name, a in cell.gates(px_t, state).items():
                a = a.detach().double()
                below, above = (a < low).double().mean(), (a > high).double().mean()
                per_gate.setdefault(name, []).append((float(a.mean()), float(below), float(above)))
    if not per_gate:
        return None  # a cell without gates (Elman, an AntisymmetricCell without gating)
    columns = {name: torch.tensor(rows, dtype=torch.float64) for name, rows in per_gate.items()}  # (T, 3)
    return GateStats(
        mean={g: c[:, 0] for g, c in columns.items()},
        saturation={g: c[:, 1] + c[:, 2] for g, c in columns.items()},
        low_share={g: c[:, 1] for g, c in columns.items()},
        high_share={g: c[:, 2] for g, c in columns.items()},
    )
