"""Tiny tasks for the trainer tests (not registered: tests build them directly).

* ``ToyStream``: next-step regression over a float corpus of documents of different lengths,
  trained with TBPTT windows (carried state, per-stream resets, optional random lengths, dropout);
* ``Flaky``: the adding task whose loss is made non-finite at chosen steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from carousel.models import RecurrentModel
from carousel.train import (
    StepOutput,
    StreamBatches,
    StreamOptions,
    Streams,
    Task,
    option,
    read_metrics,
    run_window,
)
from carousel.train.tasks.adding import AddingOptions, AddingTask


def corpus(seed: int, docs: int = 9, features: int = 3) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(20, 60, (docs,), generator=g).tolist()
    return [torch.randn(n, features, generator=g).cumsum(0) * 0.1 for n in lengths]


@dataclass(frozen=True)
class ToyStreamOptions(StreamOptions):
    cell: str = option("lstm", "cell")
    hidden: int = option(8, "hidden units")
    dropout: float = option(0.0, "dropout")


class ToyStream(Task):
    """Next-step regression over float streams (toy)."""

    name = "toystream"
    Options = ToyStreamOptions
    unit = "tok"

    def build_model(self) -> nn.Module:
        o = self.options
        return RecurrentModel(o.cell, 3, o.hidden, 3, readout="all", dropout=o.dropout, layers=2)

    def train_batches(self, batch_size, shard, seed):
        docs = corpus(0)
        streams = Streams.from_documents([d[:-1] for d in docs], [d[1:] for d in docs], batch_size, shard)
        o = self.options
        return StreamBatches(streams, o.bptt, o.bptt_back, random=o.bptt_random, seed=seed)

    def step(self, model, window, state) -> StepOutput:
        out, carry = run_window(model, window, state)
        pred, target = out[:, window.loss_from :], window.y[:, window.loss_from :]
        return StepOutput(nn.functional.mse_loss(pred, target), carry, target.shape[0] * target.shape[1])

    def evaluate(self, model, split):
        d = corpus(1, docs=2)[0]
        out, _ = model(d[None, :-1])
        return {"loss": float(nn.functional.mse_loss(out[0], d[1:]))}


@dataclass(frozen=True)
class FlakyOptions(AddingOptions):
    bad_steps: str = option("", "comma-separated 1-based steps made non-finite")
    what: str = option("loss", "what is non-finite: the loss, or only the gradient", choices=("loss", "grad"))


class Flaky(AddingTask):
    """The adding problem with non-finite losses at chosen steps."""

    name = "flaky"
    Options = FlakyOptions

    def __init__(self, options=None):
        super().__init__(options)
        self.calls = 0
        self.bad = {int(s) for s in self.options.bad_steps.split(",") if s}

    def step(self, model, batch, state):
        self.calls += 1
        out = super().step(model, batch, state)
        if self.calls in self.bad:
            if self.options.what == "loss":
                return out._replace(loss=out.loss * float("nan"))
            w = next(model.parameters())  # d sqrt(u)/du is infinite at u = 0: a finite loss, a nan gradient
            return out._replace(loss=out.loss + torch.sqrt((w * 0).abs().sum()))
        return out


def last_eval(run_dir) -> dict:
    """The last evaluation record a run wrote to its ``metrics.jsonl``."""
    return [r for r in read_metrics(Path(run_dir) / "metrics.jsonl") if r.get("kind") == "eval"][-1]


def fit_and_compare(task, config, split: str = "valid") -> tuple[dict, dict]:
    """``task``'s metrics on ``split`` before and after a ``Trainer(task, config).fit()`` (each in
    evaluation mode, without gradients): what the short "it learns" runs of the task tests compare."""
    from carousel.train import Trainer

    trainer = Trainer(task, config)
    scores = []
    for fit in (None, trainer.fit):
        if fit is not None:
            fit()
        trainer.model.eval()
        with torch.no_grad():
            scores.append(task.evaluate(trainer.model, split))
    return scores[0], scores[1]
