"""Fit the demo's model to the machine and the time budget: measure, predict, choose.

A character-level LSTM trained for a fixed wall time faces a trade-off: a wider model learns more
from each character, a narrower one sees more characters in the same minutes. ``choose`` resolves it
with a rule fitted to measurements (README, "Character-level language model"): for each width ``H``
the training bits per character after ``c`` characters, at a constant learning rate, follow

.. math::
    \\text{bpc}_H(c) = a_H + b_H \\, (c / 10^6)^{-\\alpha_H}

(``CURVES``, fitted to runs on the Penn Treebank; the cosine decay over the clock that the demo uses
ends lower by about the same amount for every width, so it does not change the choice). Before
training, ``measure_rate`` times a few real training steps of each candidate on this machine
(characters per second, in each precision the CPU really has); ``choose`` predicts the characters
the budget buys and the bpc they reach, and takes the lowest.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn.functional as F

from ..models import CharLM

# Fitted curves: hidden -> (a, b, alpha); see the module docstring. Measured with
# `ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python -m benchmarks.demo_curves` on this project's
# 2-core AMD EPYC (fp32, batch 32 x 100 characters, Adam 3e-3 at a constant rate, 6 minutes per width,
# 2.6 M to 21.8 M characters; root-mean-square residual 0.02 bpc).
CURVES: dict[int, tuple[float, float, float]] = {
    128: (1.464, 0.965, 0.420),
    256: (1.306, 0.924, 0.420),
    384: (1.226, 0.820, 0.420),
    512: (1.220, 0.709, 0.420),
    768: (1.143, 0.741, 0.420),
}
BATCH, BPTT, EMBED = 32, 100, 64
EFFICIENCY = 0.93  # share of the wall time spent in training steps (evaluation, checkpoints, start-up)


@dataclass(frozen=True)
class Candidate:
    """A model the demo may train: an LSTM of ``hidden`` units in ``precision`` ("fp32" or "bf16")."""

    hidden: int
    precision: str


@dataclass(frozen=True)
class Choice:
    """What ``choose`` decided: the candidate, its measured rate (characters per second), the
    characters the budget buys and the predicted bits per character, beside every other candidate's."""

    candidate: Candidate
    rate: float
    chars: float
    predicted: float
    others: tuple[tuple[Candidate, float, float], ...]  # (candidate, rate, predicted bpc)

    def line(self, minutes: float) -> str:
        """``LSTM 256, fp32: 45,000 chars/s measured -> ~12.6 M characters in 5 min, predicted 1.78 bpc (...)``."""
        c = self.candidate
        rest = ", ".join(f"{o.hidden}: {r:,.0f}/s -> {p:.2f}" for o, r, p in self.others if o != c)
        predicted = "" if math.isnan(self.predicted) else f", predicted {self.predicted:.2f} training bpc"
        return (f"LSTM {c.hidden}, {c.precision}: {self.rate:,.0f} chars/s measured -> ~{self.chars / 1e6:.1f} M characters "
                f"in {minutes:g} min{predicted}" + (f" (others: {rest})" if rest else ""))


def predicted_bpc(hidden: int, chars: float) -> float:
    """Training bits per character an LSTM of ``hidden`` units reaches after ``chars`` characters
    (``CURVES``); NaN for a width without a measured curve (one given by hand: nothing to choose)."""
    if hidden not in CURVES:
        return math.nan
    a, b, alpha = CURVES[hidden]
    return a + b * max(chars / 1e6, 1e-3) ** -alpha


def measure_rate(candidate: Candidate, vocab_size: int, *, steps: int = 3) -> float:
    """Characters per second of training steps of the demo's model for ``candidate`` on this machine
    (one warm-up step, then the median of ``steps``), on random characters."""
    g = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        model = CharLM(vocab_size, hidden_size=candidate.hidden, embed_size=EMBED)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randint(0, vocab_size, (BATCH, BPTT), generator=g)
    y = torch.randint(0, vocab_size, (BATCH, BPTT), generator=g)
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        context = torch.autocast("cpu", dtype=torch.bfloat16, enabled=candidate.precision == "bf16")
        with context:
            z, _ = model(x)
        loss = F.cross_entropy(z.float().reshape(-1, vocab_size), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i:
            times.append(time.perf_counter() - start)
    return BATCH * BPTT / statistics.median(times)


def choose(seconds: float, rates: dict[Candidate, float]) -> Choice:
    """The candidate predicted to reach the lowest bits per character in ``seconds`` of training,
    given each candidate's measured characters per second. Raises ``ValueError`` without candidates."""
    if not rates:
        raise ValueError("expected at least one candidate with a measured rate")
    scored = []
    for candidate, rate in rates.items():
        chars = rate * seconds * EFFICIENCY
        scored.append((predicted_bpc(candidate.hidden, chars), -candidate.hidden, candidate, rate, chars))
    best = min(scored, key=lambda s: (math.inf if math.isnan(s[0]) else s[0], s[1]))  # the lowest; a tie: the wider
    others = tuple((c, r, p) for p, _, c, r, _ in sorted(scored, key=lambda s: s[:2]))
    return Choice(best[2], best[3], best[4], best[0], others)


def candidates(hidden: int | None, precision: str, fast_bf16: bool) -> list[Candidate]:
    """What to measure: the given width or every measured one, in the given precision or (``"auto"``)
    bf16 where the CPU has it, else fp32."""
    widths = [hidden] if hidden is not None else sorted(CURVES)
    if precision == "auto":
        precision = "bf16" if fast_bf16 else "fp32"
    return [Candidate(h, precision) for h in widths]


def fit_to_machine(seconds: float, pool: Iterable[Candidate], vocab_size: int,
                   measure: Callable[[Candidate, int], float] = measure_rate, *, rounds: int = 2) -> Choice:
    """Measure every candidate of ``pool`` on this machine and choose (see the module docstring).

    The candidates are measured ``rounds`` times, interleaved, and each keeps its fastest rate: on a
    shared machine other work only ever slows a step down, and interleaving spreads a burst of it
    over all widths instead of penalising the one measured during it."""
    pool = list(pool)
    rates = dict.fromkeys(pool, 0.0)
    for _ in range(rounds):
        for candidate in pool:
            rates[candidate] = max(rates[candidate], measure(candidate, vocab_size))
    return choose(seconds, rates)
