"""Data: synthetic tasks generated from a seed, corpora and real datasets, batching."""

from .tasks import adding_problem

__all__ = ["adding_problem"]
