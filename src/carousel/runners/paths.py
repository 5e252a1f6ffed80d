"""Which kernel path a run takes: ``kernel_path(cell, x, backend)``, in words, for benchmarks and reports.

The backend (``resolve_backend``) says which runner serves; inside a runner the kernels depend on the
device and on what is available: torch's fused kernels (oneDNN on CPU, cuDNN on GPU), carousel's
compiled CPU kernels (``carousel.runners.native``), the eager PyTorch operations they replace, the
associative scan on a GPU (``carousel.runners.device_scan``) or CUDA graphs (``carousel.runners.graphs``).
"""

from __future__ import annotations

from torch import Tensor

from ..cells.base import Cell
from . import graphs, native
from .backend import resolve_backend
from .device_scan import device_scan_available
from .explicit import _native_lstm
from .scan import _native_kind


def kernel_path(cell: Cell, x: Tensor, backend: str = "auto") -> str:
    """The backend and the kernels that run ``cell`` over ``x`` (B, T, I), e.g. ``"scan: carousel C++
    kernel"``; raises the ``ValueError`` of ``resolve_backend`` when ``backend`` cannot serve."""
    name = resolve_backend(cell, x, backend).name
    gpu = x.device.type == "cuda"
    if name == "fused":
        return f"fused: {'cuDNN' if gpu else 'oneDNN'} (torch's recurrent kernel)"
    if name == "scan":
        if device_scan_available(x) is None:
            return "scan: one associative scan" + (" (Triton)" if gpu else " (generic mode, forced)")
        coefficients = cell.explicit_coefficients()
        if coefficients is not None and _native_kind(coefficients, x) is not None and cell.linear_projection() is not None:
            return "scan: carousel C++ kernel"
        why = native.native_unavailable() if x.device.type == "cpu" else None
        return "scan: chunked scan of PyTorch operations" + (f" (compiled kernels {why})" if why else "")
    if name == "explicit":
        if graphs.graph_recorder(x) is not None:
            return "explicit: CUDA graphs" if gpu else "explicit: captured loop (test double)"
        if _native_lstm(cell.explicit_step(), x):
            return "explicit: carousel C++ kernel"
        return "explicit: Python loop of PyTorch operations"
    return f"{name}: Python loop under autograd" if name == "reference" else name
