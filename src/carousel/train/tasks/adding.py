"""``carousel train adding``: the adding problem with any carousel cell (the registry's worked example)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..._checks import check_rate
from ...cells import cell_names
from ...data.tasks import ADDING_BASELINE_MSE, adding_problem
from ...models import RecurrentModel
from ...runners import backend_names
from ..batches import SeededBatches, generated_batches
from ..config import option
from ..registry import register_task
from ..task import Shard, StepOutput, Task

VALID_SEED, TEST_SEED = 1_000_003, 1_000_033  # fixed: every run is scored on the same sequences


@dataclass(frozen=True)
class AddingOptions:
    length: int = option(50, "sequence length T")
    cell: str = option("lstm", "recurrent cell", choices=cell_names)
    hidden: int = option(64, "hidden units per layer")
    layers: int = option(1, "stacked recurrent layers")
    dropout: float = option(0.0, "variational dropout between layers and before the head")
    backend: str = option("auto", "runner backend ('loop': the old name of explicit-else-reference)", choices=lambda: backend_names(renamed=True))
    eval_size: int = option(1000, "sequences in the validation and test sets")

    def __post_init__(self) -> None:
        if self.length < 2:
            raise ValueError(f"expected length >= 2, got {self.length}")
        self.check_sizes()

    def check_sizes(self) -> None:
        for name in ("hidden", "layers", "eval_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"expected {name} >= 1, got {getattr(self, name)}")
        check_rate(self.dropout, "dropout")


@register_task
class AddingTask(Task):
    """Adding problem (Hochreiter & Schmidhuber 1997): sum the two marked numbers; MSE, chance 0.167."""

    name = "adding"
    Options = AddingOptions
    unit = "seq"

    def build_model(self) -> nn.Module:
        o = self.options
        return RecurrentModel(o.cell, 2, o.hidden, 1, layers=o.layers, dropout=o.dropout, readout="last", backend=o.backend)

    def train_batches(self, batch_size: int, shard: Shard, seed: int) -> SeededBatches:
        return generated_batches(adding_problem, batch_size, self.options.length, shard.rows(batch_size), seed)

    def step(self, model: nn.Module, batch, state) -> StepOutput:
        x, y = batch
        prediction, _ = model(x)
        return StepOutput(nn.functional.mse_loss(prediction, y), None, x.shape[0])

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        seed = VALID_SEED if self.check_split(split) == "valid" else TEST_SEED
        x, y = adding_problem(self.options.eval_size, self.options.length, seed=seed)
        device = next(model.parameters()).device
        losses = []
        for xb, yb in zip(x.split(500), y.split(500)):
            prediction, _ = model(xb.to(device))
            losses.append(nn.functional.mse_loss(prediction, yb.to(device), reduction="sum"))
        mse = float(torch.stack(losses).sum()) / x.shape[0]
        return {"loss": mse, "vs_chance": mse / ADDING_BASELINE_MSE}
