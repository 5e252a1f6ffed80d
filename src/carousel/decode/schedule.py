r"""Scheduled-sampling decay: the probability of feeding the true previous token at training step ``i``.

Bengio, Vinyals, Jaitly & Shazeer 2015, "Scheduled Sampling for Sequence Prediction with
Recurrent Neural Networks", section 2.4, decay the teacher-forcing probability ``eps_i`` from
(near) 1 as training goes on:

.. math::
    \text{linear:} \quad & \epsilon_i = \max(\epsilon_\text{min},\, k - c\, i)
        && 0 \le \epsilon_\text{min} < 1,\ c > 0 \\
    \text{exponential:} \quad & \epsilon_i = \max(\epsilon_\text{min},\, k^i) && 0 < k < 1 \\
    \text{inverse sigmoid:} \quad & \epsilon_i = \max(\epsilon_\text{min},\, k / (k + \exp(i / k))) && k \ge 1

``"none"`` is plain teacher forcing (``eps_i = 1``). The schedule is a pure function of ``i``, so
a resumed run continues it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._checks import check_number

SAMPLING_DECAYS = ("none", "linear", "exponential", "inverse_sigmoid")


@dataclass(frozen=True)
class SamplingSchedule:
    """``SamplingSchedule("inverse_sigmoid", k=500)(i)`` is the probability of the true token at step ``i``.

    ``k`` and ``c`` are the constants of the equations above (``c`` is used by ``linear`` only);
    ``minimum`` is the floor ``eps_min`` for every kind.
    """

    kind: str = "none"
    k: float = 1.0
    c: float = 0.0
    minimum: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SAMPLING_DECAYS:
            raise ValueError(f"unknown scheduled-sampling decay {self.kind!r}; expected one of: {', '.join(SAMPLING_DECAYS)}")
        for name in ("k", "c", "minimum"):
            check_number(getattr(self, name), name)  # a real, finite number (inf/inf would make eps NaN)
        unused = [f"{name}={getattr(self, name)!r}" for name, default in (("k", 1.0), ("c", 0.0), ("minimum", 0.0))
                  if getattr(self, name) != default and (self.kind == "none" or (name == "c" and self.kind != "linear"))]
        if unused:
            raise ValueError(f"decay {self.kind!r} does not use {', '.join(unused)}; expected it at its default "
                             "(k and the floor act with a decay other than 'none', the slope c with 'linear' only)")
        if not 0.0 <= self.minimum < 1.0 and self.kind != "none":
            raise ValueError(f"expected the floor eps_min in [0, 1), got {self.minimum}")
        if self.kind == "linear" and not (self.c > 0 and self.k > 0):
            raise ValueError(f"linear decay needs k > 0 and a slope c > 0, got k={self.k}, c={self.c}")
        if self.kind == "exponential" and not 0.0 < self.k < 1.0:
            raise ValueError(f"exponential decay needs 0 < k < 1, got k={self.k}")
        if self.kind == "inverse_sigmoid" and not self.k >= 1.0:
            raise ValueError(f"inverse-sigmoid decay needs k >= 1, got k={self.k}")

    def __call__(self, i: float) -> float:
        """``eps_i``: the probability of feeding the true previous token at training step ``i >= 0``."""
        check_number(i, "the training step i", low=0.0)
        k, c = self.k, self.c
        if self.kind == "none":
            return 1.0
        if self.kind == "linear":
            eps = k - c * i
        elif self.kind == "exponential":
            eps = k**i
        else:
            x = i / k
            eps = k / (k + math.exp(x)) if x < 700 else 0.0  # exp overflows past ~709
        return float(min(1.0, max(self.minimum, eps)))
