"""Decoding: sampling text one step at a time, teacher forcing with scheduled sampling."""

from .sampling import Generation, generate, next_token
from .schedule import SAMPLING_DECAYS, SamplingSchedule
from .teacher import ScheduledOutput, scheduled_sampling

__all__ = [
    "generate",
    "next_token",
    "Generation",
    "SamplingSchedule",
    "SAMPLING_DECAYS",
    "scheduled_sampling",
    "ScheduledOutput",
]
