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
from ..models.draw import check_sampling, next_token  # the one way a token is drawn, shared with the models' own decoders

TokenModel = Callable[[Tensor, Any], "tuple[Tensor, Any]"]


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
