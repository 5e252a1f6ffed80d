"""Runners: how a cell meets time. ``carousel.run(cell, x, state, lengths, backend=...)`` is the entry point.

Backends (``backend_names()``), all with the same contract and tested against the reference:

* ``"fused"``: torch's fused kernels (oneDNN / cuDNN) on the cell's own parameters, for the
  cells that say which kernel computes them (``cell.fused_mode()``): standard Elman, LSTM
  (with projection), GRU, orthogonal tanh/relu, DropConnect-masked weights;
* ``"scan"``: cells whose recurrence is linear in ``h`` (``cell.scan_unsupported()`` is None,
  ``cell.coefficients``): minGRU, minLSTM;
* ``"explicit"``: cells that offer their step with its derivative written out
  (``cell.explicit_step()``: the LSTM family, also under recurrent dropout): one autograd
  function per run with an explicit backward through time;
* ``"reference"``: the plain autograd loop over ``cell.step`` that every other backend is tested
  against; it serves every cell, and alone supports double backward;
* ``"auto"`` (the default): the first of fused, scan, explicit, reference that serves the cell.

Over trees, ``run_up`` / ``run_down`` (``carousel.runners.levels``) run a cell one tree level at a
time, from plain index tensors; ``run_up_reference`` / ``run_down_reference`` go node by node.

``use_backend(name)`` overrides every layer's choice inside a block; ``observe_steps`` shows
every step the reference loop takes.
"""

from .backend import (
    Backend,
    backend_names,
    check_backend,
    dispatch,
    register_backend,
    resolve_backend,
    resolve_stack,
    run,
    use_backend,
    zero_padding,
)
from .cpu import cpu_features, describe_cpu, fast_bf16
from .explicit import run_explicit
from .fused import run_fused, run_fused_stack
from .levels import (
    Children,
    DownSchedule,
    UpSchedule,
    run_down,
    run_down_reference,
    run_up,
    run_up_reference,
    schedule_down,
    schedule_up,
)
from .reference import observe_steps, run_reference
from .scan import linear_scan, run_scan
from .device_scan import associative_linear_scan
from .graphs import clear_graphs, use_cuda_graphs
from .native import native_unavailable, use_native
from .paths import kernel_path

__all__ = [
    "run",
    "run_reference",
    "run_explicit",
    "run_fused",
    "run_fused_stack",
    "run_scan",
    "linear_scan",
    "associative_linear_scan",
    "use_native",
    "kernel_path",
    "native_unavailable",
    "use_cuda_graphs",
    "clear_graphs",
    "Backend",
    "register_backend",
    "resolve_backend",
    "resolve_stack",
    "check_backend",
    "backend_names",
    "use_backend",
    "dispatch",
    "zero_padding",
    "observe_steps",
    "cpu_features",
    "describe_cpu",
    "fast_bf16",
    "run_up",
    "run_down",
    "run_up_reference",
    "run_down_reference",
    "schedule_up",
    "schedule_down",
    "UpSchedule",
    "DownSchedule",
    "Children",
]
