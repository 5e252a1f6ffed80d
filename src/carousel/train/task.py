"""What a task gives the trainer: a model, its training batches, a loss, and an evaluation.

A task is a subclass of ``Task`` registered by name (``@register_task``). The trainer never
knows what the data is; the task never knows about optimisers, clipping or checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, NamedTuple, Protocol

from torch import Tensor, nn


@dataclass(frozen=True)
class NoOptions:
    """A task without options."""


class Shard(NamedTuple):
    """This process's place among ``world_size`` data-parallel processes (``rank`` 0 in a single process)."""

    rank: int = 0
    world_size: int = 1

    def local_batch(self, batch_size: int) -> int:
        """This rank's share of a global batch; the global batch must split evenly."""
        if batch_size % self.world_size:
            raise ValueError(
                f"batch_size {batch_size} does not split evenly over {self.world_size} processes; "
                f"use a multiple of {self.world_size}"
            )
        return batch_size // self.world_size

    def rows(self, batch_size: int) -> slice:
        """The rows of a global batch of ``batch_size`` that belong to this rank."""
        b = self.local_batch(batch_size)
        return slice(self.rank * b, (self.rank + 1) * b)


class Batches(Protocol):
    """Training batches that know their position: ``next()`` plus a JSON-able ``state_dict``.

    Resuming calls ``load_state_dict`` with what ``state_dict`` returned, and the next batch must
    be the one the uninterrupted run would have drawn (``SeededBatches``, ``ShuffledBatches`` and
    ``StreamBatches`` are ready-made).
    """

    def __iter__(self) -> Iterator[Any]: ...

    def __next__(self) -> Any: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class StepOutput(NamedTuple):
    """One training step's result: the loss to minimise (a scalar mean over this rank's batch),
    the recurrent state to carry into the next batch (TBPTT; None otherwise), how many items
    (sequences or tokens) the step saw, and extra float metrics to log."""

    loss: Tensor
    state: Any = None
    items: int = 0
    metrics: dict[str, float] = {}


class Task:
    """Base class of a trainable task. Subclasses set the class attributes and the four methods.

    * ``name``: the registry name (``carousel train NAME``); ``Options``: a frozen dataclass whose
      fields, declared with ``carousel.train.option``, are the task's command-line options;
    * ``monitor`` / ``mode``: the validation metric that decides the best checkpoint and early
      stopping, and whether lower (``"min"``) or higher (``"max"``) is better;
    * ``unit``: what ``StepOutput.items`` counts, shown in the throughput (``"seq"``, ``"tok"``);
    * ``splits``: the evaluation splits ``evaluate`` accepts, the validation split first.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    monitor: ClassVar[str] = "loss"
    mode: ClassVar[str] = "min"
    unit: ClassVar[str] = "seq"
    splits: ClassVar[tuple[str, ...]] = ("valid", "test")

    def __init__(self, options: Any = None) -> None:
        options = self.Options() if options is None else options
        if not isinstance(options, self.Options):
            raise TypeError(f"task {self.name!r} expects options of type {self.Options.__name__}, got {type(options).__name__}")
        self.options = options

    @classmethod
    def summary(cls) -> str:
        """One line for ``--help``: the docstring's first line."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    def build_model(self) -> nn.Module:
        """A fresh model (the trainer seeds torch before calling). Its ``forward`` is what ``step`` calls."""
        raise NotImplementedError

    def train_batches(self, batch_size: int, shard: Shard, seed: int) -> Batches:
        """Training batches for this rank, drawn from ``seed``: its share (``shard.rows(batch_size)``)
        of each global batch, so that N processes together see what one process would."""
        raise NotImplementedError

    def step(self, model: nn.Module, batch: Any, state: Any) -> StepOutput:
        """The loss of ``model`` on ``batch``. Call the model only as ``model(...)``: under
        distributed training it is wrapped in ``DistributedDataParallel``. ``state`` is what the
        previous step returned in ``StepOutput.state``, detached (None at the start)."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        """Metrics of ``model`` (in evaluation mode, under ``torch.no_grad``) on ``split``; must hold
        ``monitor``. The evaluation data should not depend on the training seed, so runs compare."""
        raise NotImplementedError

    def plot(self, model: nn.Module, path: Any, split: str = "valid") -> Any:
        """Optional: a picture of what ``model`` does on ``split`` (an attention map, completed images,
        the expert that wins at each step) saved as a PNG at ``path``; returns the path. Tasks that
        offer one override this; ``carousel report`` puts it on the run's page. Raises
        ``NotImplementedError`` here (``has_picture`` says whether a task overrides it)."""
        raise NotImplementedError(f"task {self.name!r} draws no picture")

    @classmethod
    def has_picture(cls) -> bool:
        """Whether the task draws a picture of its model (overrides ``plot``)."""
        return cls.plot is not Task.plot

    def check_split(self, split: str) -> str:
        if split not in self.splits:
            raise ValueError(f"task {self.name!r} has no split {split!r}; expected one of: {', '.join(self.splits)}")
        return split
