"""Data: synthetic tasks generated from a seed, corpora and real datasets, batching."""

from .compress import COMPRESSORS, compressor_bits
from .corpus import CORPORA, Corpus, MissingPackageError, load_corpus, penn_treebank, python_stdlib, text_files
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
from .vocab import Vocabulary

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
    "Corpus",
    "CORPORA",
    "MissingPackageError",
    "load_corpus",
    "penn_treebank",
    "python_stdlib",
    "text_files",
    "Vocabulary",
    "compressor_bits",
    "COMPRESSORS",
]
