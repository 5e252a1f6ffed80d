"""The loop runner: the reference every other backend is tested against.

One matrix product projects the inputs of all steps (``cell.project``), then a Python loop calls
``cell.step``. The projected tensor is split with ``unbind`` (indexing ``px[:, t]`` of a tensor
that requires grad makes the backward pass quadratic in T). Past each sequence's length the state
is frozen and the output is zero.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn.utils import parametrize

from ..cells.base import Cell


def run_loop(cell: Cell, x: Tensor, state: Any = None, lengths: Tensor | None = None) -> tuple[Tensor, Any]:
    """Run ``cell`` over batch-first ``x`` (B, T, I); see :func:`carousel.run.run` for the contract.

    ``state`` and ``lengths`` must already be validated (``run`` does it): a state of the cell's
    type and a CPU int64 tensor of lengths in [1, T], or None.
    """
    B, T, _ = x.shape
    # computed weights (orthogonal, antisymmetric, DropConnect) are evaluated once per run
    with parametrize.cached():
        if lengths is None:
            px = cell.project(x)  # (B, T, G)
            outputs = []
            for px_t in px.unbind(1):
                state = cell.step(px_t, state)
                outputs.append(state[0])
            return torch.stack(outputs, dim=1), state  # (B, T, H)

        longest, shortest = int(lengths.max()), int(lengths.min())
        px = cell.project(x[:, :longest] if longest < T else x)  # (B, T', G)
        alive = (torch.arange(longest).unsqueeze(0) < lengths.unsqueeze(1)).to(x.device)  # (B, T')
        outputs = []
        for t, (px_t, alive_t) in enumerate(zip(px.unbind(1), alive.unsqueeze(-1).unbind(1))):
            new = cell.step(px_t, state)
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
