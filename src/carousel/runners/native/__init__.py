"""carousel's compiled CPU kernels, built on first use for the CPU at hand.

* ``scan_cpu.cpp``: the scan runner's eager path evaluates a block of minGRU or minLSTM steps in
  some thirty passes of PyTorch's element-wise kernels over memory; this kernel does the
  coefficients and the recurrence in one pass forward and one backward.
* ``lstm_cpu.cpp``: the explicit backend's LSTM run (layer normalisation, recurrent dropout) with
  the time loop in C++: per step one matrix product and one pass over the batch rows, forward and
  backward, where the Python loop pays a dozen operator calls per step.

Both follow the formulas of the eager code they replace (see their headers) and are tested
against it and against the reference loop, gradients included (tests/runners/test_native.py). They are compiled
with ``torch.utils.cpp_extension`` the first time a scan runs on a CPU (about half a minute, once;
the library lands in torch's extension cache, named after the source and this CPU's features), and
``ops()`` returns the registered operators, or ``None`` when it cannot be built (no C++ compiler or
no ``ninja``): then the eager path runs, with the same results, and ``native_unavailable()`` says why.

``CAROUSEL_NATIVE=0`` in the environment turns the kernels off (the eager path runs);
``use_native(False)`` does the same inside a ``with`` block (the tests compare the two paths).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import torch

from ..cpu import cpu_features

_HERE = Path(__file__).parent
_SOURCES = [_HERE / "scan_cpu.cpp", _HERE / "lstm_cpu.cpp"]
_HEADERS = [_HERE / "common.h"]
_lock = threading.Lock()
_state: dict[str, object] = {}  # "ops" once built, or "error" with the reason
_enabled = [os.environ.get("CAROUSEL_NATIVE", "1").strip().lower() not in ("0", "false", "no", "off")]


def _build_name() -> str:
    """An extension name that changes with the source, torch's version and this CPU's features."""
    key = b"".join(p.read_bytes() for p in _SOURCES + _HEADERS) + torch.__version__.encode() + repr(sorted(cpu_features().items())).encode()
    return "carousel_native_" + hashlib.sha256(key).hexdigest()[:12]


def _find_ninja() -> None:
    """torch's builder runs ``ninja`` from PATH: add the pip package's copy when PATH has none (a
    virtual environment that was not activated)."""
    if shutil.which("ninja") is None:
        try:
            import ninja

            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
        except ImportError:
            pass


STALE_LOCK_SECONDS = 600  # a build takes well under a minute; an older lock is left by a killed build


def _remove_stale_lock(folder: Path | None) -> None:
    """torch's builder waits for as long as a ``lock`` file exists in the build folder; a build killed
    midway (Ctrl-C, a time limit) leaves one behind, and every later process would wait forever."""
    lock = None if folder is None else folder / "lock"
    try:
        if lock is not None and lock.exists() and time.time() - lock.stat().st_mtime > STALE_LOCK_SECONDS:
            lock.unlink()
    except OSError:
        pass


def _build() -> None:
    try:
        from torch.utils import cpp_extension

        _find_ninja()

        name = _build_name()
        quiet = os.environ.get("CAROUSEL_NATIVE_VERBOSE") is None
        try:
            folder = Path(cpp_extension._get_build_directory(name, False))
            built = folder / f"{name}.so"
        except Exception:  # a private helper of torch's: without it, say nothing rather than guess
            folder = built = None
        _remove_stale_lock(folder)
        if quiet and built is not None and not built.exists():
            print("carousel: compiling the CPU kernels for this machine (once, about half a minute; cached) ...",
                  file=sys.stderr, flush=True)
        cpp_extension.load(
            name=name, sources=[str(p) for p in _SOURCES], extra_include_paths=[str(_HERE)],
            is_python_module=False, verbose=not quiet,
            extra_cflags=["-O3", "-march=native", "-fopenmp"], extra_ldflags=["-fopenmp"],
        )
        _state["ops"] = torch.ops.carousel_native
    except Exception as error:  # no compiler, no ninja, a failed build: the eager path serves
        _state["error"] = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"


def ops():
    """The compiled operators (``torch.ops.carousel_native``), building them on first call; None when
    they are turned off or cannot be built."""
    if not _enabled[0]:
        return None
    if "ops" not in _state and "error" not in _state:
        with _lock:
            if "ops" not in _state and "error" not in _state:
                _build()
    return _state.get("ops")


def native_unavailable() -> str | None:
    """None when the compiled kernels serve, else why not (turned off, or the build's error)."""
    if not _enabled[0]:
        return "turned off (CAROUSEL_NATIVE=0 or use_native(False))"
    return None if ops() is not None else f"the CPU kernels could not be built ({_state.get('error')})"


@contextlib.contextmanager
def use_native(enabled: bool) -> Iterator[None]:
    """Within the block, the compiled kernels serve (``True``, where they can be built) or not (``False``)."""
    before = _enabled[0]
    _enabled[0] = bool(enabled)
    try:
        yield
    finally:
        _enabled[0] = before
