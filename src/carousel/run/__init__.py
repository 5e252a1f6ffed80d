"""Runners: how a cell meets time. ``run(cell, x, state, lengths, backend=...)`` is the entry point.

Backends (``backend_names()``), all with the same contract and tested against the reference:

* ``"fused"``: torch's fused kernels (oneDNN / cuDNN) on the cell's own parameters, for the
  cells that say which kernel computes them (``cell.fused_mode()``): standard Elman, LSTM
  (with projection), GRU, orthogonal tanh/relu, DropConnect-masked weights;
* ``"scan"``: cells whose recurrence is linear in ``h`` (``cell.coefficients``): minGRU, minLSTM;
* ``"loop"``: every cell; one autograd function with an explicit backward through time when the
  cell offers an explicit step (LSTM family, recurrent dropout), else the reference loop;
* ``"reference"``: the plain autograd loop every other backend is tested against (it alone
  supports double backward);
* ``"auto"`` (the default): the first of fused, scan, loop that serves the cell.
"""

from .backend import Backend, backend_names, register_backend, resolve_backend, run
from .bptt import run_explicit, run_fast_loop
from .fused import run_fused, run_fused_stack
from .loop import run_loop
from .scan import linear_scan, run_scan

__all__ = [
    "run",
    "run_loop",
    "run_fast_loop",
    "run_explicit",
    "run_fused",
    "run_fused_stack",
    "run_scan",
    "linear_scan",
    "Backend",
    "register_backend",
    "resolve_backend",
    "backend_names",
]
