r"""Sampling text from a token model, one step at a time, carrying the state (the prefix is read once).

For logits ``z`` of the next token, temperature ``T`` and ``top_k = K``:

.. math::
    p = \text{softmax}(z' / T), \qquad
    z'_v = \begin{cases} z_v & v \text{ among the } K \text{ largest } z \\ -\infty & \text{otherwise} \end{cases}

``T -> 0`` approaches greedy decoding (``temperature=0`` is exactly greedy), ``T > 1`` flattens
the distribution; ``K = 0`` keeps every token. The unknown symbol (index 0 of a ``Vocabulary``)
is never sampled. ``generate`` reads the prime in one call, then runs ``num`` sequences
side by side, each new token fed back with the state: one model call of length 1 per step.
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor

from .._checks import check_number, check_size
from ..data.vocab import Vocabulary

TokenModel = Callable[[Tensor, Any], "tuple[Tensor, Any]"]


def check_sampling(temperature: float, top_k: int) -> None:
    """``TypeError`` unless ``temperature`` is a number and ``top_k`` an integer; ``ValueError`` unless
    the temperature is finite and >= 0 (0: greedy) and ``top_k >= 0`` (0: every token)."""
    check_number(temperature, "temperature", low=0.0)
    check_number(top_k, "top_k", low=0, integer=True)


def next_token(
    z: Tensor, *, temperature: float = 1.0, top_k: int = 0, banned: int | None = 0, generator: torch.Generator | None = None
) -> Tensor:
    """One token per row of logits ``z`` (B, V), drawn as the module docstring says; returns (B,) ids.

    Raises ``TypeError``/``ValueError`` for options of the wrong type or range (``check_sampling``) and
    for logits that are not a floating-point (B, V) tensor.
    """
    check_sampling(temperature, top_k)
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
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


class Generation(NamedTuple):
    """The sampled continuations (without the prime), and the speed of the sampling loop."""

    texts: list[str]
    seconds: float
    chars_per_second: float


@torch.no_grad()
def generate(
    model: TokenModel,
    vocab: Vocabulary,
    prime: str,
    length: int,
    *,
    num: int = 1,
    temperature: float = 1.0,
    top_k: int = 0,
    seed: int | None = 0,
    threads: int | None = 1,
) -> Generation:
    """``num`` continuations of ``prime``, ``length`` characters each, sampled side by side.

    The model is put in evaluation mode (and back afterwards). ``seed=None`` uses torch's
    global generator; otherwise the samples are reproducible. ``threads``: torch's intra-op
    threads while sampling (restored afterwards; None leaves them): one step is little work, and
    one thread spares the per-step synchronisation, which on a busy 2-core machine cost 50 ms per
    step against 1 ms.
    """
    check_sampling(temperature, top_k)
    if not isinstance(vocab, Vocabulary):
        raise TypeError(f"expected vocab to be a carousel.data.Vocabulary, got {type(vocab).__name__}")
    if not isinstance(prime, str):
        raise TypeError(f"expected the prime as a str, got {type(prime).__name__}")
    check_size(length, "length")
    check_size(num, "num")
    if seed is not None:
        check_number(seed, "seed", integer=True)
    if threads is not None:
        check_size(threads, "threads")
    if not prime:
        prime = "\n" if "\n" in vocab.index else vocab.symbols[1]
    device = next((p.device for p in model.parameters()), torch.device("cpu")) if hasattr(model, "parameters") else None
    g = None if seed is None else torch.Generator(device="cpu").manual_seed(seed)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    threads_before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        ids = vocab.encode(prime).to(device).unsqueeze(0).expand(num, -1)  # (N, P)
        z, state = model(ids, None)  # the prime, read once
        z = z[:, -1]  # (N, V)
        out = torch.empty(num, length, dtype=torch.long)
        start = time.perf_counter()
        for t in range(length):
            c = next_token(z.cpu(), temperature=temperature, top_k=top_k, generator=g)  # (N,)
            out[:, t] = c
            z, state = model(c.to(device).unsqueeze(1), state)  # (N, 1, V): one step
            z = z[:, 0]
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads_before)
        if was_training and hasattr(model, "train"):
            model.train()
    texts = [vocab.decode(row) for row in out]
    return Generation(texts, seconds, num * length / max(seconds, 1e-9))
