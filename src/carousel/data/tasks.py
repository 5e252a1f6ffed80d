"""Long-term-dependency tasks, generated from a seed, each with its chance baseline.

Every generator takes ``(num, length, *, seed=0)`` and returns ``(x, y)`` with ``x`` a float
tensor of shape (N, L, I), ready for a batch-first recurrent layer; ``SYNTHETIC_TASKS`` describes
each one (what ``y`` is, how it is scored, and the score of the best guess that ignores the
input). ``length`` is the task's T; the copying task's sequences are T + 20 long.

| task | x | y | score | chance (best guess that ignores the input) |
|---|---|---|---|---|
| adding | (N, T, 2) | (N, 1) float | MSE | predict 1: MSE 1/6 ~ 0.167 |
| copying | (N, T+20, 10) one-hot | (N, T+20) int | cross-entropy per step | 10 log 8 / (T + 20) |
| parity | (N, T, 1) bits | (N,) int | cross-entropy | log 2 (accuracy 1/2) |
| counting | (N, T, 1) bits | (N, 1) float | MSE | predict T/2: MSE T/4 |
| zeros_even | (N, T, 1) bits | (N,) int | cross-entropy | log 2 (accuracy 1/2) |
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_number, check_size


def _generator(seed: object, dtype: object) -> torch.Generator:
    """The task's random generator from ``seed``, after checking ``seed`` (an integer) and ``dtype``
    (a floating-point ``torch.dtype``: the inputs are fed to a network)."""
    check_number(seed, "seed", integer=True)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"expected dtype to be a torch.dtype such as torch.float32, got {type(dtype).__name__} {dtype!r}")
    if not dtype.is_floating_point:
        raise ValueError(f"expected a floating-point dtype for the inputs (torch.float32, float64, ...), got {dtype}")
    return torch.Generator().manual_seed(seed)

COPY_SYMBOLS = 8  # symbols 1..8; 0 is the blank, 9 the delimiter
COPY_LENGTH = 10  # symbols to remember
ADDING_BASELINE_MSE = 1.0 / 6.0


def adding_problem(num: int, length: int, *, seed: int = 0, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """The adding problem (Hochreiter & Schmidhuber 1997) in the form of Le et al. 2015.

    Each input is (T, 2): a value drawn from U(0, 1) and a marker that is 1 at exactly two
    positions, one in each half of the sequence; the target is the sum of the two marked values.
    Predicting the mean, 1, gives MSE 1/6 ~ 0.167 (the variance of a sum of two U(0, 1)): the
    chance baseline. Returns ``x`` (N, T, 2) and ``y`` (N, 1).
    """
    check_size(num, "num")
    check_size(length, "length", minimum=2)
    g = _generator(seed, dtype)
    values = torch.rand(num, length, generator=g, dtype=dtype)  # (N, T)
    half = length // 2
    first = torch.randint(0, half, (num,), generator=g)
    second = torch.randint(half, length, (num,), generator=g)
    markers = torch.zeros(num, length, dtype=dtype)
    rows = torch.arange(num)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=-1)  # (N, T, 2)
    y = (values * markers).sum(dim=1, keepdim=True)  # (N, 1)
    return x, y


def copying_memory(num: int, length: int, *, seed: int = 0, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """The copying memory task of Arjovsky, Shah & Bengio 2016 ("Unitary Evolution RNNs", section 4.1).

    A sequence of T + 20 tokens: 10 symbols drawn uniformly from {1..8}, T - 1 blanks (0), the
    delimiter 9, then 10 blanks. The target is blank for the first T + 10 steps, then the 10
    symbols. Predicting blank, then a uniform guess over the 8 symbols, costs
    ``10 log 8 / (T + 20)`` nats per step: the baseline of a network without memory.
    Returns ``x`` (N, T+20, 10) one-hot floats and ``y`` (N, T+20) class indices in 0..8.
    """
    check_size(num, "num")
    check_size(length, "length")
    g = _generator(seed, dtype)
    total = length + 2 * COPY_LENGTH
    symbols = torch.randint(1, COPY_SYMBOLS + 1, (num, COPY_LENGTH), generator=g)  # (N, 10)
    tokens = torch.zeros(num, total, dtype=torch.long)
    tokens[:, :COPY_LENGTH] = symbols
    tokens[:, length + COPY_LENGTH - 1] = COPY_SYMBOLS + 1  # the delimiter
    y = torch.zeros(num, total, dtype=torch.long)
    y[:, -COPY_LENGTH:] = symbols
    x = F.one_hot(tokens, COPY_SYMBOLS + 2).to(dtype)  # (N, T+20, 10)
    return x, y


def copying_baseline(length: int) -> float:
    """Cross-entropy per step of the memoryless strategy on the copying task: ``10 log 8 / (T + 20)``."""
    check_size(length, "length")
    return COPY_LENGTH * math.log(COPY_SYMBOLS) / (length + 2 * COPY_LENGTH)


def _bits(num: int, length: int, seed: int, dtype: torch.dtype) -> Tensor:
    check_size(num, "num")
    check_size(length, "length")
    g = _generator(seed, dtype)
    return torch.randint(0, 2, (num, length, 1), generator=g).to(dtype)  # (N, T, 1)


def parity(num: int, length: int, *, seed: int = 0, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """Parity of a random bit string: ``y = (sum_t x_t) mod 2``. Chance: log 2 nats, accuracy 1/2.

    Every bit matters to the answer, so no gate can ignore any step. Returns ``x`` (N, T, 1)
    bits and ``y`` (N,) class indices.
    """
    x = _bits(num, length, seed, dtype)
    return x, x.sum(dim=(1, 2)).long() % 2


def counting_ones(num: int, length: int, *, seed: int = 0, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """Count the ones in a random bit string: ``y = sum_t x_t``. Chance: predict T/2, MSE T/4.

    The count is a Binomial(T, 1/2) whose variance is T/4. An LSTM solves it by opening its input
    gate on ones and closing it on zeros. Returns ``x`` (N, T, 1) bits and ``y`` (N, 1) counts.
    """
    x = _bits(num, length, seed, dtype)
    return x, x.sum(dim=1)  # (N, 1)


def zeros_even(num: int, length: int, *, seed: int = 0, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """Is the number of zeros even? ``y = 1`` if ``(T - sum_t x_t) mod 2 = 0``. Chance: log 2, accuracy 1/2.

    The network must keep a count internally but show only its parity: the output gate hides
    the count. Returns ``x`` (N, T, 1) bits and ``y`` (N,) class indices.
    """
    x = _bits(num, length, seed, dtype)
    zeros = length - x.sum(dim=(1, 2)).long()
    return x, (zeros % 2 == 0).long()


@dataclass(frozen=True)
class SyntheticTask:
    """A generated task: its shapes, how it is scored, and its chance baseline.

    * ``loss``: ``"mse"`` (``y`` float) or ``"cross_entropy"`` (``y`` class indices);
    * ``every_step``: the model answers at every step (``y`` (N, L)) instead of once at the end;
    * ``baseline(T)``: the closed-form loss of the best guess that ignores the input;
    * ``chance(y, T)``: that guess's loss on the given targets (close to ``baseline`` on many samples).
    """

    name: str
    generate: Callable[..., tuple[Tensor, Tensor]]
    input_size: int
    output_size: int
    loss: str
    every_step: bool
    baseline: Callable[[int], float]
    guess: Callable[[int, int], Tensor]  # (num, T) -> the input-blind prediction (logits or values)
    summary: str

    def criterion(self, prediction: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
        """The task's loss as a tensor: mean squared error, or cross-entropy per answer in nats
        (``prediction`` holds logits (N, C) or (N, L, C))."""
        if self.loss == "mse":
            return F.mse_loss(prediction, y, reduction=reduction)
        logits = prediction.reshape(-1, prediction.shape[-1])  # (N * L, C)
        return F.cross_entropy(logits, y.reshape(-1), reduction=reduction)

    def chance(self, y: Tensor, length: int) -> float:
        """Loss of the input-blind guess on targets ``y`` for sequences of task length ``length``."""
        return score(self, self.guess(y.shape[0], length), y)


def score(task: SyntheticTask, prediction: Tensor, y: Tensor) -> float:
    """The task's loss as a float (see ``SyntheticTask.criterion``)."""
    return float(task.criterion(prediction, y))


def _constant(value: Callable[[int], float]) -> Callable[[int, int], Tensor]:
    return lambda num, length: torch.full((num, 1), float(value(length)))


def _copy_guess(num: int, length: int) -> Tensor:
    logits = torch.full((num, length + 2 * COPY_LENGTH, COPY_SYMBOLS + 1), -1e9)  # (N, T+20, 9)
    logits[:, : length + COPY_LENGTH, 0] = 0.0  # blank, surely
    logits[:, -COPY_LENGTH:, 1:] = 0.0  # uniform over the 8 symbols
    return logits


def _coin(num: int, length: int) -> Tensor:
    return torch.zeros(num, 2)  # equal logits: probability 1/2 each


SYNTHETIC_TASKS: dict[str, SyntheticTask] = {
    "adding": SyntheticTask("adding", adding_problem, 2, 1, "mse", False, lambda T: ADDING_BASELINE_MSE,
                   _constant(lambda T: 1.0), "sum of the two marked values (Le et al. 2015)"),
    "copying": SyntheticTask("copying", copying_memory, COPY_SYMBOLS + 2, COPY_SYMBOLS + 1, "cross_entropy", True,
                    copying_baseline, _copy_guess, "repeat 10 symbols after T steps (Arjovsky et al. 2016)"),
    "parity": SyntheticTask("parity", parity, 1, 2, "cross_entropy", False, lambda T: math.log(2), _coin,
                   "parity of a bit string"),
    "counting": SyntheticTask("counting", counting_ones, 1, 1, "mse", False, lambda T: T / 4.0,
                     _constant(lambda T: T / 2.0), "number of ones in a bit string"),
    "zeros_even": SyntheticTask("zeros_even", zeros_even, 1, 2, "cross_entropy", False, lambda T: math.log(2), _coin,
                       "is the number of zeros even"),
}


def synthetic_task(name: str) -> SyntheticTask:
    """The synthetic task called ``name``; raises ``ValueError`` listing the known tasks otherwise."""
    if name not in SYNTHETIC_TASKS:
        raise ValueError(f"unknown synthetic task {name!r}; expected one of: {', '.join(map(repr, SYNTHETIC_TASKS))}")
    return SYNTHETIC_TASKS[name]
