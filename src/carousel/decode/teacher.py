r"""Teacher forcing with scheduled sampling: each input is the true previous token or the model's own guess.

For a token model ``model(x, state) -> (z, state)`` (``x`` (B, T) ids, ``z`` (B, T, V) logits)
and true inputs ``x``, the input fed at step ``t`` is

.. math::
    \tilde x_0 = x_0, \qquad
    \tilde x_t = \begin{cases} x_t & \text{with probability } \epsilon \\
                               \hat x_t \sim \text{softmax}(z_{t-1}) & \text{otherwise} \end{cases}
    \qquad z_t, s_t = \text{model}(\tilde x_t, s_{t-1})

decided independently for every token of every sequence (Bengio et al. 2015, "Scheduled
Sampling for Sequence Prediction with Recurrent Neural Networks"; ``eps`` comes from a
``SamplingSchedule``). As in the paper, no gradient flows through the sampled token. With
``eps = 1`` this is plain teacher forcing and runs as one call over the whole window (the fused
kernel); otherwise the model is called one step at a time inside ``hold_masks``, so dropout masks
stay those of one sequence.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor, nn

from ..regularize import hold_masks

TokenModel = Callable[[Tensor, Any], "tuple[Tensor, Any]"]


class ScheduledOutput(NamedTuple):
    """Logits (B, T, V), the final state, the inputs actually fed (B, T) and how many were sampled."""

    logits: Tensor
    state: Any
    fed: Tensor
    sampled: int


def scheduled_sampling(
    model: TokenModel,
    x: Tensor,
    state: Any = None,
    *,
    eps: float = 1.0,
    greedy: bool = False,
    generator: torch.Generator | None = None,
) -> ScheduledOutput:
    """Run ``model`` over ``x`` (B, T) feeding the true token with probability ``eps`` (see the module docstring).

    ``greedy=True`` feeds the most likely token instead of a sample. ``generator`` draws the
    coins and the samples (torch's default generator when None).
    """
    if not isinstance(x, Tensor) or x.dim() != 2 or x.is_floating_point():
        got = f"shape {tuple(x.shape)}, dtype {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"expected token ids of shape (B, T) and an integer dtype, got {got}")
    if not 0.0 <= float(eps) <= 1.0:
        raise ValueError(f"expected the teacher-forcing probability eps in [0, 1], got {eps}")
    if eps >= 1.0:
        z, state = model(x, state)
        return ScheduledOutput(z, state, x, 0)
    B, T = x.shape
    true = torch.rand(B, T, generator=generator, device=x.device) < eps  # (B, T): feed x_t
    true[:, 0] = True
    fed, outs = [x[:, 0]], []
    holder = hold_masks(model) if isinstance(model, nn.Module) else contextlib.nullcontext()
    with holder:
        for t in range(T):
            z_t, state = model(fed[t].unsqueeze(1), state)  # (B, 1, V)
            outs.append(z_t)
            if t + 1 < T:
                fed.append(torch.where(true[:, t + 1], x[:, t + 1], _guess(z_t[:, 0].detach(), greedy, generator)))
    fed_x = torch.stack(fed, dim=1)  # (B, T)
    return ScheduledOutput(torch.cat(outs, dim=1), state, fed_x, int((~true).sum()))


def _guess(z: Tensor, greedy: bool, generator: torch.Generator | None) -> Tensor:
    """A token per row from logits (B, V): the argmax, or a sample from softmax(z)."""
    if greedy:
        return z.argmax(dim=-1)
    probs = torch.softmax(z.float(), dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)
