"""``carousel train copying | parity | counting | zeros_even``: the long-memory tasks of ``carousel.data.tasks``.

Each is scored by its own loss (cross-entropy per answer, or MSE) and by ``vs_chance``, the loss
divided by the chance baseline of ``carousel.data.tasks`` (below 1: the model uses its input);
classification tasks also report accuracy, copying the share of recalled symbols. The adding
problem is ``carousel train adding`` (``adding.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from ...data.tasks import COPY_LENGTH, SyntheticTask, synthetic_task
from ...models import RecurrentModel
from ..batches import SeededBatches, generated_batches
from ..config import option
from ..registry import register_task
from ..task import Shard, StepOutput, Task
from .adding import AddingOptions

VALID_SEED, TEST_SEED = 2_000_003, 2_000_033  # fixed: every run is scored on the same sequences


@dataclass(frozen=True)
class MemoryOptions(AddingOptions):
    length: int = option(100, "task length T (the copying delay; the bit-string length)")

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError(f"expected length >= 1, got {self.length}")
        self.check_sizes()


class MemoryTask(Task):
    """Shared body; subclasses name the synthetic task (``spec``)."""

    Options = MemoryOptions
    unit = "seq"
    spec_name: ClassVar[str] = ""

    @property
    def spec(self) -> SyntheticTask:
        return synthetic_task(self.spec_name)

    def build_model(self) -> nn.Module:
        o, s = self.options, self.spec
        readout = "all" if s.every_step else "last"
        return RecurrentModel(o.cell, s.input_size, o.hidden, s.output_size, layers=o.layers, dropout=o.dropout,
                              readout=readout, backend=o.backend)

    def train_batches(self, batch_size: int, shard: Shard, seed: int) -> SeededBatches:
        return generated_batches(self.spec.generate, batch_size, self.options.length, shard.rows(batch_size), seed)

    def step(self, model: nn.Module, batch, state) -> StepOutput:
        x, y = batch
        prediction, _ = model(x)
        return StepOutput(self.spec.criterion(prediction, y), None, x.shape[0])

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        seed = VALID_SEED if self.check_split(split) == "valid" else TEST_SEED
        spec, T = self.spec, self.options.length
        x, y = spec.generate(self.options.eval_size, T, seed=seed)
        device = next(model.parameters()).device
        total, right, answers = 0.0, 0, 0
        for xb, yb in zip(x.split(500), y.split(500)):
            prediction, _ = model(xb.to(device))
            yb = yb.to(device)
            total += float(spec.criterion(prediction, yb, reduction="sum"))
            if spec.loss == "cross_entropy":
                if spec.every_step:  # copying: only the recalled symbols count
                    prediction, yb = prediction[:, -COPY_LENGTH:], yb[:, -COPY_LENGTH:]
                right += int((prediction.argmax(-1) == yb).sum())
                answers += yb.numel()
        per = y.numel() if spec.loss == "cross_entropy" else x.shape[0]
        loss = total / per
        metrics = {"loss": loss, "vs_chance": loss / spec.baseline(T)}
        if answers:
            metrics["accuracy"] = right / answers
        return metrics


def _register(name: str, doc: str) -> type[MemoryTask]:
    cls = type(f"{name.title().replace('_', '')}Task", (MemoryTask,), {"name": name, "spec_name": name, "__doc__": doc,
                                                                      "__module__": __name__})
    return register_task(cls)


CopyingTask = _register("copying", "Copying memory (Arjovsky et al. 2016): recall 10 symbols after T steps; chance 10 log 8 / (T + 20).")
ParityTask = _register("parity", "Parity of a bit string of length T; cross-entropy, chance log 2.")
CountingTask = _register("counting", "Count the ones in a bit string of length T; MSE, chance T / 4.")
ZerosEvenTask = _register("zeros_even", "Is the number of zeros in a bit string even? cross-entropy, chance log 2.")
