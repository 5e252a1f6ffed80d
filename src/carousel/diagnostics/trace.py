"""Recording every step of every recurrent layer of a model, without changing the model.

``with recording(model) as traces: loss = ...`` runs each ``Recurrent`` layer of ``model`` on
the reference loop and keeps, per layer and per step ``k``, the projected input ``px_k``, the
state that went in (``s_{k-1}``) and the state that came out (``s_k``), all still part of the
autograd graph. Gradient flow, Jacobians and gate statistics are read from these traces.

Nothing in the model is changed: inside the block ``carousel.runners.use_backend("reference")``
runs every layer on the reference loop (fused kernels and explicit backwards keep no per-step
tensors), and ``carousel.runners.observe_steps`` hands each of its steps to the recording.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from ..cells.base import Cell
from ..layers import Recurrent
from ..runners import observe_steps, use_backend

_RECORDING: set[int] = set()  # ids of the cells being recorded now
_ENCLOSING: ContextVar[Callable[..., None] | None] = ContextVar("carousel_recording", default=None)


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
    ``ValueError`` when ``model`` has no ``Recurrent`` layer (nothing could be recorded) or when
    its cells are already being recorded by an enclosing block.
    """
    layers = recurrent_layers(model)
    if not layers:
        raise ValueError(
            f"expected a model with at least one carousel Recurrent layer to record, got a {type(model).__name__} without one"
        )
    traces = {name: LayerTrace(name, layer.cell) for name, layer in layers.items()}
    by_cell = {id(trace.cell): trace for trace in traces.values()}
    for name, trace in traces.items():
        if id(trace.cell) in _RECORDING:
            raise ValueError(f"layer {name!r}: its cell is already being recorded (nested recording of one model)")
    enclosing = _ENCLOSING.get()

    def observe(cell: Cell, px_t: Tensor, before: Any, after: Any) -> None:
        trace = by_cell.get(id(cell))
        if trace is not None:
            trace.px.append(px_t)
            trace.inputs.append(before)
            trace.states.append(after)
        elif enclosing is not None:
            enclosing(cell, px_t, before, after)  # another model's cell, recorded by an enclosing block

    _RECORDING.update(by_cell)
    token = _ENCLOSING.set(observe)
    try:
        with use_backend("reference"), observe_steps(observe):
            yield traces
    finally:
        _ENCLOSING.reset(token)
        _RECORDING.difference_update(by_cell)


def flatten_state(state: Any) -> Tensor:
    """The state's fields side by side: ``(h, c)`` of (B, P) and (B, H) -> (B, P + H)."""
    return torch.cat(tuple(state), dim=-1)  # (B, S)


def unflatten_state(cell: Cell, flat: Tensor) -> Any:
    """Inverse of :func:`flatten_state` for ``cell``'s state type."""
    return cell.state_type(*torch.split(flat, list(cell.state_sizes), dim=-1))
