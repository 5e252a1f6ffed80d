"""Data: synthetic tasks generated from a seed, corpora and real datasets, batching."""

from .tasks import (
    ADDING_BASELINE_MSE,
    SYNTHETIC_TASKS,
    SyntheticTask,
    adding_problem,
    copying_baseline,
    copying_memory,
    counting_ones,
    parity,
    synthetic_task,
    zeros_even,
)

__all__ = [
    "adding_problem",
    "copying_memory",
    "copying_baseline",
    "parity",
    "counting_ones",
    "zeros_even",
    "ADDING_BASELINE_MSE",
    "SyntheticTask",
    "SYNTHETIC_TASKS",
    "synthetic_task",
]
