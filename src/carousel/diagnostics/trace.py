"""Recording every step of every recurrent layer of a model, without changing the model.

``with recording(model) as traces: loss = ...`` runs each ``Recurrent`` layer of ``model`` on
the reference loop and keeps, per layer and per step ``k``, the projected input ``px_k``, the
state that went in (``s_{k-1}``) and the state that came out (``s_k``), all still part of the
autograd graph. Gradient flow, Jacobians and gate statistics are read from these traces.

Cells keep their ``step`` signature: the recording is an instance attribute put over
``cell.step`` for the duration of the block, and every ``backend`` setting in the model is set
to ``"reference"`` (the fused kernels and the fast loop have no per-step tensors to keep).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from ..cells.base import Cell
from ..layers.recurrent import Recurrent


@dataclass
class LayerTrace:
    """What one recurrent layer did, step by step (steps of successive calls follow each other)."""

    name: str
    cell: Cell
    px: list[Tensor] = field(default_factory=list)  # px_k, each (B, G)
    inputs: list[Any] = field(default_factory=list)  # s_{k-1}: the state each step read
    states: list[Any] = field(default_factory=list)  # s_k: the state each step wrote

    @property
    def steps(self) -> int:
        return len(self.states)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.cell.state_type._fields)


def recurrent_layers(model: nn.Module) -> dict[str, Recurrent]:
    """Every ``Recurrent`` layer inside ``model`` (itself included), by its name in ``named_modules``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module holding carousel Recurrent layers, got {type(model).__name__}")
    return {(name or "rnn"): m for name, m in model.named_modules() if isinstance(m, Recurrent)}


@contextmanager
def recording(model: nn.Module) -> Iterator[dict[str, LayerTrace]]:
    """Record every step of every ``Recurrent`` layer of ``model`` inside the block.

    Yields a dict ``layer name -> LayerTrace`` that fills as the model runs. Raises
    ``ValueError`` when ``model`` has no ``Recurrent`` layer (nothing could be recorded).
    """
    layers = recurrent_layers(model)
    if not layers:
        raise ValueError(
            f"expected a model with at least one carousel Recurrent layer to record, got a {type(model).__name__} without one"
        )
    traces = {name: LayerTrace(name, layer.cell) for name, layer in layers.items()}
    backends = {m: m.backend for m in model.modules() if isinstance(getattr(m, "backend", None), str)}
    patched = []
    try:
        for m in backends:
            m.backend = "reference"
        for name, layer in layers.items():
            cell = layer.cell
            if "step" in cell.__dict__:
                raise ValueError(f"layer {name!r}: its cell is already being recorded (nested recording of one model)")
            cell.step = _recording_step(cell, type(cell).step, traces[name])
            patched.append(cell)
        yield traces
    finally:
        for cell in patched:
            del cell.step
        for m, backend in backends.items():
            m.backend = backend


def _recording_step(cell: Cell, step: Any, trace: LayerTrace):
    def record(px_t: Tensor, state: Any) -> Any:
        new = step(cell, px_t, state)
        trace.px.append(px_t)
        trace.inputs.append(state)
        trace.states.append(new)
        return new

    return record


def flatten_state(state: Any) -> Tensor:
    """The state's fields side by side: ``(h, c)`` of (B, P) and (B, H) -> (B, P + H)."""
    return torch.cat(tuple(state), dim=-1)  # (B, S)


def unflatten_state(cell: Cell, flat: Tensor) -> Any:
    """Inverse of :func:`flatten_state` for ``cell``'s state type."""
    return cell.state_type(*torch.split(flat, list(cell.state_sizes), dim=-1))


def gate_cell(cell: Cell) -> Cell | None:
    """The cell whose ``gates`` describe ``cell``: itself, or the cell a wrapper runs; None without gates."""
    while cell is not None and not hasattr(cell, "gates"):
        cell = getattr(cell, "cell", None)
    return cell
