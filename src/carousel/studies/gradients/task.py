"""One run of the gradients study as a trainer task: a line-up model on a synthetic task at one length.

The model is ``carousel.models.RecurrentModel`` with the line-up's cell (one layer, a linear head
read at the last step, or at every step for copying). Training batch ``i`` is generated from seed
``seed * 10_000_019 + i + 1``; the test set (``test_size`` sequences, seed ``1_000_003 + T``) is the
study's only evaluation split, so the trainer's evaluations trace the test loss along the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from ...data.tasks import COPY_LENGTH, SyntheticTask, score, synthetic_task
from ...models import RecurrentModel
from ...train import SeededBatches, Shard, StepOutput, Task, option
from .lineup import STUDY_MODELS, study_model

STUDY_TASKS = ("adding", "copying")


@dataclass(frozen=True)
class StudyRunOptions:
    model: str = option("lstm", "line-up model", choices=lambda: tuple(STUDY_MODELS))
    task: str = option("adding", "synthetic task", choices=STUDY_TASKS)
    length: int = option(100, "task length T")
    hidden: int = option(32, "hidden units")
    test_size: int = option(1000, "test sequences")


class StudyTask(Task):
    """A line-up model on the adding or copying task (one run of ``carousel study gradients``)."""

    name = "gradients-study"
    Options = StudyRunOptions
    splits = ("test",)

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self._test: tuple[Tensor, Tensor] | None = None

    @property
    def spec(self) -> SyntheticTask:
        return synthetic_task(self.options.task)

    def build_model(self) -> nn.Module:
        spec, o = self.spec, self.options
        readout = "all" if spec.every_step else "last"
        return RecurrentModel(study_model(o.model).build, spec.input_size, o.hidden, spec.output_size, readout=readout)

    def train_batches(self, batch_size: int, shard: Shard, seed: int) -> SeededBatches:
        rows, T, generate = shard.rows(batch_size), self.options.length, self.spec.generate
        return SeededBatches(lambda i: tuple(t[rows] for t in generate(batch_size, T, seed=seed * 10_000_019 + i + 1)))

    def step(self, model: nn.Module, batch: Any, state: Any) -> StepOutput:
        x, y = batch
        prediction, _ = model(x)
        return StepOutput(self.spec.criterion(prediction, y), None, x.shape[0])

    def test_set(self) -> tuple[Tensor, Tensor]:
        if self._test is None:
            self._test = self.spec.generate(self.options.test_size, self.options.length, seed=1_000_003 + self.options.length)
        return self._test

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        """Test loss (infinite when not finite) and, for copying, the share of the 10 recalled symbols predicted right."""
        self.check_split(split)
        x, y = self.test_set()
        prediction, _ = model(x)
        loss = score(self.spec, prediction, y)
        metrics = {"loss": loss if math.isfinite(loss) else math.inf}
        if self.spec.name == "copying":
            metrics["recall"] = float((prediction[:, -COPY_LENGTH:].argmax(-1) == y[:, -COPY_LENGTH:]).double().mean())
        return metrics

    def diagnostic_loss(self, model: nn.Module, seed: int, size: int):
        """``() -> loss`` of ``model`` on a fixed batch of ``size`` sequences (for diagnostics snapshots)."""
        x, y = self.spec.generate(size, self.options.length, seed=seed)
        return lambda: self.spec.criterion(model(x)[0], y)
