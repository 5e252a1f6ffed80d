"""``carousel train ucr``: classify the time series of a UCR/UEA set with a recurrent network.

The data are the official train / test splits of ``carousel.data.ucr.UCR_DATASETS`` (GunPoint,
ArrowHead, ItalyPowerDemand, OSULeaf: univariate, equal length; JapaneseVowels: 12 channels, 7 to
29 steps; BasicMotions: 6 channels), read from the ``.ts`` files of the pinned ``aeon==1.6.0``
wheel (``--data-dir`` names another folder of ``<Name>/<Name>_TRAIN.ts`` and ``_TEST.ts``). The
model is ``carousel.models.SequenceClassifier``: a stack of ``--layers`` recurrent layers of
``--cell`` (both ways with ``--bidirectional``), a ``--readout`` over the valid steps (variable
lengths go in as ``lengths``) and a linear head; loss: cross-entropy (nats per series).

Choices, each an option:

* **validation** (``--valid-fraction``, 0.2): the archive gives only train and test, so ``valid`` is
  a fixed stratified part of the training file (the same cases for every seed and run, drawn
  from ``VALID_SEED``: ``round(fraction * n_c)`` of each class c, at least one and never all),
  and the model trains on the rest; the best checkpoint is chosen on it, never on ``test``.
  ``0`` trains on the whole training file and makes ``valid`` the training file itself.
  ``--folds K --fold k`` holds out fold k of a stratified K-fold partition of the training file
  instead (``stratified_folds``), for choosing settings by cross-validation on the training file
  alone (``examples/ucr_table.py --cv K`` runs all K folds).
* **normalisation** (``--normalise``): ``series``, z-normalise every series and channel over its
  own valid steps (the UCR convention; the univariate files are already so); ``channel``,
  z-normalise every channel with the mean and standard deviation of the training file (keeps the
  amplitude that tells "running" from "standing" in BasicMotions); ``none``; ``auto`` (default):
  ``series`` for univariate sets, ``channel`` for multivariate ones.
* **augmentation** of the training batches only, because the training sets are small (36 to 270
  cases) and a recurrent network overfits them: ``--jitter s`` adds N(0, s^2) noise to every value,
  ``--scale s`` multiplies each series and channel by 1 + N(0, s^2) (both from Um et al. 2017,
  "Data augmentation of wearable sensor data for Parkinson's disease monitoring using
  convolutional neural networks", sec. 2.2), ``--crop f`` trains on a random window of (1 - f) of
  each series ("window slicing", Le Guennec, Malinowski & Tavenard 2016, "Data augmentation for
  time series classification using convolutional neural networks"; evaluated on the whole series).
  ``--roll`` starts each series at a random step and wraps round its end, and ``--mirror`` reverses
  half of them: a series traced along the outline of a shape (OSULeaf's leaves, ArrowHead's
  arrowheads) starts at an arbitrary point of a closed curve and may run either way round, so
  the class does not change under a circular shift or a reversal (the rotation and mirror
  invariance of Keogh, Wei, Xi, Lee & Vlachos 2006, "LB_Keogh supports exact indexing of shapes
  under rotation invariance with arbitrary representations and distance measures").
  The draws are a pure function of (seed, step), so a resumed run sees the same batches.
* **derivative** (``--derivative``): beside each channel its first difference ``x_t - x_{t-1}`` (0 at
  the first step), computed after normalisation and augmentation, doubling the channels: the
  shape of a series is in its slopes, as derivative DTW uses them (Keogh & Pazzani 2001,
  "Derivative Dynamic Time Warping"; ``DDTW_Rn_1NN`` of the bake-off table).
* **frames** (``--patch P``): the network reads P consecutive steps at once (an input of C * P
  values per step, the last frame padded with zeros), so a 427-step OSULeaf series takes 43 steps.
* **convolutional branch** (``--fcn``): the model is ``carousel.models.FCNClassifier`` (LSTM-FCN,
  Karim et al. 2018, fig. 1) instead: beside the recurrent stack, blocks of a 1-D convolution along
  time, batch normalisation and a ReLU (``--fcn-filters``, default 128,256,128, and
  ``--fcn-kernels`` 8,5,3: the FCN of Wang, Yan & Oates 2017), averaged over the valid steps; the
  two feature vectors are concatenated into the linear head. The convolutions read the series
  step by step (with the derivative channels when asked); ``--patch`` frames only the recurrent
  branch's input. ``--shuffle`` (with ``--fcn``, patch 1) makes the recurrent branch read each
  channel as one step of all its values, the "dimension shuffle" of Karim et al. (sec. III-A),
  padded with zeros to the longest series of the train and test files. ``--readout-dropout p``
  drops the recurrent readout alone before the concatenation (their fig. 1: 0.8).

``evaluate`` reports ``accuracy`` and ``loss`` (mean cross-entropy, nats) on ``valid``, ``test``
(the official test file) or ``train`` (the cases trained on), and the monitor ``score`` =
``accuracy - min(loss, 9.99) / 1000``: the accuracy with ties broken by the lower loss. A validation
part of 10 cases reaches accuracy 1 early, and the plain accuracy (the trainer keeps the first
best) would then freeze the checkpoint while the margins still grow; the tie-break moves the
score by less than 0.01, less than one case of a validation part of up to 100 cases. ``RECOMMENDED_GRU``
and ``RECOMMENDED_FCN`` hold the command-line settings of the recurrent classifier and of LSTM-FCN per
dataset, ``RECOMMENDED`` the better of the two on the validation part (see their comments).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..._checks import check_number, check_rate, check_size
from ...cells import cell_names
from ...data.ucr import UCR_DATASETS, UCRSplit, load_ucr
from ...models import FCNClassifier, SequenceClassifier
from ...models.fcn import to_frames
from ...models.heads import READOUTS
from ..batches import SeededBatches, derive_seed
from ..config import option
from ..registry import register_task
from ..task import Shard, StepOutput, Task

NORMALISATIONS = ("auto", "series", "channel", "none")
VALID_SEED = 5_000_011  # fixed: every run holds out the same validation cases
EVAL_CHUNK = 256  # series per evaluation batch
_EPS = 1e-8

# The recurrent classifier's settings per dataset (task and trainer options as on the command
# line). Common ground: a GRU of 64 units, mean readout, jitter 0.05 and scale 0.1, Adam at 0.003,
# 16-32 series a batch, the validation part scored every 25 steps, frames of 4-8 steps for the
# series of 100 steps or more (set beforehand, to shorten them). Then, chosen among a few two-seed runs of 600 steps by the
# validation loss of their best checkpoints (the validation accuracy was 1 almost everywhere):
# both directions for ItalyPowerDemand (24 steps), the derivative and window cropping for ArrowHead.
RECOMMENDED_GRU: dict[str, list[str]] = {
    "GunPoint": ["--cell", "gru", "--hidden", "64", "--readout", "mean", "--patch", "5", "--jitter", "0.05", "--scale", "0.1",
                 "--steps", "600", "--batch-size", "16", "--lr", "0.003", "--eval-every", "25"],
    "ArrowHead": ["--cell", "gru", "--hidden", "64", "--readout", "mean", "--patch", "8", "--derivative", "--crop", "0.1",
                  "--jitter", "0.05", "--scale", "0.1", "--steps", "600", "--batch-size", "16", "--lr", "0.003", "--eval-every", "25"],
    "ItalyPowerDemand": ["--cell", "gru", "--hidden", "64", "--bidirectional", "--readout", "mean", "--jitter", "0.05",
                         "--scale", "0.1", "--steps", "600", "--batch-size", "16", "--lr", "0.003", "--eval-every", "25"],
    "OSULeaf": ["--cell", "gru", "--hidden", "64", "--readout", "mean", "--patch", "8", "--jitter", "0.05", "--scale", "0.1",
                "--steps", "800", "--batch-size", "32", "--lr", "0.003", "--eval-every", "25"],
    "JapaneseVowels": ["--cell", "gru", "--hidden", "64", "--readout", "mean", "--jitter", "0.05", "--scale", "0.1",
                       "--steps", "800", "--batch-size", "32", "--lr", "0.003", "--eval-every", "25"],
    "BasicMotions": ["--cell", "gru", "--hidden", "64", "--readout", "mean", "--patch", "4", "--jitter", "0.05", "--scale", "0.1",
                     "--steps", "400", "--batch-size", "16", "--lr", "0.003", "--eval-every", "25"],
}


# LSTM-FCN (--fcn) settings per dataset: the conv branch of Wang et al. (128-256-128 filters of widths
# 8-5-3) beside an LSTM of 64 units (Karim et al. 2018), mean readout, jitter 0.05 and scale 0.1, Adam
# at 0.003 on a cosine, 16 series a batch, the validation part scored every 25 steps; the steps are
# what the runs could afford on 2 shared cores (the 5-seed table of 2026-11-30 ran with a --minutes
# budget under these caps). The recurrent branch reads the series in time (patch 1) or dimension-
# shuffled (--shuffle), whichever scored better on the validation part in one seed of each (accuracy
# first, then loss; the validation accuracy was 1 for both except on OSULeaf, 0.88 in time against
# 0.71 shuffled): shuffled for ArrowHead and BasicMotions, in time for the others. For ArrowHead a 4-fold
# cross-validation on the training file (examples/ucr_table.py --cv 4, 2000 steps) agreed: shuffled 0.889 (loss 0.32),
# shuffled with --crop 0.1 0.889 (0.40), in time 0.889 against 1.000 on the first fold.
_FCN_COMMON = ["--fcn", "--cell", "lstm", "--hidden", "64", "--readout", "mean", "--jitter", "0.05", "--scale", "0.1",
               "--batch-size", "16", "--lr", "0.003", "--schedule", "cosine", "--eval-every", "25"]
RECOMMENDED_FCN: dict[str, list[str]] = {
    "GunPoint": [*_FCN_COMMON, "--steps", "1000"],
    "ArrowHead": [*_FCN_COMMON, "--shuffle", "--steps", "600"],
    "ItalyPowerDemand": [*_FCN_COMMON, "--steps", "600"],
    "OSULeaf": [*_FCN_COMMON, "--steps", "1500"],
    "JapaneseVowels": [*_FCN_COMMON, "--steps", "800"],
    "BasicMotions": [*_FCN_COMMON, "--shuffle", "--steps", "400"],
}

# The settings ``carousel train ucr`` recommends per dataset: whichever of RECOMMENDED_GRU and
# RECOMMENDED_FCN scored better on the validation part (never on test), by the mean over 5 seeds of
# the best checkpoints' validation accuracy, then loss (2026-11-30, examples/ucr_table.py). LSTM-FCN
# won on accuracy on OSULeaf (0.87 against 0.76) and JapaneseVowels (1.0 against 0.99) and, at
# accuracy 1 for both, on loss on ArrowHead, ItalyPowerDemand and BasicMotions; on GunPoint both
# were at accuracy 1 and the GRU's loss was lower (0.0010 against 0.0012 nats), so it stays.
RECOMMENDED: dict[str, list[str]] = {name: RECOMMENDED_GRU[name] if name == "GunPoint" else RECOMMENDED_FCN[name]
                                     for name in RECOMMENDED_GRU}


@dataclass(frozen=True)
class UCROptions:
    dataset: str = option("GunPoint", "UCR/UEA dataset (official train/test split)", choices=UCR_DATASETS)
    data_dir: str = option("", "folder holding <Name>/<Name>_TRAIN.ts and _TEST.ts ('': the files of the aeon package)")
    cell: str = option("gru", "recurrent cell", choices=cell_names)
    hidden: int = option(64, "hidden units per layer (per direction)")
    layers: int = option(1, "recurrent layers")
    bidirectional: bool = option(False, "read every series both ways (concatenated directions)")
    readout: str = option("mean", "how the top layer's states become one vector per series", choices=READOUTS)
    dropout: float = option(0.1, "variational dropout between the layers and before the head")
    normalise: str = option("auto", "series: z-normalise each series and channel; channel: by the training file's channel "
                            "statistics; none; auto: series for univariate sets, channel for multivariate ones", choices=NORMALISATIONS)
    derivative: bool = option(False, "add each channel's first difference x_t - x_(t-1) as a channel")
    patch: int = option(1, "read P consecutive steps as one input step (C * P values)")
    jitter: float = option(0.0, "training augmentation: standard deviation of Gaussian noise added to every value")
    scale: float = option(0.0, "training augmentation: standard deviation s of a factor 1 + N(0, s^2) per series and channel")
    crop: float = option(0.0, "training augmentation: train on a random window of (1 - crop) of each series")
    roll: bool = option(False, "training augmentation: shift each series circularly by a uniform random number of steps "
                        "(outlines of shapes, whose starting point is arbitrary)")
    mirror: bool = option(False, "training augmentation: reverse each series in time with probability 1/2 (an outline "
                          "traced the other way round)")
    valid_fraction: float = option(0.2, "fixed stratified part of the training file held out as 'valid' (0: valid is the training file)")
    folds: int = option(0, "cross-validation: split the training file into this many stratified folds and hold out --fold "
                        "as 'valid' (0: no folds, --valid-fraction holds out)")
    fold: int = option(0, "with --folds K: the fold held out as 'valid', 0 to K - 1")
    fcn: bool = option(False, "LSTM-FCN: add a fully convolutional branch (conv, batch norm, ReLU blocks, then the average over "
                       "time) beside the recurrent one")
    fcn_filters: str = option("128,256,128", "with --fcn: filters of each conv block, comma-separated")
    fcn_kernels: str = option("8,5,3", "with --fcn: kernel width of each conv block, comma-separated (one per block)")
    shuffle: bool = option(False, "with --fcn: the recurrent branch reads each channel as one step holding its whole series "
                           "(dimension shuffle; needs patch 1)")
    readout_dropout: float = option(0.0, "with --fcn: dropout on the recurrent branch's readout alone, before it joins the "
                                    "conv features (Karim et al. 2018 use 0.8)")

    def __post_init__(self) -> None:
        for name in ("hidden", "layers", "patch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"expected {name} >= 1, got {value!r}")
        for name in ("bidirectional", "derivative", "fcn", "shuffle", "roll", "mirror"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"expected {name} to be True or False, got {getattr(self, name)!r}")
        check_rate(self.dropout, "dropout")
        check_rate(self.readout_dropout, "readout_dropout")
        check_number(self.jitter, "jitter", low=0.0)
        check_number(self.scale, "scale", low=0.0)
        if isinstance(self.crop, bool) or not isinstance(self.crop, (int, float)) or not 0.0 <= self.crop < 1.0:
            raise ValueError(f"expected crop in [0, 1) (the fraction of each series cut away), got {self.crop!r}")
        if isinstance(self.valid_fraction, bool) or not isinstance(self.valid_fraction, (int, float)) or not 0.0 <= self.valid_fraction <= 0.5:
            raise ValueError(f"expected valid_fraction in [0, 0.5] (the share of the training file held out), got {self.valid_fraction!r}")
        for name in ("folds", "fold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"expected {name} >= 0, got {value!r}")
        if self.folds == 1:
            raise ValueError("expected folds 0 (no cross-validation) or at least 2, got 1")
        if self.fold >= max(self.folds, 1):
            raise ValueError(f"expected fold in 0..{max(self.folds - 1, 0)} (with folds {self.folds}), got {self.fold}")
        filters, kernels = parse_sizes(self.fcn_filters, "fcn_filters"), parse_sizes(self.fcn_kernels, "fcn_kernels")
        if len(filters) != len(kernels):
            raise ValueError(f"expected one kernel width per conv block, got fcn_filters {self.fcn_filters!r} ({len(filters)} blocks) "
                             f"and fcn_kernels {self.fcn_kernels!r} ({len(kernels)})")
        if self.shuffle and not self.fcn:
            raise ValueError("expected shuffle only with fcn (the dimension shuffle is the recurrent branch of the LSTM-FCN model), "
                             "got shuffle=True and fcn=False")
        if self.readout_dropout and not self.fcn:
            raise ValueError("expected readout_dropout only with fcn (it drops the recurrent readout before it joins the conv "
                             f"features), got readout_dropout={self.readout_dropout} and fcn=False")
        if self.shuffle and self.patch != 1:
            raise ValueError(f"expected patch 1 with shuffle (a shuffled channel is already one step), got patch {self.patch}")
        if self.data_dir and not os.path.isdir(self.data_dir):
            raise ValueError(f"expected data_dir to be a folder holding <Name>/<Name>_TRAIN.ts, got {self.data_dir!r} (not a folder)")


def parse_sizes(text: str, name: str) -> tuple[int, ...]:
    """The integers >= 1 of a comma-separated ``text`` ("128,256,128"), or ``ValueError`` naming
    ``name`` and what was given."""
    if not isinstance(text, str):
        raise ValueError(f"expected {name} as comma-separated integers such as '128,256,128', got {type(text).__name__} {text!r}")
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"expected {name} as comma-separated integers such as '128,256,128', got {text!r}") from None
    try:
        return tuple(check_size(v, f"every entry of {name}") for v in values)
    except ValueError as err:
        raise ValueError(f"{err} (in {name}={text!r})") from None


def stratified_holdout(labels: Tensor, fraction: float, seed: int = VALID_SEED) -> tuple[Tensor, Tensor]:
    """Indices (kept, held out) of ``labels`` (N,): of each class c with n_c cases, ``round(fraction *
    n_c)`` are held out, at least 1 when n_c >= 2 and ``fraction`` > 0, never all n_c; drawn from
    ``seed``. Both sorted. ``fraction`` 0 holds out nothing."""
    g = torch.Generator().manual_seed(seed)
    kept, held = [], []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        members = members[torch.randperm(members.numel(), generator=g)]
        n = members.numel()
        k = 0 if fraction <= 0 or n < 2 else min(n - 1, max(1, round(fraction * n)))
        held.append(members[:k])
        kept.append(members[k:])
    return torch.cat(kept).sort().values, torch.cat(held).sort().values


def stratified_folds(labels: Tensor, folds: int, seed: int = VALID_SEED) -> list[Tensor]:
    """``folds`` disjoint sorted index tensors that together hold every case of ``labels`` (N,), each
    class spread evenly over them: the n_c cases of class c, in an order drawn from ``seed``, go to
    folds (s_c + i) mod ``folds`` for i = 0 .. n_c - 1, where s_c carries on from where the previous
    class stopped, so fold sizes differ by at most one. ``ValueError`` when ``folds`` < 2 or N < ``folds``."""
    n = labels.numel()
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2 or n < folds:
        raise ValueError(f"expected between 2 and {n} folds (the number of cases), got {folds!r}")
    g = torch.Generator().manual_seed(seed)
    parts: list[list[Tensor]] = [[] for _ in range(folds)]
    start = 0
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        members = members[torch.randperm(members.numel(), generator=g)]
        for i in range(folds):
            parts[(start + i) % folds].append(members[i::folds])
        start = (start + members.numel()) % folds
    return [torch.cat(p).sort().values for p in parts]


def z_normalise(x: Tensor, lengths: Tensor, mean: Tensor | None = None, std: Tensor | None = None) -> Tensor:
    """``x`` (N, T, C) padded series with ``lengths`` (N,), z-normalised over the valid steps: by
    ``mean`` and ``std`` (C,) when given, else per series and channel by its own mean and standard
    deviation (population; a constant series is only centred). Zero past each length."""
    mask = (torch.arange(x.shape[1]) < lengths[:, None]).unsqueeze(-1).to(x.dtype)  # (N, T, 1)
    if mean is None or std is None:
        n = lengths.to(x.dtype)[:, None, None]
        mean = (x * mask).sum(1, keepdim=True) / n  # (N, 1, C)
        std = (((x - mean) * mask) ** 2).sum(1, keepdim=True).div(n).sqrt()
    std = torch.where(std > _EPS, std, torch.ones_like(std))
    return (x - mean) / std * mask


def channel_statistics(x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation (C,) of every channel over all valid steps of ``x`` (N, T, C)."""
    mask = torch.arange(x.shape[1]) < lengths[:, None]  # (N, T)
    values = x[mask]  # (sum of lengths, C)
    return values.mean(0), values.std(0, unbiased=False)


def with_derivative(x: Tensor, lengths: Tensor) -> Tensor:
    """``x`` (N, T, C) with its first differences beside it: (N, T, 2C), ``[x_t, x_t - x_{t-1}]``
    with 0 as the difference of the first step; zero past each length."""
    diff = torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], dim=1)
    mask = (torch.arange(x.shape[1]) < lengths[:, None]).unsqueeze(-1).to(x.dtype)
    return torch.cat([x, diff * mask], dim=-1)


def augment(x: Tensor, lengths: Tensor, generator: torch.Generator, *, jitter: float, scale: float, crop: float,
            roll: bool = False, mirror: bool = False) -> tuple[Tensor, Tensor]:
    """A randomly changed copy of ``x`` (B, T, C) with ``lengths`` (B,) (see the module docstring):
    with ``roll``, each series of length n read from a uniform start s in [0, n) round its end
    (step t is step (t + s) mod n); with ``mirror``, about half of them (a fair coin each) read
    backwards (step t is step n - 1 - t); a window of ``max(1, round((1 - crop) * n))`` steps of
    each series at a uniform start, moved to step 0; each series and channel times
    1 + N(0, scale^2); N(0, jitter^2) added to each value. Zero past the new lengths, which it
    returns beside the values."""
    B, T, C = x.shape
    if roll or mirror:
        n = lengths[:, None]  # (B, 1), each >= 1
        t = torch.arange(T)[None, :].expand(B, T)
        if mirror:
            back = torch.rand(B, generator=generator) < 0.5
            t = torch.where(back[:, None], n - 1 - t, t)
        if roll:
            start = (torch.rand(B, generator=generator, dtype=torch.float64) * n[:, 0]).floor().to(torch.int64)
            t = t + start[:, None]
        index = torch.where(torch.arange(T)[None, :] < n, t.remainder(n), torch.arange(T)[None, :])  # padding stays put
        x = x.gather(1, index[..., None].expand(B, T, C))
    if crop > 0:
        new = torch.clamp(torch.round((1 - crop) * lengths.to(torch.float64)).to(torch.int64), min=1)
        start = (torch.rand(B, generator=generator, dtype=torch.float64) * (lengths - new + 1)).floor().to(torch.int64)
        index = (start[:, None] + torch.arange(T)).clamp(max=T - 1)  # (B, T)
        x, lengths = x.gather(1, index[..., None].expand(B, T, C)), new
    if scale > 0:
        x = x * (1 + scale * torch.randn(B, 1, C, generator=generator))
    if jitter > 0:
        x = x + jitter * torch.randn(x.shape, generator=generator)
    mask = (torch.arange(T) < lengths[:, None]).unsqueeze(-1).to(x.dtype)
    return x * mask, lengths


class _AugmentedBatches(SeededBatches):
    """Batches of B of the N training cases, each epoch in an order drawn from (seed, epoch). With
    B <= N, as ``ShuffledBatches``: an epoch is N // B batches, the rest of it dropped; with B > N
    (a training file smaller than the batch), batch i holds the places [i B, (i + 1) B) of the
    endless stream of epochs, some cases twice. Each batch's series are augmented from (seed, i)
    and cut into frames; this rank keeps its rows. Yields (x (b, T', C'), lengths (b,), labels (b,))."""

    def __init__(self, task: "UCRTask", batch_size: int, shard: Shard, seed: int) -> None:
        self.task, self.batch_size, self.rows, self.seed = task, batch_size, shard.rows(batch_size), seed
        self._orders: dict[int, Tensor] = {}
        super().__init__(self._batch)

    def _order(self, epoch: int, n: int) -> Tensor:
        if epoch not in self._orders:
            if len(self._orders) > 4:
                self._orders.clear()
            self._orders[epoch] = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(self.seed, epoch)))
        return self._orders[epoch]

    def _batch(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        o, (x, lengths, labels) = self.task.options, self.task.split_tensors("train")
        n, b = x.shape[0], self.batch_size
        if b <= n:
            epoch, j = divmod(i, n // b)
            index = self._order(epoch, n)[j * b:(j + 1) * b][self.rows]
        else:
            places = torch.arange(i * b, (i + 1) * b)[self.rows]
            index = torch.stack([self._order(int(p) // n, n)[int(p) % n] for p in places])
        g = torch.Generator().manual_seed(derive_seed(self.seed, i))
        xb, lb = augment(x[index], lengths[index], g, jitter=o.jitter, scale=o.scale, crop=o.crop, roll=o.roll,
                         mirror=o.mirror)
        xb, lb = to_frames(with_derivative(xb, lb) if o.derivative else xb, lb, self.task.patch)
        return xb[:, : int(lb.max())], lb, labels[index]


@register_task
class UCRTask(Task):
    """UCR/UEA time-series classification (official splits) with a recurrent SequenceClassifier (an
    FCNClassifier with ``--fcn``)."""

    name = "ucr"
    Options = UCROptions
    monitor = "score"
    mode = "max"
    unit = "seq"
    splits = ("valid", "test", "train")

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self._splits: dict[str, tuple[Tensor, Tensor, Tensor]] | None = None
        self._classes: tuple[str, ...] = ()
        self.normalisation = ""  # the normalisation used ("series", "channel" or "none"), once the data are read

    def _load(self) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
        o = self.options
        data_dir = o.data_dir or None
        train, test = load_ucr(o.dataset, "train", data_dir), load_ucr(o.dataset, "test", data_dir)
        if test.channels != train.channels:
            raise ValueError(f"{test.path} has {test.channels} channels but {train.path} has {train.channels}")
        mode = o.normalise if o.normalise != "auto" else ("series" if train.channels == 1 else "channel")
        stats = channel_statistics(train.x, train.lengths) if mode == "channel" else (None, None)

        def normal(s: UCRSplit) -> Tensor:
            return s.x if mode == "none" else z_normalise(s.x, s.lengths, *stats)

        if o.folds:
            if o.folds > len(train):
                raise ValueError(f"expected at most {len(train)} folds (the cases in the training file of {o.dataset}), got {o.folds}")
            folds = stratified_folds(train.labels, o.folds)
            held = folds.pop(o.fold)
            kept = torch.cat(folds).sort().values
        else:
            kept, held = stratified_holdout(train.labels, o.valid_fraction)
        x, lengths, labels = normal(train), train.lengths, train.labels
        self._classes = train.classes
        if len(kept) < 2:
            raise ValueError(f"the training file of {o.dataset} has too few cases ({len(train)}) to train on")
        self.normalisation = mode
        valid = (x[held], lengths[held], labels[held]) if len(held) else (x, lengths, labels)
        return {"train": (x[kept], lengths[kept], labels[kept]), "valid": valid, "test": (normal(test), test.lengths, test.labels)}

    def split_tensors(self, split: str) -> tuple[Tensor, Tensor, Tensor]:
        """The normalised series (N, T, C), lengths (N,) and labels (N,) of ``split`` (before frames
        and augmentation); "train" is the part trained on. Read from the files once."""
        if self._splits is None:
            self._splits = self._load()
        return self._splits[self.check_split(split)]

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names, in the order of the label ids."""
        self.split_tensors("train")
        return self._classes

    @property
    def patch(self) -> int:
        """The frame length the task cuts the series into: ``--patch``, or 1 with ``--fcn`` (the model
        frames the recurrent branch's input itself and convolves the series step by step)."""
        return 1 if self.options.fcn else self.options.patch

    def build_model(self) -> nn.Module:
        o = self.options
        x, _, _ = self.split_tensors("train")
        if o.fcn:
            length = max(self.split_tensors(s)[0].shape[1] for s in ("train", "valid", "test"))  # padded lengths only
            return FCNClassifier(o.cell, x.shape[2] * (2 if o.derivative else 1), o.hidden, len(self.classes), layers=o.layers,
                                 bidirectional=o.bidirectional, readout=o.readout, dropout=o.dropout,
                                 filters=parse_sizes(o.fcn_filters, "fcn_filters"), kernels=parse_sizes(o.fcn_kernels, "fcn_kernels"),
                                 patch=o.patch, shuffle=o.shuffle, length=length if o.shuffle else None,
                                 readout_dropout=o.readout_dropout)
        return SequenceClassifier(o.cell, x.shape[2] * (2 if o.derivative else 1) * o.patch, o.hidden, len(self.classes), layers=o.layers,
                                  bidirectional=o.bidirectional, readout=o.readout, dropout=o.dropout)

    def train_batches(self, batch_size: int, shard: Shard, seed: int) -> _AugmentedBatches:
        return _AugmentedBatches(self, batch_size, shard, seed)

    def step(self, model: nn.Module, batch: tuple[Tensor, Tensor, Tensor], state) -> StepOutput:
        x, lengths, labels = batch
        logits = model(x, lengths)
        return StepOutput(F.cross_entropy(logits, labels.to(logits.device)), None, int(labels.numel()))

    def logits(self, model: nn.Module, split: str) -> Tensor:
        """``model``'s logits (N, classes) for every series of ``split``, as it stands (call
        ``model.eval()`` first for evaluation), on the CPU."""
        x, lengths, _ = self.split_tensors(split)
        x, lengths = to_frames(with_derivative(x, lengths) if self.options.derivative else x, lengths, self.patch)
        device = next(model.parameters()).device
        out = []
        for start in range(0, x.shape[0], EVAL_CHUNK):
            xb, lb = x[start:start + EVAL_CHUNK], lengths[start:start + EVAL_CHUNK]
            out.append(model(xb[:, : int(lb.max())].to(device), lb).float().cpu())
        return torch.cat(out)

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        labels = self.split_tensors(split)[2]
        logits = self.logits(model, split)
        loss, accuracy = float(F.cross_entropy(logits, labels)), float((logits.argmax(-1) == labels).double().mean())
        return {"loss": loss, "accuracy": accuracy, "score": accuracy - min(loss, 9.99) / 1000}
