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
import types
import warnings
from typing import Callable, Hashable

import torch

ENV = "CAROUSEL_COMPILE"


def compiling_on(device: torch.device) -> bool:
    """Whether carousel's pointwise code is compiled for tensors on ``device`` (see the module docstring).
    Raises ``ValueError`` when ``CAROUSEL_COMPILE`` holds anything but 0, 1 or nothing."""
    setting = os.environ.get(ENV, "").strip()
    if setting not in ("", "0", "1"):
        raise ValueError(f"{ENV} must be 0 (never compile), 1 (compile on every device) or unset (compile on CUDA); "
                         f"{setting!r} was given")
    if setting == "0":
        return False
    return setting == "1" or device.type == "cuda"


def _fresh_copy(fn: Callable) -> Callable:
    """``fn`` with a code object of its own: ``torch.compile`` keeps its compiled variants, and its
    limit on how many (``torch._dynamo.config.recompile_limit``), per code object."""
    copy = types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__kwdefaults__, copy.__qualname__, copy.__doc__ = fn.__kwdefaults__, fn.__qualname__, fn.__doc__
    return copy


class Compiled:
    """``torch.compile(fn)``, falling back for good to ``fn`` as written, with one ``RuntimeWarning``,
    if compiling or running the compiled code raises (an inductor or Triton problem on this machine:
    the results stay correct, only slower). The first call that records a gradient also compiles and
    runs the backward once on copies, so that a backward that fails to compile falls back too."""

    def __init__(self, fn: Callable, what: str) -> None:
        self.fn, self.what = fn, what
        self.compiled, self.failed, self.probed = torch.compile(_fresh_copy(fn)), False, False

    def _probe_backward(self, args: tuple) -> None:
        """Compile and run the backward once, on detached copies: torch compiles a backward graph only
        when ``backward()`` reaches it, outside this call, where a failure could not fall back."""
        copies = [a.detach().requires_grad_(a.requires_grad) if isinstance(a, torch.Tensor) else a for a in args]
        leaves = [c for c in copies if isinstance(c, torch.Tensor) and c.requires_grad]
        outputs = self.compiled(*copies)
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        total = sum(o.sum() for o in outputs if isinstance(o, torch.Tensor) and o.requires_grad)
        if leaves and isinstance(total, torch.Tensor):
            torch.autograd.grad(total, leaves, allow_unused=True)

    def __call__(self, *args):
        if not self.failed:
            try:
                if not self.probed and torch.is_grad_enabled() and any(
                        isinstance(a, torch.Tensor) and a.requires_grad for a in args):
                    self._probe_backward(args)
                    self.probed = True
                return self.compiled(*args)
            except Exception as e:
                warnings.warn(f"carousel: compiling {self.what} failed ({type(e).__name__}: {e}); running it "
                              f"uncompiled from now on (set {ENV}=0 to skip the attempt)", RuntimeWarning, stacklevel=2)
                self.failed = True
        return self.fn(*args)


_KEYED: dict[tuple, Compiled] = {}


def compiled(fn: Callable, key: Hashable, what: str) -> Compiled:
    """The :class:`Compiled` ``fn`` for one ``key`` (a configuration of the caller: the flags that
    change which arguments are None, a dtype, a device): each key compiles its own copy of ``fn``,
    so that a few configurations in one process never exhaust torch's recompile limit (past it,
    torch would run the code uncompiled without saying so in the results)."""
    full = (fn, key)
    if full not in _KEYED:
        _KEYED[full] = Compiled(fn, what)
    return _KEYED[full]
