r"""Gradient flow through time: how much of the loss's gradient reaches each step.

For a layer with states :math:`s_1 \dots s_T` the total derivative of the loss with respect to
the state at step k unrolls into a product of step Jacobians,

.. math::
    \frac{\partial L}{\partial s_k} = \sum_{t \ge k} \frac{\partial L}{\partial s_t}\Big|_{\text{direct}}
        \frac{\partial s_t}{\partial s_{t-1}} \cdots \frac{\partial s_{k+1}}{\partial s_k},

so when the loss sits at the last step, ``||dL/ds_k||`` shrinks or grows with the spectral radius
of the recurrence as the lag ``T - k`` grows. ``norms[k]`` is the mean over the batch of each
sequence's ``||dL/ds_k||_2``; ``fields[name][k]`` the same for one state field (``h``, ``c``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from .trace import LayerTrace, recording


@dataclass
class FlowCurve:
    """``||dL/ds_k||`` for every step ``k`` of one layer (index 0 is the first step)."""

    norms: Tensor  # (T,) whole state
    fields: dict[str, Tensor]  # field name -> (T,)

    def by_lag(self) -> Tensor:
        """The same norms against the lag ``T - 1 - k``: index 0 is the last step."""
        return self.norms.flip(0)


def flow_from_traces(loss: Tensor, traces: dict[str, LayerTrace], *, retain_graph: bool = False) -> dict[str, FlowCurve]:
    """``||dL/ds_k||`` for every recorded step of every layer, from a scalar ``loss`` (one backward pass)."""
    if not isinstance(loss, Tensor) or loss.dim() != 0:
        got = f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, Tensor) else type(loss).__name__
        raise ValueError(f"expected a scalar loss tensor, got {got}")
    if not loss.requires_grad:
        raise ValueError("expected a loss that depends on the model's parameters (it does not require grad)")
    targets, where = [], []
    for name, trace in traces.items():
        for k, state in enumerate(trace.states):
            for f, value in zip(trace.fields, state):
                targets.append(value)
                where.append((name, k, f))
    if not targets:
        raise ValueError("no recurrent step was recorded: run the model inside the recording block")
    grads = torch.autograd.grad(loss, targets, allow_unused=True, retain_graph=retain_graph)
    squares: dict[str, dict[str, Tensor]] = {
        name: {f: torch.zeros(t.steps, t.states[0][0].shape[0], dtype=torch.float64) for f in t.fields}
        for name, t in traces.items()
    }  # (T, B) squared norms per sequence
    for (name, k, f), g in zip(where, grads):
        if g is not None:
            squares[name][f][k] = g.detach().double().pow(2).sum(-1).cpu()
    out = {}
    for name, per_field in squares.items():
        total = sum(per_field.values())  # (T, B)
        out[name] = FlowCurve(
            norms=total.sqrt().mean(1),
            fields={f: sq.sqrt().mean(1) for f, sq in per_field.items()},
        )
    return out


def gradient_flow(model: nn.Module, compute_loss: Callable[[], Tensor]) -> dict[str, FlowCurve]:
    """Run ``compute_loss()`` (which calls ``model``) and return ``||dL/ds_k||`` per layer and step.

    ``model`` is any module holding carousel ``Recurrent`` layers; the parameters' ``.grad`` are
    left untouched. Example::

        flow = gradient_flow(model, lambda: F.mse_loss(model(x), y))
        flow["rnn"].by_lag()  # (T,) gradient norm at lag 0, 1, ...
    """
    with recording(model) as traces:
        loss = compute_loss()
    return flow_from_traces(loss, traces)
