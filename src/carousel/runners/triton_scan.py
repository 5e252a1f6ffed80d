r"""The device scan's Triton kernels: ``h_t = a_t h_{t-1} + b_t`` and its backward, on (B, T, H) in place.

Imported only where Triton is installed (a CUDA machine; on a CPU, Triton's interpreter with
``TRITON_INTERPRET=1``, which the tests use). :mod:`carousel.runners.device_scan` calls these.

Layout and work split. ``a``, ``b`` and ``h`` are (B, T, H), contiguous: the H units of one step
lie side by side. One program takes one sequence and ``BLOCK_H`` units, and walks time in chunks
of ``BLOCK_T`` steps: it loads a (BLOCK_T, BLOCK_H) tile (rows are steps, so each row is one
coalesced read), scans the tile along its rows with ``tl.associative_scan`` and the combine of
affine maps (Blelloch 1990, "Prefix sums and their applications", section 1.4),

.. math::
    (a_1, b_1) \circ (a_2, b_2) = (a_1 a_2,\; a_2 b_1 + b_2),

then applies the carry from the chunks before (``h = B_cum + A_cum \cdot carry``) and keeps the
tile's last row as the next carry. Each element is read and written once; any T works (a run-time
argument: Triton compiles a variant for T = 1 and for T divisible by 16, not one per length); the time direction is an index map, so the
reverse scan is the same kernel. Arithmetic is in float32 (float64 for float64 tensors).

The backward is one more scan, backwards in scan order (see :mod:`carousel.runners.device_scan`):
``g_s = dL/dh_s + a_{s+1} g_{s+1}``, then ``dL/da_s = g_s h_{s-1}``, ``dL/db_s = g_s`` and
``dL/dh_{-1} = a_0 g_0``, all in the same pass.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl
from torch import Tensor

BLOCK_T = 64  # steps per chunk
MAX_BLOCK_H = 32  # units per program


@triton.jit
def _combine(a1, b1, a2, b2):
    # (a1, b1) earlier, (a2, b2) later: apply step 1, then step 2
    return a2 * a1, a2 * b1 + b2


@triton.jit
def _forward_kernel(A, Bv, H0, Hout, T, NH, t_first, t_step,
                    BLOCK_T: tl.constexpr, BLOCK_H: tl.constexpr, F64: tl.constexpr):
    seq = tl.program_id(0)
    units = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)  # (BLOCK_H,)
    unit_ok = units < NH
    base = seq.to(tl.int64) * T * NH
    dtype = tl.float64 if F64 else tl.float32
    carry = tl.load(H0 + seq.to(tl.int64) * NH + units, mask=unit_ok, other=0.0).to(dtype)  # (BLOCK_H,)
    rows = tl.arange(0, BLOCK_T)
    start = 0
    while start < T:  # (a while loop: Triton's interpreter cannot range over a run-time bound with NumPy 2)
        u = start + rows  # position in scan order
        ok = (u < T)[:, None] & unit_ok[None, :]
        t = t_first + t_step * u  # time of each row
        offs = base + t.to(tl.int64)[:, None] * NH + units[None, :]
        a = tl.load(A + offs, mask=ok, other=1.0).to(dtype)  # padding rows: the identity map
        b = tl.load(Bv + offs, mask=ok, other=0.0).to(dtype)
        a_cum, b_cum = tl.associative_scan((a, b), 0, _combine)
        h = b_cum + a_cum * carry[None, :]
        tl.store(Hout + offs, h.to(Hout.dtype.element_ty), mask=ok)
        carry = tl.sum(tl.where((rows == BLOCK_T - 1)[:, None], h, 0.0), axis=0)  # padding keeps the last h
        start += BLOCK_T


@triton.jit
def _backward_kernel(A, Hs, H0, G, GA, GB, GH0, T, NH, t_first, t_step,
                     BLOCK_T: tl.constexpr, BLOCK_H: tl.constexpr, F64: tl.constexpr):
    # u runs backwards in scan order; t = t_first + t_step * u is its time (t_step is minus the scan's)
    seq = tl.program_id(0)
    units = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    unit_ok = units < NH
    base = seq.to(tl.int64) * T * NH
    dtype = tl.float64 if F64 else tl.float32
    h0 = tl.load(H0 + seq.to(tl.int64) * NH + units, mask=unit_ok, other=0.0).to(dtype)
    carry = tl.zeros((BLOCK_H,), dtype=dtype)
    grad_h0 = tl.zeros((BLOCK_H,), dtype=dtype)
    rows = tl.arange(0, BLOCK_T)
    start = 0
    while start < T:
        u = start + rows
        ok = (u < T)[:, None] & unit_ok[None, :]
        t = t_first + t_step * u
        offs = base + t.to(tl.int64)[:, None] * NH + units[None, :]
        # the step after t in scan order is t - t_step (none for the last: coefficient 0)
        has_next = ((u > 0) & (u < T))[:, None] & unit_ok[None, :]
        a_next = tl.load(A + offs - t_step * NH, mask=has_next, other=0.0).to(dtype)
        a_next = tl.where(ok, a_next, 1.0)  # padding rows: the identity map
        g_in = tl.load(G + offs, mask=ok, other=0.0).to(dtype)
        c_cum, g_cum = tl.associative_scan((a_next, g_in), 0, _combine)
        g = g_cum + c_cum * carry[None, :]
        carry = tl.sum(tl.where((rows == BLOCK_T - 1)[:, None], g, 0.0), axis=0)
        # the state entering step t: h at t + t_step, or h0 for the first step in scan order (u = T - 1)
        first = (u == T - 1)[:, None]
        has_prev = ((u < T - 1)[:, None]) & unit_ok[None, :]
        h_prev = tl.load(Hs + offs + t_step * NH, mask=has_prev, other=0.0).to(dtype)
        h_prev = tl.where(first, h0[None, :], h_prev)
        tl.store(GA + offs, (g * h_prev).to(GA.dtype.element_ty), mask=ok)
        tl.store(GB + offs, g.to(GB.dtype.element_ty), mask=ok)
        a_first = tl.load(A + offs, mask=first & ok, other=0.0).to(dtype)
        grad_h0 += tl.sum(tl.where(first & ok, a_first * g, 0.0), axis=0)
        start += BLOCK_T
    tl.store(GH0 + seq.to(tl.int64) * NH + units, grad_h0.to(GH0.dtype.element_ty), mask=unit_ok)


Config = tuple[int, int, int]  # (BLOCK_T, BLOCK_H, num_warps)
DEFAULT: Config = (BLOCK_T, MAX_BLOCK_H, 4)
# candidates timed on the first call per (kernel, device, dtype, H): more programs with narrower
# blocks of units, or longer chunks, suit different shapes; the fastest is kept for the process
CONFIGS: tuple[Config, ...] = (DEFAULT, (128, 16, 4), (256, 8, 4), (256, 16, 8), (512, 4, 4), (128, 8, 2), (1024, 4, 8))
_BEST: dict[tuple, Config] = {}


def _launch(kernel, a: Tensor, args: tuple, config: Config) -> None:
    B, _, NH = a.shape
    block_t, block_h, warps = config
    block_h = min(block_h, triton.next_power_of_2(NH))
    with torch.cuda.device(a.device) if a.is_cuda else contextlib.nullcontext():  # Triton launches on the current device
        kernel[(B, triton.cdiv(NH, block_h))](*args, BLOCK_T=block_t, BLOCK_H=block_h, F64=a.dtype == torch.float64,
                                              num_warps=warps)


def _fastest(kernel, a: Tensor, args: tuple) -> Config:
    """The fastest of ``CONFIGS`` on these arguments (each launched once to compile, then timed three
    times with CUDA events); the kernels only write their outputs, so running them again is harmless."""
    times = {}
    for config in CONFIGS:  # (the events record on the current stream of the tensors' device)
        _launch(kernel, a, args, config)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.device(a.device):
            start.record()
            for _ in range(3):
                _launch(kernel, a, args, config)
            end.record()
        end.synchronize()
        times[config] = start.elapsed_time(end)
    return min(times, key=times.get)


def _run(kernel, a: Tensor, args: tuple, config: Config | None) -> None:
    """Launch ``kernel`` with ``config``, or with the configuration timed fastest for this kernel, device,
    dtype and H (timed on the first such call on CUDA; the default on other devices and while a CUDA
    graph is being captured, where nothing can be timed)."""
    if config is None:
        key = (kernel, a.device, a.dtype, a.shape[-1])
        config = _BEST.get(key)
        if config is None:
            if a.device.type != "cuda" or torch.cuda.is_current_stream_capturing():
                config = DEFAULT
            else:
                config = _BEST[key] = _fastest(kernel, a, args)
    _launch(kernel, a, args, config)


def forward(a: Tensor, b: Tensor, h0: Tensor, reverse: bool, config: Config | None = None) -> Tensor:
    """``h`` (B, T, H) with ``h_t = a_t h_{t-1} + b_t`` from ``h0`` (B, H); time backwards when ``reverse``.
    ``a``, ``b`` (B, T, H) and ``h0`` contiguous, one dtype and device; ``config`` (BLOCK_T, BLOCK_H,
    num_warps) fixes the launch (default: the fastest of ``CONFIGS``, see ``_run``)."""
    B, T, NH = a.shape
    h = torch.empty_like(b)
    t_first, t_step = (T - 1, -1) if reverse else (0, 1)
    _run(_forward_kernel, a, (a, b, h0, h, T, NH, t_first, t_step), config)
    return h


def backward(a: Tensor, h: Tensor, h0: Tensor, grad_h: Tensor, reverse: bool,
             config: Config | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``(grad_a, grad_b, grad_h0)`` of :func:`forward` given ``grad_h`` (B, T, H), from the saved ``h``."""
    B, T, NH = a.shape
    grad_a, grad_b, grad_h0 = torch.empty_like(a), torch.empty_like(a), torch.empty_like(h0)
    t_first, t_step = (0, 1) if reverse else (T - 1, -1)  # backwards in scan order
    _run(_backward_kernel, a, (a, h, h0, grad_h, grad_a, grad_b, grad_h0, T, NH, t_first, t_step), config)
    return grad_a, grad_b, grad_h0
