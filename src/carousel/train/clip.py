r"""Gradient clipping, returning the norm *before* clipping so that explosions stay visible.

Clipping by global norm (Pascanu, Mikolov & Bengio 2013, "On the difficulty of training recurrent
neural networks", algorithm 1): with :math:`g` all gradients stacked and :math:`\|g\|` its L2 norm,

.. math::
    g \leftarrow g \cdot \min\left(1, \frac{\text{max\_norm}}{\|g\|}\right)

which keeps the direction and bounds the step. Clipping by value clamps each element to
``[-max_value, max_value]`` (it changes the direction). Both can be set; the norm clip runs first.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor, nn

from .._checks import check_number


def grad_norm(parameters: Iterable[Tensor]) -> Tensor:
    """The global L2 norm of every gradient (0 when there is none); ``inf``/``nan`` when one is not finite."""
    grads = [p.grad.detach() for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, 2.0, dtype=torch.float32) for g in grads]), 2.0)


def clip_gradients(parameters: Iterable[Tensor], *, max_norm: float = 0.0, max_value: float = 0.0) -> Tensor:
    """Clip in place (``0`` turns a clip off) and return the global norm measured before clipping.

    A non-finite norm is returned as it is (the gradients are then not to be used: the trainer
    skips such a step).
    """
    check_number(max_norm, "max_norm", low=0.0)  # NaN compares false everywhere: it would turn clipping off unsaid
    check_number(max_value, "max_value", low=0.0)
    params = [p for p in parameters if p.grad is not None]
    if max_norm > 0:
        norm = nn.utils.clip_grad_norm_(params, max_norm)  # returns the total norm before clipping
    else:
        norm = grad_norm(params)
    if max_value > 0:
        nn.utils.clip_grad_value_(params, max_value)
    return norm.detach().cpu()
