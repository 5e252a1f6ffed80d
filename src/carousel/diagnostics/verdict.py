r"""A plain-language verdict per layer: vanishing, exploding or healthy, with the numbers behind it.

Over the window of ``l`` steps the verdict reads one number, the *survival* ``m``:

* the largest singular value of :math:`\partial s_T / \partial s_{T-l}` when the Jacobian
  spectrum was computed (how much of any gradient can cross ``l`` steps), else
* the ratio :math:`\|\partial L/\partial s_{T-l}\| / \|\partial L/\partial s_T\|` of the gradient
  flow (how much of this loss's gradient did).

``m < vanish`` (1e-3 by default: three orders of magnitude lost) is *vanishing*, ``m > explode``
(1e3) is *exploding*, anything between is *healthy*; ``m`` = NaN (a state or gradient that is not
finite: the model diverged) is *non-finite*. The per-step factor ``m ** (1 / l)`` is the
rate, comparable to the recurrent matrix's spectral radius.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

VANISH, EXPLODE = 1e-3, 1e3


@dataclass(frozen=True)
class Verdict:
    """The verdict on one layer and the numbers it rests on."""

    layer: str
    cell: str
    kind: str  # "vanishing" | "exploding" | "healthy" | "non-finite"
    lag: int  # window length l in steps
    survival: float  # m, the number the verdict reads
    measure: str  # "jacobian" or "gradient": where m comes from
    per_step: float  # m ** (1 / l)
    gradient_ratio: float | None
    jacobian_top: float | None
    recurrent_radius: dict[str, float]

    @property
    def text(self) -> str:
        what = (
            f"the largest singular value of ds_T/ds_(T-{self.lag}) is {self.survival:.2g}"
            if self.measure == "jacobian"
            else f"||dL/ds|| changes by a factor {self.survival:.2g}"
        )
        if self.kind == "non-finite":
            return f"{self.layer} ({self.cell}): non-finite — its states or gradients hold NaN or inf (the model diverged)"
        parts = [f"{self.layer} ({self.cell}): {self.kind} — over {self.lag} steps {what} (x{self.per_step:.3f} per step)"]
        if self.measure == "jacobian" and self.gradient_ratio is not None:
            parts.append(f"||dL/ds|| changes by {self.gradient_ratio:.2g}")
        if self.recurrent_radius:
            radii = ", ".join(f"{k} {v:.2f}" for k, v in self.recurrent_radius.items())
            parts.append(f"spectral radius of weight_hh: {radii}")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)


def judge(
    layer: str,
    cell: str,
    grad_by_lag: list[float],
    jacobian_top: list[float] | None = None,
    recurrent_radius: dict[str, float] | None = None,
    *,
    vanish: float = VANISH,
    explode: float = EXPLODE,
) -> Verdict:
    """Verdict from a gradient-norm curve by lag (index 0 = last step) and, when given, the largest
    singular value of the Jacobian product at each lag 1..L (index ``l - 1``)."""
    if not 0 < vanish < 1 < explode:
        raise ValueError(f"expected thresholds 0 < vanish < 1 < explode, got vanish={vanish!r}, explode={explode!r}")
    if len(grad_by_lag) < 2 and not jacobian_top:
        raise ValueError("expected a gradient curve of at least two steps or a Jacobian spectrum to judge a layer")
    ratio = None
    if len(grad_by_lag) >= 2:
        first, last = float(grad_by_lag[0]), float(grad_by_lag[-1])
        if math.isnan(first) or math.isnan(last):
            ratio = math.nan
        else:
            ratio = last / first if first > 0 else (0.0 if last == 0 else math.inf)
    if jacobian_top:
        survival, lag, measure, top = float(jacobian_top[-1]), len(jacobian_top), "jacobian", float(jacobian_top[-1])
    else:
        survival, lag, measure, top = ratio, len(grad_by_lag) - 1, "gradient", None
    if math.isnan(survival):
        return Verdict(layer, cell, "non-finite", lag, survival, measure, math.nan, ratio, top, dict(recurrent_radius or {}))
    kind = "vanishing" if survival < vanish else "exploding" if survival > explode else "healthy"
    per_step = survival ** (1.0 / lag) if survival > 0 and math.isfinite(survival) else (0.0 if survival == 0 else math.inf)
    return Verdict(layer, cell, kind, lag, survival, measure, per_step, ratio, top, dict(recurrent_radius or {}))
