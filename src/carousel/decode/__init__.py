"""Decoding: sampling text one step at a time, teacher forcing with scheduled sampling, and greedy,
sampled and beam-search decoding of encoder-decoders (``beam``)."""

from .beam import Hypotheses, StepDecoder, beam_search, gnmt_length_penalty, greedy_decode, sample_decode
from .sampling import Generation, generate, next_token
from .schedule import SAMPLING_DECAYS, SamplingSchedule
from .teacher import ScheduledOutput, scheduled_sampling

__all__ = [
    "Hypotheses",
    "StepDecoder",
    "beam_search",
    "greedy_decode",
    "sample_decode",
    "gnmt_length_penalty",
    "generate",
    "next_token",
    "Generation",
    "SamplingSchedule",
    "SAMPLING_DECAYS",
    "scheduled_sampling",
    "ScheduledOutput",
]
