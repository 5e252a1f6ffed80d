"""Which kernel path a run takes: ``kernel_path(cell, x, backend)``, in words, for benchmarks and reports.

The backend (``resolve_backend``) says which runner serves; inside a runner the kernels depend on the
device and on what is available: torch's fused kernels (oneDNN on CPU, cuDNN on GPU), carousel's
compiled CPU kernels (``carousel.runners.native``), the eager PyTorch operations they replace, the
Triton scan on a GPU (``carousel.runners.device_scan``), CUDA graphs (``carousel.runners.graphs``) and the
pointwise code ``torch.compile`` fuses there (``carousel._compiled``).
"""

from __future__ import annotations

from torch import Tensor

from .._compiled import compiling_on
from ..cells.base import Cell
from . import graphs, native
from .backend import resolve_backend
from .device_scan import _triton_mode, device_scan_available
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
            if gpu or _triton_mode():
                return "scan: carousel Triton scan" + (", compiled coefficients" if compiling_on(x.device) else "")
            return "scan: one associative scan (generic mode, forced)"
        coefficients = cell.explicit_coefficients()
        if coefficients is not None and _native_kind(coefficients, x) is not None and cell.linear_projection() is not None:
            return "scan: carousel C++ kernel"
        why = native.native_unavailable() if x.device.type == "cpu" else None
        return "scan: chunked scan of PyTorch operations" + (f" (compiled kernels {why})" if why else "")
    if name == "explicit":
        if graphs.graph_recorder(x) is not None:
            step = ", compiled step" if compiling_on(x.device) else ""
            return f"explicit: CUDA graphs{step}" if gpu else f"explicit: captured loop (test double){step}"
        if _native_lstm(cell.explicit_step(), x):
            return "explicit: carousel C++ kernel"
        return "explicit: Python loop of PyTorch operations"
    return f"{name}: Python loop under autograd" if name == "reference" else name
