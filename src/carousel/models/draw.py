"""Drawing the next token from logits: the one rule that ``carousel.decode`` (sampling text) and the
models' own decoders (``SequenceGenerator.generate``) share. See ``carousel.decode.sampling`` for the
formula."""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_number


def check_sampling(temperature: float, top_k: int, top_p: float = 1.0) -> None:
    """``TypeError`` unless ``temperature`` and ``top_p`` are numbers and ``top_k`` an integer; ``ValueError``
    unless the temperature is finite and >= 0 (0: greedy), ``top_k >= 0`` (0: every token) and ``top_p``
    in (0, 1] (1: every token)."""
    check_number(temperature, "temperature", low=0.0)
    check_number(top_k, "top_k", low=0, integer=True)
    check_number(top_p, "top_p", low=0.0, high=1.0, low_open=True)


def next_token(
    z: Tensor, *, temperature: float = 1.0, top_k: int = 0, banned: int | None = 0, generator: torch.Generator | None = None,
    top_p: float = 1.0,
) -> Tensor:
    """One token per row of logits ``z`` (B, V), drawn from ``softmax(z' / temperature)`` where ``z'``
    keeps the ``top_k`` largest logits (0: all) and never the ``banned`` id; ``temperature=0`` is the
    argmax. With ``top_p < 1`` only the nucleus is kept: the fewest most likely tokens (of
    ``softmax(z' / temperature)``) whose probabilities sum to at least ``top_p`` (Holtzman et al. 2020,
    "The Curious Case of Neural Text Degeneration", eq. 2-3). Returns (B,) ids.

    Raises ``TypeError``/``ValueError`` for options of the wrong type or range (``check_sampling``) and
    for logits that are not a floating-point (B, V) tensor.
    """
    check_sampling(temperature, top_k, top_p)
    if not isinstance(z, Tensor):
        raise TypeError(f"expected logits as a tensor of shape (B, V), got {type(z).__name__}")
    if z.dim() != 2 or z.shape[-1] == 0 or not z.is_floating_point():
        raise ValueError(f"expected floating-point logits of shape (B, V) with V >= 1, got shape {tuple(z.shape)}, dtype {z.dtype}")
    if banned is not None and not (isinstance(banned, int) and not isinstance(banned, bool) and 0 <= banned < z.shape[-1]):
        raise ValueError(f"expected banned as a token index in [0, {z.shape[-1]}) or None, got {banned!r}")
    z = z.float().clone()
    if banned is not None and z.shape[-1] > 1:
        z[:, banned] = float("-inf")
    if torch.isnan(z).any() or torch.isposinf(z).any() or not bool(torch.isfinite(z).any(dim=-1).all()):
        raise ValueError("expected logits that are not NaN or +inf, with at least one finite logit per row "
                         f"(besides banned={banned!r}); got {'NaN' if torch.isnan(z).any() else '+inf' if torch.isposinf(z).any() else 'a row with none'}"
                         " (a diverged model?)")
    if temperature == 0:
        return z.argmax(dim=-1)
    if 0 < top_k < z.shape[-1]:
        kth = z.topk(top_k, dim=-1).values[:, -1:]  # (B, 1): the K-th largest logit
        z = z.masked_fill(z < kth, float("-inf"))
    probs = torch.softmax(z / temperature, dim=-1)  # (B, V)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)  # (B, V)
        before = sorted_p.cumsum(dim=-1) - sorted_p  # (B, V): the mass of the more likely tokens
        keep = before < top_p  # the most likely token is always kept
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p * keep)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)
