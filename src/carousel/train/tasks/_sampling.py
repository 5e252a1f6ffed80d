"""The scheduled-sampling options the encoder–decoder tasks share (``transduce``, ``caption``).

A task's frozen ``Options`` dataclass derives from :class:`ScheduledSamplingOptions` and calls
``check_sampling()`` in its ``__post_init__``; its ``step`` feeds ``teacher_probability(step)`` to the
model as ``sampling_eps`` (Bengio et al. 2015, "Scheduled Sampling for Sequence Prediction with
Recurrent Neural Networks"; the decays are ``carousel.decode.SamplingSchedule``'s).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...decode import SAMPLING_DECAYS, SamplingSchedule
from ..config import option

_DEFAULTS = (("sampling_k", 1.0), ("sampling_c", 0.0), ("sampling_min", 0.0))


@dataclass(frozen=True)
class ScheduledSamplingOptions:
    sampling: str = option("none", "scheduled sampling decay of the teacher-forcing probability", choices=SAMPLING_DECAYS)
    sampling_k: float = option(1.0, "scheduled sampling constant k (Bengio et al. 2015)")
    sampling_c: float = option(0.0, "scheduled sampling slope c (linear decay)")
    sampling_min: float = option(0.0, "floor of the teacher-forcing probability")

    def check_sampling(self) -> None:
        """``ValueError`` for constants of a decay that are out of range, or set while ``sampling`` is
        ``"none"`` (which would ignore them)."""
        if self.sampling == "none":
            for name, default in _DEFAULTS:
                if getattr(self, name) != default:
                    raise ValueError(f"expected {name} at its default {default:g} with sampling 'none', which would ignore it "
                                     f"(choose a decay with --sampling), got {getattr(self, name)!r}")
        self.schedule()  # validates the constants

    def schedule(self) -> SamplingSchedule:
        return SamplingSchedule(self.sampling, k=self.sampling_k, c=self.sampling_c, minimum=self.sampling_min)

    def teacher_probability(self, step: int) -> float:
        """The probability of feeding the true previous token at training step ``step`` (1 without sampling)."""
        return self.schedule()(step) if self.sampling != "none" else 1.0
