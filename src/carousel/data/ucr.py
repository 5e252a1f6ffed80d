"""UCR/UEA time-series classification sets read from ``.ts`` files, and the bake-off's published accuracies.

* ``read_ts(path)``: one ``.ts`` file (the format of the UEA & UCR archive, Bagnall et al. 2018,
  "The UEA multivariate time series classification archive, 2018", appendix): ``#`` comment lines,
  ``@`` header lines (``@problemName``, ``@timeStamps``, ``@missing``, ``@univariate``,
  ``@dimensions``, ``@equalLength``, ``@seriesLength``, ``@classLabel true A B ...``, then
  ``@data``), then one case per line: the channels separated by ``:``, the values of a channel by
  ``,``, the class label last. Cases may differ in length (JapaneseVowels: 7 to 29 steps, not
  padded in the file); the channels of one case must have the same length.
* ``load_ucr(name, split)``: one of ``UCR_DATASETS`` with its official train / test split as
  tensors (padded (N, T, C) values, (N,) lengths, (N,) labels), read from the files shipped in the
  pinned ``aeon==1.6.0`` wheel (located with ``importlib.util.find_spec``, never imported), or from
  any folder holding ``<Name>/<Name>_TRAIN.ts`` and ``<Name>/<Name>_TEST.ts``.
* ``published_accuracies(name)``: the test accuracies of the classifiers (36 columns) of Bagnall, Lines,
  Bostrom, Large & Keogh 2017, "The great time series classification bake off" (Data Mining and
  Knowledge Discovery 31, the single train/test split results of their table on the 85 UCR sets),
  read from ``tslearn/.cached_datasets/singleTrainTest.csv`` of the pinned ``tslearn==0.10.0``
  wheel (never imported). Among the columns: ``DTW_R1_1NN`` (1-NN DTW with a full warping window),
  ``DTW_Rn_1NN`` (1-NN DTW with the window set by cross-validation on the training set), ``COTE``
  (the collective of transformation ensembles, Bagnall et al. 2015).

Missing values (``?`` in a file, ``@missing true``) are refused with a ``ValueError`` naming the
line: none of ``UCR_DATASETS`` has any, and an imputation would be a modelling choice of its own.
Time stamps (``@timeStamps true``) are refused likewise.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from .corpus import package_data

UCR_DATASETS = ("GunPoint", "ArrowHead", "ItalyPowerDemand", "OSULeaf", "JapaneseVowels", "BasicMotions")
UCR_SPLITS = ("train", "test")
AEON_PACKAGE = "aeon==1.6.0"
TSLEARN_PACKAGE = "tslearn==0.10.0"
BAKEOFF_FILE = ".cached_datasets/singleTrainTest.csv"
_TRUE, _FALSE = "true", "false"


@dataclass(frozen=True)
class TsFile:
    """The content of one ``.ts`` file: ``series`` a list of N float32 tensors (T_i, C), ``labels``
    the N class labels as written, ``classes`` the labels declared by ``@classLabel`` (in that
    order), ``header`` the ``@`` lines (keys lower-cased, values as written)."""

    path: str
    series: list[Tensor]
    labels: list[str]
    classes: tuple[str, ...]
    header: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class UCRSplit:
    """One split of a dataset as tensors: ``x`` (N, T, C) float32, zero past each case's length;
    ``lengths`` (N,) int64 in [1, T]; ``labels`` (N,) int64 indices into ``classes`` (the
    ``@classLabel`` order of the training file)."""

    name: str
    split: str
    x: Tensor
    lengths: Tensor
    labels: Tensor
    classes: tuple[str, ...]
    path: str = ""

    @property
    def channels(self) -> int:
        return int(self.x.shape[2])

    def __len__(self) -> int:
        return int(self.x.shape[0])


def _flag(value: str, key: str, where: str) -> bool:
    v = value.strip().lower()
    if v not in (_TRUE, _FALSE):
        raise ValueError(f"{where}: expected @{key} true or false, got {value.strip()!r}")
    return v == _TRUE


def _values(text: str, where: str, channel: int) -> list[float]:
    out = []
    for token in text.split(","):
        token = token.strip()
        if token == "?":
            raise ValueError(f"{where}: missing value '?' in channel {channel + 1}; missing values are not supported "
                             "(none of the sets this reader serves has any; impute them before reading)")
        try:
            value = float(token)
        except ValueError:
            raise ValueError(f"{where}: expected a number in channel {channel + 1}, got {token!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"{where}: expected a finite number in channel {channel + 1}, got {token!r}")
        out.append(value)
    return out


def _read_text(path: str) -> str:
    """The text of ``path``; ``ValueError`` naming the file when it is not UTF-8 text (a gzip file:
    unpack it first) rather than Python's codec error without the file's name."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        hint = "; it is gzip-compressed: unpack it first (gunzip)" if data[:2] == b"\x1f\x8b" else ""
        raise ValueError(f"{path} is not a UTF-8 text file (byte {err.start} does not decode){hint}; "
                         f"expected a plain-text file") from None


def read_ts(path: str | os.PathLike) -> TsFile:
    """Read one ``.ts`` file (see the module docstring). Raises ``FileNotFoundError`` for a missing
    file and ``ValueError``, naming the file and line, for a malformed header, a case with the
    wrong number of channels, channels of unequal length, a value that is not a finite number, a
    missing value ``?``, a label not declared by ``@classLabel``, a length other than
    ``@seriesLength`` when ``@equalLength true``, time stamps, a file without ``@data`` or cases,
    or a file that is not UTF-8 text (a gzip file, say)."""
    path = os.fspath(path)
    header: dict[str, str] = {}
    classes: tuple[str, ...] | None = None
    series: list[Tensor] = []
    labels: list[str] = []
    in_data = False
    channels: int | None = None
    with io.StringIO(_read_text(path), newline=None) as f:
        for number, raw in enumerate(f, 1):
            line = raw.strip()
            where = f"{path}:{number}"
            if not line or line.startswith("#"):
                continue
            if not in_data:
                if not line.startswith("@"):
                    raise ValueError(f"{where}: expected a header line starting with '@' before @data, got {line[:40]!r}")
                words = line[1:].split(None, 1)
                written, value = (words[0] if words else ""), (words[1] if len(words) > 1 else "")
                key = written.lower()
                if key == "data":
                    if classes is None:
                        raise ValueError(f"{where}: expected @classLabel true <labels> before @data (a classification set)")
                    in_data = True
                    continue
                header[key] = value.strip()
                if key == "classlabel":
                    words = value.split()
                    if not words or not _flag(words[0], "classLabel", where):
                        raise ValueError(f"{where}: expected @classLabel true <labels>; unlabelled series are not supported")
                    if len(words) < 3:
                        raise ValueError(f"{where}: expected at least two class labels after @classLabel true, got {words[1:]}")
                    if len(set(words[1:])) != len(words) - 1:
                        raise ValueError(f"{where}: class labels repeat in @classLabel: {words[1:]}")
                    classes = tuple(words[1:])
                elif key == "timestamps" and _flag(value, "timeStamps", where):
                    raise ValueError(f"{where}: @timeStamps true is not supported (expected plain values)")
                elif key in ("missing", "univariate", "equallength"):
                    _flag(value, written, where)
                elif key in ("dimensions", "serieslength"):
                    if not value.strip().isdigit() or int(value) < 1:
                        raise ValueError(f"{where}: expected an integer >= 1 after @{written}, got {value.strip()!r}")
                if channels is None:
                    if header.get("univariate", "").lower() == _TRUE:
                        channels = 1
                    elif "dimensions" in header:
                        channels = int(header["dimensions"])
                continue
            parts = line.split(":")
            label = parts[-1].strip()
            if len(parts) < 2:
                raise ValueError(f"{where}: expected values then ':' and a class label, got no ':'")
            values = [_values(p, where, c) for c, p in enumerate(parts[:-1])]
            if channels is None:
                channels = len(values)  # a file that does not say: the first case decides
            if len(values) != channels:
                raise ValueError(f"{where}: expected {channels} channel(s) separated by ':', got {len(values)}")
            sizes = {len(v) for v in values}
            if len(sizes) != 1:
                raise ValueError(f"{where}: expected the channels of a case to have the same length, got lengths {[len(v) for v in values]}")
            if header.get("equallength", "").lower() == _TRUE and "serieslength" in header and len(values[0]) != int(header["serieslength"]):
                raise ValueError(f"{where}: expected {header['serieslength']} values per channel (@seriesLength), got {len(values[0])}")
            assert classes is not None
            if label not in classes:
                raise ValueError(f"{where}: class label {label!r} is not declared by @classLabel (declared: {', '.join(classes)})")
            series.append(torch.tensor(values, dtype=torch.float32).T.contiguous())  # (T, C)
            labels.append(label)
    if not in_data:
        raise ValueError(f"{path}: expected an @data line, found none")
    if not series:
        raise ValueError(f"{path}: expected at least one case after @data, found none")
    return TsFile(path, series, labels, classes or (), header)


def aeon_data_dir() -> Path:
    """The folder of the ``.ts`` files in the installed ``aeon`` package (``aeon/datasets/data``),
    found without importing it. Raises ``MissingPackageError`` when aeon is not installed."""
    return Path(package_data("aeon", os.path.join("datasets", "data"), AEON_PACKAGE, "the UCR/UEA time-series files", folder=True))


def load_ucr(name: str, split: str, data_dir: str | os.PathLike | None = None) -> UCRSplit:
    """The official ``split`` ("train" or "test") of the dataset ``name``, read from
    ``data_dir/<name>/<name>_<SPLIT>.ts`` (``data_dir`` None: the aeon package's folder,
    ``aeon_data_dir()``). Values padded with 0 to the longest case; labels numbered in the
    ``@classLabel`` order of the training file (both splits share it). Raises ``ValueError`` for a
    split other than train/test, a test file declaring other classes than the training file, or a
    malformed file (``read_ts``); ``FileNotFoundError`` when the file is absent from ``data_dir``;
    ``MissingPackageError`` when ``data_dir`` is None and aeon is not installed."""
    if split not in UCR_SPLITS:
        raise ValueError(f"expected split 'train' or 'test' (the archive's official splits), got {split!r}")
    if not isinstance(name, str) or not name or "/" in name or "\\" in name:
        raise ValueError(f"expected a dataset name such as {UCR_DATASETS[0]!r}, got {name!r}")
    root = aeon_data_dir() if data_dir is None else Path(data_dir)
    path = root / name / f"{name}_{split.upper()}.ts"
    if not path.is_file():
        extra = f"; the aeon package ships {', '.join(UCR_DATASETS)}" if data_dir is None else ""
        raise FileNotFoundError(f"no {split} file for the dataset {name!r}: {path} does not exist{extra}")
    ts = read_ts(path)
    classes = ts.classes
    if split == "test":
        train_path = root / name / f"{name}_TRAIN.ts"
        if train_path.is_file():
            train_classes = read_ts(train_path).classes
            if set(train_classes) != set(classes):
                raise ValueError(f"{path} declares the classes {list(classes)} but {train_path} declares {list(train_classes)}")
            classes = train_classes
    channels = {s.shape[1] for s in ts.series}
    if len(channels) != 1:
        raise ValueError(f"{path}: expected every case to have the same number of channels, got {sorted(channels)}")
    lengths = torch.tensor([s.shape[0] for s in ts.series], dtype=torch.int64)
    x = torch.zeros(len(ts.series), int(lengths.max()), channels.pop())
    for i, s in enumerate(ts.series):
        x[i, : s.shape[0]] = s
    index = {c: i for i, c in enumerate(classes)}
    labels = torch.tensor([index[label] for label in ts.labels], dtype=torch.int64)
    return UCRSplit(name, split, x, lengths, labels, classes, str(path))


def bakeoff_table_path() -> Path:
    """The path of the bake-off table (``singleTrainTest.csv``) in the installed ``tslearn``
    package, found without importing it. Raises ``MissingPackageError`` when tslearn (or the file)
    is not installed."""
    return Path(package_data("tslearn", BAKEOFF_FILE, TSLEARN_PACKAGE, f"the published bake-off accuracies ({BAKEOFF_FILE})"))


def read_accuracy_table(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """``{dataset: {classifier: test accuracy}}`` from a ``;``-separated table whose first row names
    the classifiers (after an empty first cell) and whose other rows hold a dataset's name and one
    accuracy in [0, 1] per classifier; an empty cell (a result not published) is left out. Raises ``ValueError`` naming the line for a row of the wrong
    width, an accuracy that is not a number in [0, 1], or a repeated dataset."""
    path = os.fspath(path)
    with io.StringIO(_read_text(path), newline=None) as f:
        rows = [line.rstrip("\r\n") for line in f]
    if not rows or not rows[0].strip():
        raise ValueError(f"{path}: expected a header row of classifier names, got an empty file")
    names = [n.strip() for n in rows[0].split(";")[1:]]
    if not names or any(not n for n in names):
        raise ValueError(f"{path}:1: expected ';' then classifier names, got {rows[0][:60]!r}")
    table: dict[str, dict[str, float]] = {}
    for number, row in enumerate(rows[1:], 2):
        if not row.strip():
            continue
        cells = row.split(";")
        if len(cells) != len(names) + 1:
            raise ValueError(f"{path}:{number}: expected a dataset name and {len(names)} accuracies, got {len(cells) - 1} values")
        dataset = cells[0].strip()
        if dataset in table:
            raise ValueError(f"{path}:{number}: dataset {dataset!r} appears twice")
        accuracies = {}
        for name, cell in zip(names, cells[1:]):
            if not cell.strip():
                continue  # not published for this dataset (left empty in the table)
            try:
                value = float(cell)
            except ValueError:
                raise ValueError(f"{path}:{number}: expected an accuracy for {name} of {dataset}, got {cell!r}") from None
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{path}:{number}: expected an accuracy in [0, 1] for {name} of {dataset}, got {value}")
            accuracies[name] = value
        table[dataset] = accuracies
    return table


def published_accuracies(dataset: str, path: str | os.PathLike | None = None) -> dict[str, float]:
    """The published test accuracies (fractions in [0, 1]) of the bake-off's classifiers (the table's 36 columns; fewer
    where a cell is empty) on the
    official split of ``dataset`` (Bagnall et al. 2017, see the module docstring), from ``path``
    (None: the tslearn package's copy, ``bakeoff_table_path()``). Raises ``KeyError`` naming the
    datasets the table has when ``dataset`` is not among them (the table covers the 85 univariate
    UCR sets of 2015: JapaneseVowels and BasicMotions are not in it); ``MissingPackageError``
    when ``path`` is None and tslearn is not installed."""
    table = read_accuracy_table(bakeoff_table_path() if path is None else path)
    if dataset not in table:
        raise KeyError(f"dataset {dataset!r} is not in the published table ({len(table)} datasets: "
                       f"{', '.join(sorted(table)[:5])}, ...); the table covers the univariate UCR sets of the bake-off only")
    return dict(table[dataset])
