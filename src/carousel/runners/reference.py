"""The reference runner: the plain autograd loop over ``cell.step`` that every other backend is tested against.

One matrix product projects the inputs of all steps (``cell.project``), then a Python loop calls
``cell.step``. The projected tensor is split with ``unbind`` (indexing ``px[:, t]`` of a tensor
that requires grad makes the backward pass quadratic in T). Past each sequence's length the state
is frozen and the output is zero. Everything is recorded by autograd, so this is also the backend
for second derivatives.

``observe_steps(observer)`` lets a caller see every step this runner takes without changing any
cell: inside the block, ``observer(cell, px_t, state_in, state_out)`` is called after each step
(diagnostics record gradient flow and gates this way).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator

import torch
from torch import Tensor
from torch.nn.utils import parametrize

from ..cells.base import Cell

StepObserver = Callable[[Cell, Tensor, Any, Any], None]
_OBSERVER: ContextVar[StepObserver | None] = ContextVar("carousel_step_observer", default=None)


@contextmanager
def observe_steps(observer: StepObserver) -> Iterator[None]:
    """Call ``observer(cell, px_t, state_in, state_out)`` after every step the reference runner takes
    inside the block (``px_t`` (B, G), the states as ``cell.step`` read and returned them)."""
    token = _OBSERVER.set(observer)
    try:
        yield
    finally:
        _OBSERVER.reset(token)


def run_reference(cell: Cell, x: Tensor, state: Any = None, lengths: Tensor | None = None) -> tuple[Tensor, Any]:
    """Run ``cell`` over batch-first ``x`` (B, T, I) step by step under autograd; see :func:`carousel.run`.

    ``state`` and ``lengths`` must already be validated (``run`` does it): a state of the cell's
    type and a CPU int64 tensor of lengths in [1, T], or None.
    """
    B, T, _ = x.shape
    observe = _OBSERVER.get()
    # computed weights (orthogonal, antisymmetric, DropConnect) are evaluated once per run
    with parametrize.cached():
        if lengths is None:
            px = cell.project(x)  # (B, T, G)
            outputs = []
            for px_t in px.unbind(1):
                new = cell.step(px_t, state)
                if observe is not None:
                    observe(cell, px_t, state, new)
                state = new
                outputs.append(state[0])
            return torch.stack(outputs, dim=1), state  # (B, T, H)

        longest, shortest = int(lengths.max()), int(lengths.min())
        px = cell.project(x[:, :longest] if longest < T else x)  # (B, T', G)
        alive = (torch.arange(longest).unsqueeze(0) < lengths.unsqueeze(1)).to(x.device)  # (B, T')
        outputs = []
        for t, (px_t, alive_t) in enumerate(zip(px.unbind(1), alive.unsqueeze(-1).unbind(1))):
            new = cell.step(px_t, state)
            if observe is not None:
                observe(cell, px_t, state, new)
            if t < shortest:  # every sequence is still running
                state = new
                outputs.append(new[0])
            else:
                state = type(new)(*(torch.where(alive_t, n, s) for n, s in zip(new, state)))
                outputs.append(torch.where(alive_t, new[0], torch.zeros((), dtype=new[0].dtype, device=x.device)))
        out = torch.stack(outputs, dim=1)  # (B, T', H)
        if longest < T:
            out = torch.cat([out, out.new_zeros(B, T - longest, out.shape[-1])], dim=1)  # (B, T, H)
        return out, state
