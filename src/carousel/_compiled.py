"""Where carousel compiles its own pointwise code with ``torch.compile``, and the switch for it.

On a GPU a small recurrent step is paced by kernel launches, not arithmetic: a dozen elementwise
operations per step cost a dozen launches. carousel compiles the pointwise parts it runs often
(the explicit LSTM step, the scan cells' coefficients) into a few fused kernels there; the code
compiled is the one written once in the cell, which runs as written everywhere else.

``CAROUSEL_COMPILE=0`` never compiles; ``CAROUSEL_COMPILE=1`` compiles on every device (the CPU
tests use it to check that the compiled code equals the written one); unset, only on CUDA.
"""

from __future__ import annotations

import os
import warnings
from typing import Callable

import torch

ENV = "CAROUSEL_COMPILE"


def compiling_on(device: torch.device) -> bool:
    """Whether carousel's pointwise code is compiled for tensors on ``device`` (see the module docstring)."""
    setting = os.environ.get(ENV, "").strip()
    if setting == "0":
        return False
    return setting == "1" or device.type == "cuda"


class Compiled:
    """``torch.compile(fn)``, falling back for good to ``fn`` as written, with one ``RuntimeWarning``,
    if compiling or running the compiled code raises (an inductor or Triton problem on this machine:
    the results stay correct, only slower)."""

    def __init__(self, fn: Callable, what: str) -> None:
        self.fn, self.what = fn, what
        self.compiled, self.failed = torch.compile(fn), False

    def __call__(self, *args):
        if not self.failed:
            try:
                return self.compiled(*args)
            except Exception as e:
                warnings.warn(f"carousel: compiling {self.what} failed ({type(e).__name__}: {e}); running it "
                              f"uncompiled from now on (set {ENV}=0 to skip the attempt)", RuntimeWarning, stacklevel=2)
                self.failed = True
        return self.fn(*args)
