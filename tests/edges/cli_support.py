"""What the command-line edge tests share: running a command in-process, tiny runs to break, and a
read-only directory that stays read-only for root.

``invoke(*args)`` runs ``carousel ARGS`` with typer's ``CliRunner`` and returns ``(exit code, text)``
with rich's box drawing removed and whitespace collapsed; ``plain_error(code, text, *words)``
asserts the contract of a refused command: exit code 2 (or the code given), no traceback, one line
of error that holds each of ``words`` (what was given and what was expected).
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import torch
from typer.testing import CliRunner

from carousel.cli import app

BOX = str.maketrans("", "", "│╭╮╰╯─")  # the frame rich draws around typer's usage errors
ADDING = ["--length", "5", "--hidden", "8", "--batch-size", "4", "--eval-size", "20", "--no-progress"]
CHARLM = ["--hidden", "8", "--embed", "4", "--batch-size", "4", "--bptt", "5", "--eval-streams", "2", "--eval-window", "50",
          "--no-compressors", "--no-progress"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one torch thread (a second one mostly waits on a shared machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"carousel {' '.join(map(str, args))} raised {result.exception!r}") from result.exception
    text = result.output
    return result.exit_code, text


def words(text: str) -> str:
    return " ".join(text.translate(BOX).split())


def plain_error(code: int, text: str, *expected: str, exit_code: int = 2) -> None:
    """The contract of a refused command (see the module docstring)."""
    assert "Traceback" not in text, text
    assert code == exit_code, f"exit code {code}, expected {exit_code}: {text}"
    flat = words(text)
    for w in expected:
        assert w in flat, f"{w!r} not in: {flat}"
    if "Error:" in text and "Usage:" not in text:  # our own one-line errors (typer's usage errors come in a box)
        lines = [line for line in text.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("Error:")]
        assert len(errors) == 1 and lines[-1] == errors[0], f"expected one error line at the end, got: {text}"


def corpus(folder: Path) -> Path:
    """A small text corpus (about 6,000 characters) of made-up sentences."""
    import random

    rng = random.Random(0)
    vocab = ["the", "cat", "sat", "on", "a", "mat", "and", "ran"]
    path = folder / "tiny.txt"
    path.write_text("\n".join(" ".join(rng.choice(vocab) for _ in range(6)) for _ in range(300)), encoding="utf-8")
    return path


def copy_run(run: Path, folder: Path) -> Path:
    """A copy of a run directory to break without touching the shared one."""
    target = folder / run.name
    shutil.copytree(run, target)
    return target


def run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


# ---- a read-only directory, for root too ---------------------------------------------------------------
WRITE_MODES = ("w", "a", "x", "+")


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make ``folder`` read-only for this process: ``chmod`` it, and where that does not bind (root
    ignores permissions) refuse the writes the kernel would refuse, with the same ``PermissionError``
    (EACCES) naming the path, in ``open``, ``os.mkdir``, ``os.replace``/``rename`` and ``os.unlink``.
    Anything under ``folder`` stays readable."""
    folder = folder.resolve()
    modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")] if not p.is_symlink()}
    for p in modes:
        p.chmod(0o555 if p.is_dir() else 0o444)
    binds = os.geteuid() != 0
    inside = lambda path: os.path.abspath(os.fspath(path)).startswith(str(folder))  # noqa: E731
    deny = lambda path: PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))  # noqa: E731
    real = {"open": builtins.open, "mkdir": os.mkdir, "replace": os.replace, "rename": os.rename, "unlink": os.unlink}

    def open_(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and any(m in mode for m in WRITE_MODES) and inside(file):
            raise deny(file)
        return real["open"](file, mode, *args, **kwargs)

    def guard(name):
        def call(path, *args, **kwargs):
            if inside(path) or (name in ("replace", "rename") and args and inside(args[0])):
                raise deny(path)
            return real[name](path, *args, **kwargs)

        return call

    patches = [] if binds else [(builtins, "open", open_), (io, "open", open_), (os, "mkdir", guard("mkdir")),
                                (os, "replace", guard("replace")), (os, "rename", guard("rename")), (os, "unlink", guard("unlink"))]
    saved = [(mod, name, getattr(mod, name)) for mod, name, _ in patches]
    try:
        for mod, name, fn in patches:
            setattr(mod, name, fn)
        yield
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)
        for p, mode in modes.items():
            p.chmod(mode)
